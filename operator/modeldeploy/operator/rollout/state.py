"""The rollout's state as one frozen value, and the tick it is planned in.

`Tick` is what one reconcile read (the ModelDeployment, its resolved rollout, the cluster, this
tick's verdict, the time): it never changes during the tick. `Rollout` is the state the phases
pass along: what status will hold (stable, canary, analysis, lastKnownGood, rolledBackRevision,
retiring, history, handled controls) and what this tick has decided so far (Events, requeues,
the situation, a rollback or promotion). Each phase takes a `Rollout` and returns a new one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from .. import conditions as cond
from .. import manifests
from ..api.resources import ModelDeployment
from ..api.spec import ModelDeploymentSpec, Step
from ..api.status import (
    AnalysisStatus,
    CanaryStatus,
    HandledControls,
    HistoryAction,
    HistoryEntry,
    ModelDeploymentStatus,
    RetiringRevision,
    RevisionRef,
    StableStatus,
)
from ..controls import Controls, field_manager, read_controls
from ..policy import EffectiveRollout
from ..revision import revision_of
from .clock import rfc3339
from .history import trim
from .observed import Observed
from .reasons import OPERATOR, Event, EventType, Reason


@dataclass(frozen=True)
class Tick:
    """Everything one tick reads; fixed for the tick."""

    md: ModelDeployment
    rollout: EffectiveRollout
    observed: Observed
    verdict: AnalysisStatus | None
    """This tick's analysis result; None when no check ran."""
    now: datetime

    @property
    def spec(self) -> ModelDeploymentSpec:
        return self.md.spec

    @property
    def name(self) -> str:
        return self.md.metadata.name

    @cached_property
    def now_s(self) -> str:
        return rfc3339(self.now)

    @cached_property
    def revision(self) -> str:
        """The spec's revision (a hash of what its pods run)."""
        return revision_of(self.md.spec)

    @cached_property
    def previous(self) -> ModelDeploymentStatus:
        return self.md.status or ModelDeploymentStatus()

    @cached_property
    def managed_fields(self) -> list[dict[str, Any]]:
        extra = self.md.metadata.model_extra or {}
        mf = extra.get("managedFields")
        return list(mf) if isinstance(mf, list) else []

    @cached_property
    def controls(self) -> Controls:
        return read_controls(self.md.metadata.annotations, self.managed_fields)

    @property
    def gateway(self) -> bool:
        return self.rollout.gateway

    def steps_for(self, stable: StableStatus | None) -> tuple[Step, ...]:
        """A first revision (no stable) runs no steps."""
        return self.rollout.steps if stable is not None else ()

    def spec_author(self, *path: str) -> str:
        """Who last wrote `spec.<path>` (its field manager), for history entries."""
        return field_manager(self.managed_fields, ("spec", *path)) or "unknown"

    def ready(self, revision: str | None) -> int:
        if revision is None:
            return 0
        seen = self.observed.deployments.get(revision)
        return 0 if seen is None else seen.ready_replicas

    def endpoint(self) -> str:
        return manifests.endpoint(self.name, self.md.metadata.namespace or "default")


@dataclass(frozen=True)
class Rollout:
    """The rollout's state, and this tick's decisions so far."""

    stable: StableStatus | None = None
    canary: CanaryStatus | None = None
    analysis: AnalysisStatus | None = None
    last_known_good: RevisionRef | None = None
    rolled_back: RevisionRef | None = None
    retiring: tuple[RetiringRevision, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    handled: HandledControls = dataclasses.field(default_factory=HandledControls)
    # this tick's decisions
    events: tuple[Event, ...] = ()
    requeue: tuple[float, ...] = ()
    situation: cond.Situation | None = None
    """Set by the phase that decided where the rollout stands; `situation.settle` fills it otherwise."""
    rollback: str | None = None
    """The reason, when this tick rolled the canary back."""
    promoted: bool = False
    contract_held: bool = False
    """The canary waits at the contract gate this tick: its pods take no traffic."""

    @classmethod
    def start(cls, tick: Tick) -> Rollout:
        """The state as the last status left it (with this tick's verdict as the analysis)."""
        prev = tick.previous
        return cls(
            stable=prev.stable,
            canary=prev.canary,
            analysis=tick.verdict if tick.verdict is not None else prev.analysis,
            last_known_good=prev.last_known_good,
            rolled_back=prev.rolled_back_revision,
            retiring=tuple(prev.retiring),
            history=tuple(prev.history),
            handled=prev.handled or HandledControls(),
        )

    def but(self, **changes: Any) -> Rollout:
        """A copy with `changes` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def with_canary(self, **update: Any) -> Rollout:
        assert self.canary is not None
        return self.but(canary=self.canary.model_copy(update=update))

    def emit(self, type_: EventType, reason: Reason, message: str) -> Rollout:
        return self.but(events=(*self.events, Event(type_, reason, message)))

    def look_again(self, seconds: float) -> Rollout:
        return self.but(requeue=(*self.requeue, seconds))

    def record(  # noqa: PLR0917 - reads as a sentence at every call site
        self,
        tick: Tick,
        action: HistoryAction,
        revision: str,
        model_version: str | None,
        reason: Reason,
        message: str,
        author: str = OPERATOR,
        event: EventType = "Normal",
    ) -> Rollout:
        """A history entry, and the Event that says the same."""
        entry = HistoryEntry(
            time=tick.now_s,
            action=action,
            revision=revision,
            model_version=model_version,
            author=author,
            reason=reason,
            message=message,
        )
        return self.but(history=trim((*self.history, entry))).emit(event, reason, message)

    def full_size(self, tick: Tick) -> int:
        """Pods of a revision at full size (under autoscaling: what the HPA gave stable)."""
        if tick.spec.serving.autoscaling is not None and self.stable is not None:
            seen = tick.observed.deployments.get(self.stable.revision)
            if seen is not None and seen.replicas > 0:
                return seen.replicas
        return tick.spec.serving.desired_replicas

    def retire(self, tick: Tick, revision: str, model_version: str) -> Rollout:
        """Keep `revision` up for scaleDownDelay, then scale it to zero."""
        if any(r.revision == revision for r in self.retiring):
            return self
        seen = tick.observed.deployments.get(revision)
        if seen is None or seen.replicas == 0:
            return self
        at = rfc3339(tick.now + timedelta(seconds=tick.rollout.scale_down_delay_seconds))
        entry = RetiringRevision(revision=revision, model_version=model_version, scale_down_at=at)
        return self.but(retiring=(*self.retiring, entry))

    def unretire(self, revision: str) -> Rollout:
        return self.but(retiring=tuple(r for r in self.retiring if r.revision != revision))
