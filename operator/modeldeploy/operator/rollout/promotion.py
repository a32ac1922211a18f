"""After the last step: the canary at full size, then (on a passing check, when analysed) stable (pure)."""

from __future__ import annotations

from ..api.base import parse_duration
from ..api.status import RevisionRef, StableStatus
from . import situation as sit
from .clock import seconds
from .controls import promote_full_requested
from .pods import checked_in, size_canary, target_replicas
from .state import Rollout, Tick
from .weights import promotion_weight


def promote(tick: Tick, r: Rollout) -> Rollout:
    """Scale the canary to full size; once Ready (and passing, when analysed) it becomes stable and
    the old stable retires."""
    r, _ = size_canary(tick, r, promotion_weight(tick.steps_for(r.stable), tick.gateway))
    ca = r.canary
    assert ca is not None
    full = target_replicas(tick, r, 100)
    seen = tick.observed.deployments.get(ca.revision)
    ready = seen is not None and seen.replicas == full and seen.up_to_date and seen.ready_replicas >= full
    if not ready:
        what = "first revision" if r.stable is None else "promotion"
        return sit.wait_for_pods(tick, r, f"{what}: scaling revision {ca.revision} to {full} Ready pods")
    analysis = tick.rollout.analysis
    if (
        analysis is not None
        and r.stable is not None
        and not promote_full_requested(r)
        and (r.analysis is None or r.analysis.verdict != "Pass")
    ):
        last = r.analysis.verdict if r.analysis and r.analysis.verdict else "none yet"
        return sit.within_deadline(
            tick,
            checked_in(tick, r),
            "waiting for a passing analysis check to promote",
            f"all steps done; promotion waits for a passing analysis check (last verdict: {last})",
            slack_s=parse_duration(analysis.interval),
            poll_s=parse_duration(analysis.interval),
        )
    old = r.stable
    stable = StableStatus(
        revision=ca.revision,
        model_version=ca.model_version,
        sha256=ca.sha256,
        replicas=full,
        ready_replicas=seen.ready_replicas if seen else 0,
        weight=100,
        promoted_at=tick.now_s,
    )
    r = r.but(stable=stable, canary=None)
    if old is None:
        return r.record(
            tick,
            "Deployed",
            ca.revision,
            ca.model_version,
            "Deployed",
            f"Version {ca.model_version} (revision {ca.revision}) is Ready and serves as stable.",
        )
    r = r.but(last_known_good=RevisionRef(revision=old.revision, model_version=old.model_version, sha256=old.sha256))
    r = r.retire(tick, old.revision, old.model_version).but(promoted=True)
    return r.record(
        tick,
        "Promoted",
        ca.revision,
        ca.model_version,
        "Promoted",
        f"Version {ca.model_version} (revision {ca.revision}) promoted to stable; version {old.model_version}"
        f" (revision {old.revision}) stops serving and is scaled to zero after"
        f" {seconds(tick.rollout.scale_down_delay_seconds)}.",
    )
