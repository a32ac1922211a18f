"""Where the rollout stands, in the terms the conditions speak: progressing, held, awaiting approval,
stalled past its deadline, or settled (steady, rolled back) — with the message a person reads (pure).

`announce` is the one rule for Events about a situation: one is posted when a condition starts
saying something new, never again while it keeps saying it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import conditions as cond
from .. import manifests
from ..api.status import Condition, ConditionType
from .clock import parse_time, seconds
from .history import last_of
from .reasons import EventType, Reason
from .state import Rollout, Tick

POD_WAIT_POLL_S = 10.0
"""While waiting for pods, look again at least this often (Deployment and Pod events wake us sooner)."""


def is_new(previous: Iterable[Condition], ctype: ConditionType, reason: str, message: str | None = None) -> bool:
    """Whether condition `ctype` did not already say True with this reason (and this message, when given)."""
    old = next((c for c in previous if c.type == ctype), None)
    return (
        old is None or old.status != "True" or old.reason != reason or (message is not None and old.message != message)
    )


def announce(  # noqa: PLR0917 - one sentence
    tick: Tick,
    r: Rollout,
    ctype: ConditionType,
    reason: Reason,
    message: str,
    type_: EventType = "Warning",
    *,
    record: bool = False,
    compare_message: bool = False,
) -> Rollout:
    """The Event (with a history entry when `record`) for a condition that starts saying `reason`
    (or, with `compare_message`, a new message)."""
    if not is_new(tick.previous.conditions, ctype, reason, message if compare_message else None):
        return r
    if record and r.canary is not None:
        ca = r.canary
        return r.record(tick, "Stalled", ca.revision, ca.model_version, reason, message, event=type_)
    return r.emit(type_, reason, message)


def serving_ready(tick: Tick, r: Rollout) -> bool:
    if r.stable is not None and tick.ready(r.stable.revision) > 0:
        return True
    return r.stable is None and r.canary is not None and tick.ready(r.canary.revision) > 0


def available_message(tick: Tick, r: Rollout) -> str:
    if r.stable is not None:
        ready = tick.ready(r.stable.revision)
        return f"Stable version {r.stable.model_version} has {ready} Ready pods behind {tick.endpoint()}."
    if r.canary is not None:
        return f"Version {r.canary.model_version} has {r.canary.ready_replicas} Ready pods."
    return "No revision serves."


def progress_message(tick: Tick, r: Rollout, doing: str) -> str:
    ca = r.canary
    assert ca is not None
    if r.stable is None:
        return (
            f"Deploying version {ca.model_version} (revision {ca.revision}): {ca.ready_replicas}/{ca.replicas}"
            f" pods Ready; {doing}."
        )
    stable_ready = tick.ready(r.stable.revision)
    weights = f"weight {ca.weight}% requested, {ca.effective_weight}% effective"
    if ca.weight != ca.effective_weight and tick.gateway:
        weights += f" (HTTPRoute: the canary gets its weight once {ca.ready_replicas}/{ca.replicas} pods are Ready)"
    elif ca.weight != ca.effective_weight:
        weights += f" (replica ratio: {ca.ready_replicas} canary beside {stable_ready} stable pods Ready)"
    verdict = r.analysis.verdict if r.analysis and r.analysis.verdict else None
    step = f"step {min(ca.step + 1, ca.step_count)}/{ca.step_count}" if ca.step_count else "no steps"
    if ca.step >= ca.step_count:
        step = f"all {ca.step_count} steps done"
    text = f"Version {ca.model_version} (revision {ca.revision}): {step}, {weights}; {doing}"
    if verdict:
        text += f"; last analysis verdict: {verdict}"
    return text + "."


def _at(tick: Tick, r: Rollout, state: cond.State, reason: str, message: str, **extra: Any) -> Rollout:
    """`r` with the situation `state` for `reason`: Available from what serves, the message as progress."""
    return r.but(
        situation=cond.Situation(
            state=state,
            reason=reason,
            message=message,
            available=serving_ready(tick, r),
            available_message=available_message(tick, r),
            progress_message=message,
            **extra,
        )
    )


def progressing(tick: Tick, r: Rollout, doing: str) -> Rollout:
    state: cond.State = "Progressing"
    reason = "CanaryInProgress"
    if r.stable is None:
        state, reason = "Deploying", "Deploying"
    return _at(tick, r, state, reason, progress_message(tick, r, doing))


def held(tick: Tick, r: Rollout, reason: Reason, message: str) -> Rollout:
    """Paused: by spec.paused, a pause step without a duration, or inconclusive analysis."""
    msg = progress_message(tick, r, "held") + " " + message
    r = _at(tick, r, "Paused", reason, msg, paused=(reason, message))
    if reason == "AnalysisInconclusive":
        r = announce(tick, r, "Paused", reason, message, "Warning")
    return r


def awaiting_approval(tick: Tick, r: Rollout, how: str) -> Rollout:
    msg = progress_message(tick, r, "awaiting approval") + " " + how
    r = _at(tick, r, "AwaitingApproval", "AwaitingApproval", msg, awaiting_approval=how)
    if not is_new(tick.previous.conditions, "AwaitingApproval", "ApprovalStep"):  # the condition's reason
        return r
    return r.emit("Normal", "AwaitingApproval", how)


def stalled(tick: Tick, r: Rollout, reason: Reason, message: str) -> Rollout:
    """Stalled=True for the canary (a history entry and a Warning the first time it says so)."""
    r = announce(tick, r, "Stalled", reason, message, record=True)
    return _at(tick, r, "Stalled", reason, message)


def within_deadline(
    tick: Tick, r: Rollout, waiting_for: str, doing: str, *, slack_s: float = 0.0, poll_s: float = POD_WAIT_POLL_S
) -> Rollout:
    """Wait for something (pods, a check, a pass) while progressDeadline (plus `slack_s`) allows, else
    stall; look again within `poll_s` (watch events wake the loop sooner)."""
    ca = r.canary
    assert ca is not None
    deadline = tick.rollout.progress_deadline_seconds + slack_s
    last = parse_time(ca.last_progress_at) or tick.now
    left = deadline - (tick.now - last).total_seconds()
    if left > 0:
        return progressing(tick, r.look_again(min(left, poll_s)), doing)
    message = (
        f"Revision {ca.revision} (version {ca.model_version}) made no progress for"
        f" {seconds(deadline)} (progressDeadline) while {waiting_for}: {ca.ready_replicas}/{ca.replicas} pods Ready."
        f" Check `kubectl describe pods -l {manifests.LABEL_REVISION}={ca.revision}`"
        + (" and the analysis in status" if "analysis" in waiting_for else "")
        + "; fix the spec, or abort."
    )
    return stalled(tick, r.look_again(POD_WAIT_POLL_S), "ProgressDeadlineExceeded", message)


def wait_for_pods(tick: Tick, r: Rollout, doing: str) -> Rollout:
    return within_deadline(tick, r, doing, f"waiting for pods ({doing})")


def settle(tick: Tick, r: Rollout) -> cond.Situation:
    """The situation when no phase set one: steady, rolled back, or nothing yet."""
    if r.situation is not None:
        return r.situation
    spec = tick.spec
    paused = ("PausedBySpec", "spec.paused is true: a new rollout will hold.") if spec.paused else None
    rb = r.rolled_back
    if rb is not None and rb.revision == tick.revision:
        entry = last_of([h for h in r.history if h.revision == rb.revision], "RolledBack", "Aborted")
        reason = entry.reason if entry else "RolledBack"
        message = entry.message if entry else f"Revision {rb.revision} was rolled back."
        return cond.Situation(
            state="RolledBack",
            reason=reason,
            ready_reason="RolledBack" if reason in ("AnalysisFailed", "Aborted", "RolledBack") else reason,
            message=message,
            available=serving_ready(tick, r),
            available_message=available_message(tick, r),
            progress_message=message,
            degraded=(reason, message),
            paused=paused,
        )
    if r.stable is not None:
        full = r.full_size(tick)
        ready = tick.ready(r.stable.revision)
        st = r.stable
        if ready >= full:
            msg = f"Version {st.model_version} (revision {st.revision}) serves at {tick.endpoint()}."
            return cond.Situation(
                state="Steady",
                reason="Serving",
                message=msg,
                available=True if full == 0 else ready > 0,
                available_message=available_message(tick, r),
                progress_message=msg,
                paused=paused,
            )
        msg = f"Stable version {st.model_version} (revision {st.revision}) has {ready}/{full} pods Ready."
        return cond.Situation(
            state="Progressing",
            reason="ScalingUp",
            message=msg,
            available=ready > 0,
            available_message=available_message(tick, r),
            progress_message=msg,
            degraded=("StableUnderReplicated", msg) if st.promoted_at else None,
            paused=paused,
        )
    return cond.Situation(
        state="Deploying",
        reason="Deploying",
        message="Waiting for the first revision.",
        available=False,
        available_message=available_message(tick, r),
    )
