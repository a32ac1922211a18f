"""Conditions: the eight, in order, one-word reasons, lastTransitionTime kept unless the status flips."""

from __future__ import annotations

from modeldeploy.operator.api.status import CONDITION_TYPES
from modeldeploy.operator.conditions import Situation, Wanted, compute, merge


def test_all_eight_in_canonical_order() -> None:
    s = Situation(state="Steady", reason="Serving", message="ok", available=True, available_message="ok")
    out = compute([], s, "2026-01-01T00:00:00Z", 3)
    assert tuple(c.type for c in out) == CONDITION_TYPES
    assert all(c.observed_generation == 3 for c in out)
    assert {c.type: c.status for c in out}["Ready"] == "True"


def test_transition_time_kept_without_a_flip_and_moved_with_one() -> None:
    first = merge([], "T1", 1, [Wanted("Ready", "False", "CanaryInProgress", "step 1/3")])
    same = merge(first, "T2", 2, [Wanted("Ready", "False", "AwaitingApproval", "step 2/3")])
    assert same[0].last_transition_time == "T1" and same[0].reason == "AwaitingApproval"
    flipped = merge(same, "T3", 2, [Wanted("Ready", "True", "Serving", "")])
    assert flipped[0].last_transition_time == "T3"


def test_rolled_back_reads_as_stalled_with_ready_rolled_back() -> None:
    s = Situation(
        state="RolledBack",
        reason="AnalysisFailed",
        ready_reason="RolledBack",
        message="latency",
        available=True,
        available_message="stable serves",
        degraded=("AnalysisFailed", "latency"),
    )
    c = {x.type: (x.status, x.reason) for x in compute([], s, "T", 1)}
    assert c["Ready"] == ("False", "RolledBack")
    assert c["Stalled"] == ("True", "AnalysisFailed")
    assert c["Reconciling"][0] == "False"
    assert c["Degraded"] == ("True", "AnalysisFailed")
    assert c["Available"] == ("True", "Serving")
