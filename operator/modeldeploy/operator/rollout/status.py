"""The tick's result: the status to write (once), the children, the Events and when to look again (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import conditions as cond
from ..api.base import parse_duration
from ..api.resources import ModelDeployment
from ..api.status import HandledControls, ModelDeploymentStatus, Phase
from ..policy import EffectiveRollout
from .children import children
from .clock import since
from .reasons import Event
from .shadow import mirror_settings, tracks
from .situation import settle
from .state import Rollout, Tick


@dataclass(frozen=True)
class Plan:
    """What the edge does after one tick."""

    apply: tuple[dict[str, Any], ...]
    """Whole objects for server-side apply (field manager `modeldeploy`)."""
    scale: Mapping[str, int]
    """Deployment name -> replicas through the scale subresource (revisions other than the spec's, and
    every size under autoscaling)."""
    delete: tuple[str, ...]
    """Deployments of revisions nobody needs any more."""
    serving: frozenset[str]
    """Revisions whose pods take traffic through the endpoint Service."""
    out_of_rotation: frozenset[str]
    """Revisions whose pods must be out of the endpoint (label `modeldeploy.io/serving=false`)."""
    status: ModelDeploymentStatus
    events: tuple[Event, ...]
    requeue_after: float | None
    """Seconds until the next tick is needed even if nothing changes; None when only a change matters."""
    rollback: str | None = None
    """Set when this tick rolled a canary back: its reason."""
    promoted: bool = False
    """Set when this tick promoted a canary (not for the first revision)."""
    delete_children: tuple[tuple[str, str, str], ...] = ()
    """(apiVersion, kind, name) of optional children the spec no longer asks for (HPA, PDB)."""
    tracks: Mapping[str, str] = field(default_factory=dict)
    """Revision -> its pods' `modeldeploy.io/track` label (`stable`, `canary`, `shadow`)."""
    mirror: str | None = None
    """The `modeldeploy.io/mirror` annotation stable's pods carry while a shadow step runs; None: none."""


PHASES: dict[cond.State, Phase] = {
    "Deploying": "Pending",
    "Steady": "Healthy",
    "Progressing": "Progressing",
    "Paused": "Paused",
    "AwaitingApproval": "AwaitingApproval",
    "RolledBack": "RolledBack",
    "Stalled": "Failed",
}


def judging(md: ModelDeployment, rollout: EffectiveRollout, contract_held: bool = False) -> bool:
    """THE rule for "is the canary judged now": an analysis, a valid spec not paused, a stable and a
    canary taking traffic whose model contract is open. The edge runs a check when this holds and one
    is due; the planner asks to be woken for it."""
    status = md.status
    if rollout.analysis is None or rollout.violations or md.spec.paused or contract_held:
        return False
    if status is None or status.stable is None or status.canary is None:
        return False
    if status.canary.weight <= 0 and status.canary.step_action != "shadow":
        return False
    return contract_open(md)


def contract_open(md: ModelDeployment) -> bool:
    """The canary's model contract was checked and lets it take traffic (compatible, or allowed).
    True with no canary or no stable (a first revision is not compared with anything)."""
    status = md.status
    if status is None or status.canary is None or status.stable is None:
        return True
    c = status.canary.contract
    return c is not None and c.checked and (c.compatible or md.spec.rollout.allow_contract_change)


def result(tick: Tick, r: Rollout) -> Plan:
    """The Plan for the state the phases left."""
    s = settle(tick, r)
    if r.stable is not None:
        share = r.canary.effective_weight if r.canary is not None else 0
        r = r.but(
            stable=r.stable.model_copy(
                update={
                    "replicas": r.full_size(tick),
                    "ready_replicas": tick.ready(r.stable.revision),
                    "weight": 100 - share,
                }
            )
        )
    kids = children(tick, r, s)
    generation = tick.md.metadata.generation
    status = ModelDeploymentStatus(
        observed_generation=generation,
        phase=PHASES[s.state],
        conditions=cond.compute(tick.previous.conditions, s, tick.now_s, generation),
        stable=r.stable,
        canary=r.canary,
        analysis=r.analysis,
        last_known_good=r.last_known_good,
        rolled_back_revision=r.rolled_back,
        retiring=list(r.retiring),
        history=list(r.history),
        handled=r.handled if r.handled != HandledControls() else None,
        endpoint=tick.endpoint(),
    )
    requeue = list(r.requeue)
    next_md = tick.md.model_copy(update={"status": status})
    if judging(next_md, tick.rollout, r.contract_held) and tick.rollout.analysis is not None:
        interval = parse_duration(tick.rollout.analysis.interval)
        last = since(r.analysis.last_run_at if r.analysis else None, tick.now)
        requeue.append(0.0 if last is None else max(0.0, interval - last))
    soonest = min(requeue) if requeue else None
    return Plan(
        apply=kids.apply,
        scale=kids.scale,
        delete=kids.delete,
        delete_children=kids.delete_children,
        serving=kids.serving,
        out_of_rotation=kids.out_of_rotation,
        status=status,
        events=r.events,
        requeue_after=None if soonest is None else max(soonest, 0.0),
        rollback=r.rollback,
        promoted=r.promoted,
        tracks=tracks(tick, r),
        mirror=mirror_settings(tick, r),
    )
