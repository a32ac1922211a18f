"""What each control writes, and how to read back what the operator did with it (pure).

The annotations are the ones the operator reads (README, "Manual controls"): each acts once per
value, the value acted on lands in `status.handled`, and the author comes from the
`modeldeploy.io/<control>-by` annotation written beside it. `pause` and `resume` write
`spec.paused`, whose author the operator takes from the field manager, so the plugin's field
manager names the user too. A control is planned as one or more `Write`s, each followed by a wait
until the status shows that the operator has taken it in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from . import render, timefmt

PREFIX = "modeldeploy.io/"
APPROVE = PREFIX + "approve"
ABORT = PREFIX + "abort"
RETRY = PREFIX + "retry"
PROMOTE_FULL = PREFIX + "promote-full"

Obj = Mapping[str, Any]


def field_manager(author: str) -> str:
    """The field manager of the plugin's spec writes; the operator records it as their author."""
    return f"kubectl-modeldeploy:{author}"[:128]


@dataclass(frozen=True)
class Write:
    """One merge patch, and when the operator has taken it in.

    `taken(patched, now_obj)`: `patched` is the object the patch returned, `now_obj` the object read since.
    """

    patch: dict[str, Any]
    what: str
    taken: Callable[[Obj, Obj], bool] = field(compare=False)


@dataclass(frozen=True)
class Plan:
    writes: tuple[Write, ...]
    #: the history action that says the operator did what was asked (empty: none to check)
    expect: str


@dataclass(frozen=True)
class Refusal:
    """The control cannot do what was asked in the object's current state: nothing is written."""

    message: str


@dataclass(frozen=True)
class Noop:
    """Already as asked: nothing is written."""

    message: str


def _status(obj: Obj) -> Mapping[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, Mapping) else {}


