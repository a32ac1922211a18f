"""Revisions coming and going: the spec's revision starts a canary (superseding any other), and
revisions past their scale-down time are scaled to zero (pure)."""

from __future__ import annotations

from ..api.status import CanaryStatus
from .clock import parse_time
from .state import Rollout, Tick
from .weights import weight_at


def retire_expired(tick: Tick, r: Rollout) -> Rollout:
    """Drop retiring revisions whose scale-down time has come (children scales them to zero)."""
    keep = []
    for entry in r.retiring:
        at = parse_time(entry.scale_down_at)
        if at is not None and at <= tick.now:
            r = r.emit(
                "Normal", "ScaledDown", f"Revision {entry.revision} (version {entry.model_version}) scaled to zero."
            )
        else:
            keep.append(entry)
            if at is not None:
                r = r.look_again((at - tick.now).total_seconds())
    return r.but(retiring=tuple(keep))


def follow_spec(tick: Tick, r: Rollout) -> Rollout:
    """The spec's revision: stable already, the canary already, rolled back (waits for a retry or a
    new spec), or a new canary (the first revision is a canary without steps)."""
    rev, model = tick.revision, tick.spec.model
    if r.rolled_back is not None and r.rolled_back.revision != rev:
        r = r.but(rolled_back=None)  # the spec changed since the rollback: a new rollout may start
    if r.canary is not None and r.canary.revision != rev:
        old = r.canary
        r = r.record(
            tick,
            "Superseded",
            old.revision,
            old.model_version,
            "Superseded",
            f"Rollout of version {old.model_version} (revision {old.revision}) superseded by a spec change"
            f" to version {model.version} (revision {rev}).",
            tick.spec_author("model"),
        )
        r = r.retire(tick, old.revision, old.model_version).but(canary=None, analysis=None)
    if r.stable is not None and r.stable.revision == rev:
        return r.unretire(rev)
    if r.canary is not None or (r.rolled_back is not None and r.rolled_back.revision == rev):
        return r
    r = r.unretire(rev)
    first = r.stable is None
    steps = tick.steps_for(r.stable)
    canary = CanaryStatus(
        revision=rev,
        model_version=model.version,
        sha256=model.sha256,
        weight=100 if first else weight_at(steps, 0),
        step=0,
        step_count=len(steps),
        step_action=steps[0].action if steps else None,
        step_started_at=tick.now_s,
        started_at=tick.now_s,
        last_progress_at=tick.now_s,
    )
    if r.stable is None:
        msg = f"Deploying version {model.version} (revision {rev}); it becomes stable once Ready."
    else:
        msg = (
            f"Rolling out version {model.version} (revision {rev}) over {len(steps)} steps;"
            f" stable is version {r.stable.model_version} (revision {r.stable.revision})."
        )
    r = r.but(canary=canary, analysis=None)
    return r.record(tick, "RolloutStarted", rev, model.version, "RolloutStarted", msg, tick.spec_author("model"))
