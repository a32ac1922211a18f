"""The canary's steps: one function per step kind, `(tick, rollout, step, elapsed) -> Advance | Hold`,
run in order until one holds or the last is done (then `promotion`). Pure.

Before any step: a failing pod or analysis at its `failureLimit` rolls the canary back
(`gates.rollback_cause`), the model contract gate holds it out of traffic until it is read
(`gates.contract_gate`), and `spec.paused` or `inconclusiveLimit` holds it at its weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..api.base import parse_duration
from ..api.spec import Step
from . import gates, promotion
from . import situation as sit
from .clock import parse_time, since
from .controls import approval
from .pods import checked_in, size_canary
from .reasons import Reason, how_to_approve, how_to_resume
from .state import Rollout, Tick
from .weights import weight_at


@dataclass(frozen=True)
class Advance:
    """The step is done: go to the next one."""

    rollout: Rollout
    why: str


@dataclass(frozen=True)
class Hold:
    """The step is not done: the rollout stays here this tick (its situation says why)."""

    rollout: Rollout


Outcome = Advance | Hold
StepFn = Callable[[Tick, Rollout, Step, float], Outcome]


def set_weight(tick: Tick, r: Rollout, step: Step, elapsed: float) -> Outcome:
    """Done once the canary's pods for the weight are Ready."""
    assert r.canary is not None and step.set_weight is not None
    ca = r.canary
    weight = weight_at(tick.rollout.steps, ca.step)
    r, at_size = size_canary(tick, r, weight)
    if at_size:
        return Advance(r, f"canary at weight {weight}%")
    return Hold(sit.wait_for_pods(tick, r, f"step {ca.step + 1}/{ca.step_count}: setWeight {weight}"))


def pause(tick: Tick, r: Rollout, step: Step, elapsed: float) -> Outcome:
    """Done after its duration; without one, once spec.paused has been set and cleared since it began."""
    assert r.canary is not None and step.pause is not None
    ca = r.canary
    if step.pause.duration is not None:
        d = parse_duration(step.pause.duration)
        if elapsed >= d:
            return Advance(r, f"paused {step.pause.duration}")
        r = r.look_again(d - elapsed)
        return Hold(sit.progressing(tick, r, f"pausing {step.pause.duration} ({max(0, round(d - elapsed))}s left)"))
    if resumed_since(r, parse_time(ca.step_started_at)):
        return Advance(r, "resumed")
    return Hold(
        sit.held(
            tick,
            r,
            "PauseStep",
            f"Step {ca.step + 1}/{ca.step_count} pauses until resumed: " + how_to_resume(tick.name),
        )
    )


def approve(tick: Tick, r: Rollout, step: Step, elapsed: float) -> Outcome:
    """Done when `modeldeploy.io/approve` names this revision (once per value)."""
    assert r.canary is not None and step.approval is not None
    approved = approval(tick, r)
    if approved is not None:
        author = tick.controls.approve.author if tick.controls.approve else "unknown"
        return Advance(approved, f"approved by {author}")
    how = how_to_approve(tick.name, r.canary.revision)
    if step.approval.message:
        how = f"{step.approval.message} {how}"
    return Hold(sit.awaiting_approval(tick, r, how))


def analyse(tick: Tick, r: Rollout, step: Step, elapsed: float) -> Outcome:
    """Done when the checks have passed for `duration` (one passing check when unset), counted from
    the later of the step's start and the first check of the current run of passes."""
    assert r.canary is not None and step.analysis is not None
    analysis = tick.rollout.analysis
    assert analysis is not None  # an analysis step without rollout.analysis is refused as InvalidSpec
    d = parse_duration(step.analysis.duration) if step.analysis.duration else 0.0
    a = r.analysis
    if a is not None and a.verdict == "Pass" and a.passes >= 1:
        started = max(filter(None, (a.passing_since, r.canary.step_started_at)))
        passing_for = since(started, tick.now) or 0.0
        if elapsed >= d and passing_for >= d:
            return Advance(r, "analysis passed" if d == 0 else f"analysis passed for {step.analysis.duration}")
        r = r.look_again(max(d - passing_for, 0.0))
    elif elapsed < d:
        r = r.look_again(d - elapsed)
    last = a.verdict if a and a.verdict else "none yet"
    interval = parse_duration(analysis.interval)
    return Hold(
        sit.within_deadline(
            tick,
            checked_in(tick, r),
            "waiting for passing analysis checks",
            f"analysing (last verdict: {last})",
            slack_s=interval,
            poll_s=interval,
        )
    )


