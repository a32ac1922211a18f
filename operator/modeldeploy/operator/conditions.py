"""The eight conditions, from one summary of the situation, per DESIGN's status contract (pure).

| situation | Ready | Reconciling | Stalled | others |
| --- | --- | --- | --- | --- |
| steady, stable serving | True | False | False | Available=True |
| first deploy, canary stepping or analysing | False | True | False | Progressing=True |
| paused, awaiting approval | False | True | False | Paused or AwaitingApproval=True |
| rolled back (analysis, abort, failed pods) | False (RolledBack) | False | True | Available, Degraded=True |
| invalid spec, digest mismatch, progress deadline | False | False | True | |

kstatus reads these as InProgress (Reconciling=True), Failed (Stalled=True) and Current (neither,
with Ready=True), once `observedGeneration` equals `metadata.generation`.

`lastTransitionTime` changes only when a condition's status flips; a new reason or message alone
keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .api.status import CONDITION_TYPES, Condition, ConditionStatus, ConditionType

State = Literal["Deploying", "Steady", "Progressing", "Paused", "AwaitingApproval", "RolledBack", "Stalled"]


@dataclass(frozen=True)
class Wanted:
    """A condition as computed, before its transition time is settled."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Situation:
    """What the planner concluded, in the terms the conditions speak."""

    state: State
    reason: str
    """One word: why the rollout is where it is (Stalled's, Reconciling's and Progressing's reason)."""
    message: str
    """What is happening and what a person can do, for Ready (and Stalled when stalled)."""
    available: bool
    """Some revision serves with at least one Ready pod."""
    available_message: str
    progress_message: str = ""
    """Step k/n, weight, last verdict (Progressing)."""
    degraded: tuple[str, str] | None = None
    """(reason, message) when something is wrong while the model still serves."""
    paused: tuple[str, str] | None = None
    """(reason, message) when the rollout holds (spec.paused, a pause step, inconclusive analysis)."""
    awaiting_approval: str | None = None
    """Message saying how to approve, when an approval step waits."""
    ready_reason: str | None = None
    """Ready's reason when it differs from `reason` (e.g. RolledBack beside Stalled's AnalysisFailed)."""


def wanted(s: Situation) -> list[Wanted]:
    """The eight conditions for a situation."""
    in_progress = s.state in ("Deploying", "Progressing", "Paused", "AwaitingApproval")
    stalled = s.state in ("RolledBack", "Stalled")
    out = [
        Wanted("Ready", "True" if s.state == "Steady" else "False", s.ready_reason or s.reason, s.message),
        Wanted(
            "Reconciling",
            "True" if in_progress else "False",
            s.reason if in_progress else ("Stalled" if stalled else "Reconciled"),
            s.message if in_progress else "",
        ),
        Wanted(
            "Stalled",
            "True" if stalled else "False",
            s.reason if stalled else ("Progressing" if in_progress else "Healthy"),
            s.message if stalled else "",
        ),
        Wanted(
            "Available",
            "True" if s.available else "False",
            "Serving" if s.available else "NoReadyPods",
            s.available_message,
        ),
        Wanted(
            "Progressing",
            "True" if in_progress else "False",
            s.reason if in_progress else ("RolloutComplete" if s.state == "Steady" else s.reason),
            s.progress_message,
        ),
    ]
    if s.degraded is not None:
        out.append(Wanted("Degraded", "True", s.degraded[0], s.degraded[1]))
    else:
        out.append(Wanted("Degraded", "False", "Healthy", ""))
    if s.paused is not None:
        out.append(Wanted("Paused", "True", s.paused[0], s.paused[1]))
    else:
        out.append(Wanted("Paused", "False", "Running", ""))
    if s.awaiting_approval is not None:
        out.append(Wanted("AwaitingApproval", "True", "ApprovalStep", s.awaiting_approval))
    else:
        out.append(Wanted("AwaitingApproval", "False", "NoApprovalPending", ""))
    return out


def merge(previous: Iterable[Condition], now: str, generation: int | None, items: Iterable[Wanted]) -> list[Condition]:
    """Conditions in the canonical order, keeping `lastTransitionTime` where the status did not flip."""
    before = {c.type: c for c in previous}
    by_type = {w.type: w for w in items}
    out: list[Condition] = []
    for ctype in CONDITION_TYPES:
        w = by_type.get(ctype)
        if w is None:
            continue
        old = before.get(ctype)
        when = old.last_transition_time if old is not None and old.status == w.status else now
        out.append(
            Condition(
                type=w.type,
                status=w.status,
                reason=w.reason,
                message=w.message,
                last_transition_time=when,
                observed_generation=generation,
            )
        )
    return out


def compute(previous: Iterable[Condition], s: Situation, now: str, generation: int | None) -> list[Condition]:
    """The eight conditions for a situation, merged with the previous ones."""
    return merge(previous, now, generation, wanted(s))
