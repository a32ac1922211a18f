"""The people's controls, each honoured once per annotation value: retry, abort, promote-full, approve,
and spec.paused recorded as it flips (pure). The annotations are read by `..controls`."""

from __future__ import annotations

from ..controls import approval_names
from .gates import roll_back
from .history import last_of
from .state import Rollout, Tick


def spec_pause(tick: Tick, r: Rollout) -> Rollout:
    """A history entry when spec.paused flips (the rollout holds in `steps` while it is set)."""
    last = last_of(r.history, "Paused", "Resumed")
    was_paused = last is not None and last.action == "Paused"
    if tick.spec.paused == was_paused:
        return r
    target = r.canary.revision if r.canary else (r.stable.revision if r.stable else tick.revision)
    who = tick.spec_author("paused")
    if tick.spec.paused:
        return r.record(tick, "Paused", target, None, "PausedBySpec", f"spec.paused set by {who}.", who)
    return r.record(tick, "Resumed", target, None, "Resumed", f"spec.paused cleared by {who}.", who)


def retry(tick: Tick, r: Rollout) -> Rollout:
    """`modeldeploy.io/retry=<revision>` lets the rolled-back revision roll out again."""
    c = tick.controls.retry
    if c is None or c.value == r.handled.retry:
        return r
    r = r.but(handled=r.handled.model_copy(update={"retry": c.value}))
    rb = r.rolled_back
    if rb is not None and c.value == rb.revision:
        r = r.record(
            tick,
            "Retried",
            rb.revision,
            rb.model_version,
            "Retried",
            f"Retry of revision {rb.revision} by {c.author}.",
            c.author,
        )
        return r.but(rolled_back=None)
    current = rb.revision if rb else "none"
    return r.emit(
        "Warning",
        "RetryIgnored",
        f"modeldeploy.io/retry={c.value} names no rolled-back revision (rolled back: {current}).",
    )


def abort(tick: Tick, r: Rollout) -> Rollout:
    """`modeldeploy.io/abort` rolls the canary back now."""
    c = tick.controls.abort
    if c is None or c.value == r.handled.abort:
        return r
    r = r.but(handled=r.handled.model_copy(update={"abort": c.value}))
    if r.canary is None:
        return r.emit("Warning", "AbortIgnored", f"modeldeploy.io/abort={c.value}: no rollout in progress.")
    return roll_back(tick, r, "Aborted", f"Rollout of revision {r.canary.revision} aborted by {c.author}.", c.author)


def promote_full(tick: Tick, r: Rollout) -> Rollout:
    """`modeldeploy.io/promote-full` skips the remaining steps and the analysis, unless the policy
    requires an approval or an analysis (a platform team's gate is not a person's to skip)."""
    c = tick.controls.promote_full
    if c is None or c.value == r.handled.promote_full:
        return r
    r = r.but(handled=r.handled.model_copy(update={"promote_full": c.value}))
    ca = r.canary
    if ca is None:
        return r.emit(
            "Warning", "PromoteFullIgnored", f"modeldeploy.io/promote-full={c.value}: no rollout in progress."
        )
    required = [
        what
        for what, needed in (
            ("an approval step (requireApproval)", tick.rollout.require_approval),
            ("an analysis (requireAnalysis)", tick.rollout.require_analysis),
        )
        if needed
    ]
    if required and r.stable is not None:
        return r.emit(
            "Warning",
            "PromoteFullRefused",
            f"modeldeploy.io/promote-full={c.value} by {c.author} refused: RolloutPolicy {tick.rollout.policy}"
            f" requires {' and '.join(required)}, which promote-full would skip. Approve the step"
            " (modeldeploy.io/approve), or abort.",
        )
    r = r.record(
        tick,
        "PromotedFull",
        ca.revision,
        ca.model_version,
        "PromoteFull",
        f"{c.author} asked to promote revision {ca.revision} fully, skipping steps {ca.step + 1}..{ca.step_count}"
        " and the analysis; it is promoted once it is Ready at full size.",
        c.author,
    )
    return r.with_canary(step=ca.step_count, step_action=None, step_started_at=tick.now_s, last_progress_at=tick.now_s)


def promote_full_requested(r: Rollout) -> bool:
    """Whether promote-full was asked for the current canary (its history entry since the canary started)."""
    ca = r.canary
    return ca is not None and any(
        h.action == "PromotedFull" and h.revision == ca.revision and h.time >= (ca.started_at or "") for h in r.history
    )


def approval(tick: Tick, r: Rollout) -> Rollout | None:
    """The approval of the current step, recorded; None while none names this revision."""
    a = tick.controls.approve
    ca = r.canary
    assert ca is not None
    if a is None or not approval_names(a.value, ca.revision) or a.value == r.handled.approve:
        return None
    r = r.but(handled=r.handled.model_copy(update={"approve": a.value}))
    return r.record(
        tick,
        "Approved",
        ca.revision,
        ca.model_version,
        "Approved",
        f"Step {ca.step + 1}/{ca.step_count} of revision {ca.revision} approved by {a.author}.",
        a.author,
    )