def _sub(m: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = m.get(key)
    return v if isinstance(v, Mapping) else {}


def _annotate(key: str, value: str, author: str, what: str) -> Write:
    handled_key = {APPROVE: "approve", ABORT: "abort", RETRY: "retry", PROMOTE_FULL: "promoteFull"}[key]

    def taken(_patched: Obj, now_obj: Obj) -> bool:
        return _sub(_status(now_obj), "handled").get(handled_key) == value

    return Write({"metadata": {"annotations": {key: value, key + "-by": author}}}, what, taken)


def _set_paused(paused: bool) -> Write:
    def taken(patched: Obj, now_obj: Obj) -> bool:
        gen = (patched.get("metadata") or {}).get("generation")
        observed = _status(now_obj).get("observedGeneration")
        return isinstance(gen, int) and isinstance(observed, int) and observed >= gen

    return Write({"spec": {"paused": paused}}, f"set spec.paused to {str(paused).lower()}", taken)


def where(obj: Obj) -> str:
    """The rollout's state in a phrase, for refusals: `phase Progressing, step 1/3 (setWeight)`."""
    st = _status(obj)
    canary = _sub(st, "canary")
    phase = st.get("phase") or "unknown"
    return f"phase {phase}, " + (render.step_text(canary) if canary else "no rollout in progress")


def _unique(value: str, handled: object, now: datetime) -> str:
    """`value`, or `value (time)` when the operator has already acted on exactly `value`."""
    return value if value != handled else f"{value} ({timefmt.rfc3339(now)})"


def plan_approve(obj: Obj, author: str) -> Plan | Refusal:
    st = _status(obj)
    canary = _sub(st, "canary")
    waiting = render.condition(st, "AwaitingApproval").get("status") == "True"
    if not canary or not (waiting or canary.get("stepAction") == "approval"):
        return Refusal(f"nothing awaits approval ({where(obj)})")
    rev = str(canary.get("revision"))
    handled = str(_sub(st, "handled").get("approve") or "")
    # an earlier approval step of this revision was approved with `rev`: a later one takes `rev/<anything>`
    value = (
        rev if handled != rev and not handled.startswith(rev + "/") else f"{rev}/step-{int(canary.get('step', 0)) + 1}"
    )
    step = render.step_text(canary)
    return Plan((_annotate(APPROVE, value, author, f"approved revision {rev} at {step}"),), "Approved")


def plan_abort(obj: Obj, author: str, reason: str | None, now: datetime) -> Plan | Refusal:
    st = _status(obj)
    canary = _sub(st, "canary")
    if not canary:
        return Refusal(f"no rollout to abort ({where(obj)})")
    value = _unique((reason or "").strip() or "true", _sub(st, "handled").get("abort"), now)
    what = f"aborted the rollout of revision {canary.get('revision')}" + (f" ({reason})" if reason else "")
    return Plan((_annotate(ABORT, value, author, what),), "Aborted")


def plan_retry(obj: Obj, author: str) -> Plan | Refusal:
    st = _status(obj)
    rb = _sub(st, "rolledBackRevision")
    if not rb:
        return Refusal(f"no rolled-back revision to retry ({where(obj)})")
    rev = str(rb.get("revision"))
    if _sub(st, "handled").get("retry") == rev:
        return Refusal(
            f"revision {rev} was retried once already, and the operator acts on modeldeploy.io/retry={rev} once;"
            " change spec.model or spec.serving to roll it out again"
        )
    return Plan((_annotate(RETRY, rev, author, f"asked to retry revision {rev}"),), "Retried")


def plan_promote_full(obj: Obj, author: str, now: datetime) -> Plan | Refusal:
    st = _status(obj)
    canary = _sub(st, "canary")
    if not canary:
        return Refusal(f"no rollout to promote ({where(obj)})")
    value = _unique(timefmt.rfc3339(now), _sub(st, "handled").get("promoteFull"), now)
    what = f"asked to promote revision {canary.get('revision')} fully, skipping {render.step_text(canary)} onwards"
    return Plan((_annotate(PROMOTE_FULL, value, author, what),), "PromotedFull")


def _held_at_pause_step(obj: Obj) -> bool:
    paused = render.condition(_status(obj), "Paused")
    return paused.get("status") == "True" and paused.get("reason") == "PauseStep"


def _spec_paused(obj: Obj) -> bool:
    return bool((obj.get("spec") or {}).get("paused"))


def plan_promote(obj: Obj, author: str) -> Plan | Refusal:
    """Past the step that waits for a person: an approval (approve) or an untimed pause (resume)."""
    st = _status(obj)
    if render.condition(st, "AwaitingApproval").get("status") == "True":
        return plan_approve(obj, author)
    if _held_at_pause_step(obj) and not _spec_paused(obj):
        resume = plan_resume(obj)
        if isinstance(resume, Plan):
            return resume
    if _spec_paused(obj):
        return Refusal(f"spec.paused holds the rollout ({where(obj)}): resume it, or promote --full")
    return Refusal(
        f"no step waits for a person ({where(obj)}); `promote --full` skips every remaining step and the analysis"
    )


def plan_pause(obj: Obj) -> Plan | Noop:
    if _spec_paused(obj):
        return Noop(f"already paused (spec.paused is true; {where(obj)})")
    return Plan((_set_paused(True),), "Paused")


def plan_resume(obj: Obj) -> Plan | Noop:
    if _spec_paused(obj):
        return Plan((_set_paused(False),), "Resumed")
    if _held_at_pause_step(obj):
        # an untimed pause step resumes on a pause and a resume recorded after it began
        return Plan((_set_paused(True), _set_paused(False)), "Resumed")
    return Noop(f"not paused ({where(obj)})")


def _key(h: Mapping[str, Any]) -> str:
    return json.dumps(h, sort_keys=True)


def new_history(before: Obj, after: Obj) -> list[Mapping[str, Any]]:
    """History entries in `after` that were not in `before`, oldest first."""
    seen = {_key(h) for h in _status(before).get("history") or [] if isinstance(h, Mapping)}
    return [h for h in _status(after).get("history") or [] if isinstance(h, Mapping) and _key(h) not in seen]


Outcome = Literal["done", "ignored"]


def outcome(plan: Plan, before: Obj, after: Obj, now: datetime) -> tuple[Outcome, list[str]]:
    """Whether the operator did what was asked, and what it did, in lines for a person."""
    entries = new_history(before, after)
    lines = [render.history_line(h, now) for h in entries]
    did = any(h.get("action") == plan.expect for h in entries) or not plan.expect
    lines.append(f"now: {where(after)}")
    return ("done" if did else "ignored"), lines