def shadow(tick: Tick, r: Rollout, step: Step, elapsed: float) -> Outcome:
    """Done after `duration` of mirroring with a passing check (the agreement gate among its checks); the
    candidate takes no live traffic meanwhile."""
    assert r.canary is not None and step.shadow is not None
    analysis = tick.rollout.analysis
    assert analysis is not None  # a shadow step without rollout.analysis is refused as InvalidSpec
    d = parse_duration(step.shadow.duration)
    candidate = r.canary.revision
    a = r.analysis
    passed = a is not None and a.verdict == "Pass" and a.passes >= 1
    if elapsed >= d and passed:
        agreement = next((c for c in a.checks if c.metric == "agreementPercent"), None) if a else None
        why = f"shadow passed after {step.shadow.duration}"
        if agreement is not None and agreement.value is not None:
            why += f" (agreement {agreement.value:g}%)"
        return Advance(r, why)
    if elapsed < d:
        r = r.look_again(d - elapsed)
    last = a.verdict if a and a.verdict else "none yet"
    interval = parse_duration(analysis.interval)
    doing = (
        f"shadow: stable mirrors {step.shadow.percent}% of its requests to revision {candidate}, which"
        f" answers no live request ({max(0, round(d - elapsed))}s of {step.shadow.duration} left; last verdict: {last})"
    )
    return Hold(
        sit.within_deadline(
            tick, checked_in(tick, r), "waiting for passing shadow checks", doing, slack_s=interval, poll_s=interval
        )
    )


def step_fn(step: Step) -> StepFn:
    """The function for a step's kind (the API allows exactly one kind per step)."""
    if step.set_weight is not None:
        return set_weight
    if step.pause is not None:
        return pause
    if step.approval is not None:
        return approve
    if step.analysis is not None:
        return analyse
    if step.shadow is not None:
        return shadow
    raise ValueError(f"step {step!r} has no kind")  # the API allows exactly one


def resumed_since(r: Rollout, started: datetime | None) -> bool:
    """A Resumed entry after the step began (newest first, stopping at the step's start)."""
    for h in reversed(r.history):
        t = parse_time(h.time)
        if t is None or started is None or t < started:
            return False
        if h.action == "Resumed":
            return True
    return False


def advance(tick: Tick, r: Rollout, why: str) -> Rollout:
    """Go to the next step: its clock starts now, and passes count again from zero."""
    ca = r.canary
    assert ca is not None
    nxt = ca.step + 1
    steps = tick.rollout.steps
    r = r.with_canary(
        step=nxt,
        step_action=steps[nxt].action if nxt < len(steps) else None,
        step_started_at=tick.now_s,
        last_progress_at=tick.now_s,
    )
    if r.analysis is not None:
        r = r.but(analysis=r.analysis.model_copy(update={"passes": 0}))
    what = steps[ca.step].action if ca.step < len(steps) else "step"
    return r.emit(
        "Normal", "StepCompleted", f"Revision {ca.revision}: step {ca.step + 1}/{ca.step_count} ({what}) done: {why}."
    )


def hold_for(tick: Tick, r: Rollout) -> Rollout | None:
    """spec.paused, or analysis Inconclusive `inconclusiveLimit` times in a row, holds the canary at its weight."""
    ca = r.canary
    assert ca is not None
    analysis = gates.judged(tick, r)
    reason: Reason
    if tick.spec.paused:
        reason, message = "PausedBySpec", "The rollout is paused (spec.paused: true); set it to false to resume."
    elif analysis is not None and r.analysis is not None and gates.should_hold_inconclusive(r.analysis, analysis):
        reason = "AnalysisInconclusive"
        message = (
            f"{r.analysis.consecutive_inconclusive} analysis checks in a row were Inconclusive"
            f" (inconclusiveLimit {analysis.inconclusive_limit}): {r.analysis.message} The rollout"
            " holds until a check decides; send traffic, or abort."
        )
    else:
        return None
    r, _ = size_canary(tick, r, weight_at(tick.steps_for(r.stable), ca.step))
    return sit.held(tick, r, reason, message)


def run(tick: Tick, r: Rollout) -> Rollout:
    """The canary this tick: rolled back, held at a gate, stepping, or promoted."""
    r = gates.rollback_cause(tick, r)
    if r.canary is None:
        return r
    if r.stable is not None:
        gate, r = gates.contract_gate(tick, r)
        if gate == "closed":
            return r
    steps = tick.steps_for(r.stable)
    while (ca := r.canary) is not None and ca.step < ca.step_count:
        held = hold_for(tick, r)
        if held is not None:
            return held
        step = steps[ca.step]
        r, _ = size_canary(tick, r, weight_at(steps, ca.step))
        elapsed = since(ca.step_started_at, tick.now) or 0.0
        outcome = step_fn(step)(tick, r, step, elapsed)
        if isinstance(outcome, Hold):
            return outcome.rollout
        r = advance(tick, outcome.rollout, outcome.why)
    return promotion.promote(tick, r)
