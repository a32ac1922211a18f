"""The `kubectl modeldeploy` plugin's pure parts: the status tree, the tables, the control plans and the
terminal frames, on statuses built with the operator's own API models (so the wire names are the real ones)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.kubectl import controls, render, screen, tables, timefmt
from modeldeploy.kubectl.style import Style
from modeldeploy.operator import controls as operator_controls
from modeldeploy.operator.api.status import (
    AnalysisStatus,
    ArmMeasurement,
    CanaryStatus,
    CheckResult,
    Condition,
    ContractStatus,
    HandledControls,
    HistoryEntry,
    ModelDeploymentStatus,
    RevisionRef,
    StableStatus,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def t(seconds_ago: int) -> str:
    return timefmt.rfc3339(datetime.fromtimestamp(NOW.timestamp() - seconds_ago, UTC))


def cond(ctype: str, status: str, reason: str, message: str = "") -> Condition:
    return Condition.model_validate(
        {"type": ctype, "status": status, "reason": reason, "message": message, "last_transition_time": t(30)}
    )


def obj(status: ModelDeploymentStatus | None, paused: bool = False, generation: int = 2) -> dict[str, Any]:
    o: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation, "creationTimestamp": t(3600)},
        "spec": {"tier": 1, "owner": "team-fraud", "model": {"name": "fraud-scorer", "version": "8"}, "paused": paused},
    }
    if status is not None:
        o["status"] = status.wire()
    return o


STABLE = StableStatus(
    revision="aaa111", model_version="7", sha256="0" * 64, replicas=2, ready_replicas=2, weight=75, promoted_at=t(600)
)
CANARY = CanaryStatus(
    revision="bbb222",
    model_version="8",
    sha256="1" * 64,
    replicas=1,
    ready_replicas=1,
    weight=25,
    effective_weight=33,
    step=2,
    step_count=4,
    step_action="approval",
    step_started_at=t(45),
    started_at=t(300),
    last_progress_at=t(45),
    contract=ContractStatus(checked=True, compatible=True, checked_at=t(290)),
)
ANALYSIS = AnalysisStatus(
    last_run_at=t(5),
    verdict="Fail",
    consecutive_failures=1,
    passes=3,
    window="4m30s",
    arms={
        "stable": ArmMeasurement(
            requests=5400, errors=3, error_rate_percent=0.0556, latency_p50_ms=1.2, latency_p99_ms=8
        ),
        "canary": ArmMeasurement(
            requests=1800, errors=40, error_rate_percent=2.222, latency_p50_ms=1.4, latency_p99_ms=9
        ),
    },
    checks=[
        CheckResult(metric="errorRatePercent", verdict="Fail", value=2.222, threshold=1, message="40/1800 requests"),
        CheckResult(metric="latencyP99Ms", verdict="Pass", value=9, threshold=50, message="p99 9ms of 1800"),
        CheckResult(metric="classMixDistance", verdict="Inconclusive", message="too few predictions"),
    ],
    message="1 of 3 checks failed: errorRatePercent 2.222 > 1 (canary 40/1800 requests over 4m30s)",
)
HISTORY = [
    HistoryEntry(
        time=t(300 - i),
        action="RolloutStarted",
        revision="bbb222",
        model_version="8",
        author="alice",
        reason="RolloutStarted",
        message=f"entry {i}",
    )
    for i in range(6)
] + [
    HistoryEntry(
        time=t(45),
        action="Approved",
        revision="bbb222",
        model_version="8",
        author="bob",
        reason="Approved",
        message="Step 2/4 approved by bob.",
    )
]
AWAITING = ModelDeploymentStatus(
    observed_generation=2,
    phase="AwaitingApproval",
    conditions=[
        cond("Ready", "False", "CanaryInProgress", "Canary 8 at step 3/4."),
        cond("Reconciling", "True", "AwaitingApproval"),
        cond("Stalled", "False", "Progressing"),
        cond("AwaitingApproval", "True", "ApprovalStep", "Approve with kubectl annotate ..."),
    ],
    stable=STABLE,
    canary=CANARY,
    analysis=ANALYSIS,
    history=HISTORY,
    endpoint="http://fraud.ml.svc:8080",
)


def test_status_tree_during_a_canary_shows_every_field_a_person_decides_from() -> None:
    text = render.status_tree(obj(AWAITING), NOW)
    for expected in [
        "ml/fraud",
        "fraud-scorer (tier 1, owner team-fraud)",
        "Phase:      AwaitingApproval",
        "http://fraud.ml.svc:8080",
        # stable and canary: versions, revisions, replicas ready, weights
        "stable  version 7  revision aaa111",
        "replicas 2/2 ready",
        "weight 75%",
        "promoted 10m ago",
        "canary  version 8  revision bbb222",
        "replicas 1/1 ready",
        "weight 25% requested, 33% effective (differs)",
        # the step, with its action
        "step 3/4 (approval), started 45s ago",
        "rollout started 5m ago",
        "contract compatible with stable",
        # the last verdict, every check's value and limit, and the samples per arm
        "last verdict Fail, 5s ago, over 4m30s; 1 failed and 0 inconclusive in a row, 3 passed this step",
        "stable  requests 5400, errors 3 (0.0556%)",
        "canary  requests 1800, errors 40 (2.222%)",
        "p99 9ms",
        "Fail         errorRatePercent 2.222 (limit <= 1)",
        "40/1800 requests",
        "Pass         latencyP99Ms 9 (limit <= 50)",
        "Inconclusive classMixDistance -",
        "1 of 3 checks failed",
        # conditions, with the message of those that hold
        "AwaitingApproval True   ApprovalStep",
        "Approve with kubectl annotate",
        "Ready            False  CanaryInProgress",
        # the last history entries, newest last
        "History (last 5 of 7, newest last):",
        "45s ago    Approved bbb222 v8 by bob: Step 2/4 approved by bob.",
        # and what to do next
        "kubectl modeldeploy approve fraud",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "entry 1" not in text and "entry 2" in text  # the 5 newest only
    assert "\x1b" not in text  # plain unless asked for colour


def test_status_tree_in_colour_paints_the_verdicts_and_nothing_else_changes() -> None:
    coloured = render.status_tree(obj(AWAITING), NOW, Style(True))
    assert "\x1b[31mFail\x1b[0m" in coloured and "\x1b[32mPass\x1b[0m" in coloured
    assert screen.visible(coloured) == render.status_tree(obj(AWAITING), NOW)


def test_status_tree_of_a_new_object_a_rollback_and_an_incompatible_contract() -> None:
    assert "the operator has not written a status yet" in render.status_tree(obj(None), NOW)
    stale = render.status_tree(obj(AWAITING, generation=3), NOW)
    assert "generation 3 not observed yet (status describes 2)" in stale
    rolled = AWAITING.model_copy(
        update={
            "canary": None,
            "analysis": None,
            "phase": "RolledBack",
            "rolled_back_revision": RevisionRef(revision="bbb222", model_version="8", sha256="1" * 64),
            "conditions": [cond("Stalled", "True", "AnalysisFailed", "errorRatePercent 2.2 > 1")],
        }
    )
    text = render.status_tree(obj(rolled), NOW)
    assert "RolledBack  version 8  revision bbb222" in text
    assert "Stalled          True   AnalysisFailed" in text and "errorRatePercent 2.2 > 1" in text
    assert "kubectl modeldeploy retry fraud" in text and "Analysis:" not in text
    bad = CANARY.model_copy(
        update={"contract": ContractStatus(checked=True, differences=['input "x": datatype FP32 -> FP64'])}
    )
    text = render.status_tree(obj(AWAITING.model_copy(update={"canary": bad})), NOW)
    assert 'contract INCOMPATIBLE: input "x": datatype FP32 -> FP64' in text
    assert "Paused:     spec.paused is true" in render.status_tree(obj(AWAITING, paused=True), NOW)


def test_list_and_history_tables() -> None:
    healthy = ModelDeploymentStatus(
        phase="Healthy", stable=STABLE, conditions=[cond("Ready", "True", "Serving")], history=HISTORY
    )
    listing = tables.list_rows([obj(AWAITING), obj(healthy)], NOW, all_namespaces=True).splitlines()
    assert listing[0].split() == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "STABLE",
        "CANARY",
        "WEIGHT",
        "STEP",
        "VERDICT",
        "READY",
        "AGE",
    ]
    assert listing[1].split()[:6] == ["ml", "fraud", "AwaitingApproval", "7", "8", "25%/33%"]
    assert "step 3/4 (approval)" in listing[1] and listing[1].split()[-3:] == ["Fail", "False", "1h"]
    assert listing[2].split() == ["ml", "fraud", "Healthy", "7", "-", "-", "-", "-", "True", "1h"]
    hist = tables.history_table(obj(AWAITING), NOW).splitlines()
    assert hist[0].split() == ["AGE", "TIME", "ACTION", "REVISION", "VERSION", "AUTHOR", "REASON", "MESSAGE"]
    assert len(hist) == 1 + 7 and hist[-1].split()[:7] == ["45s", t(45), "Approved", "bbb222", "8", "bob", "Approved"]
    assert json.loads(tables.history_json(obj(AWAITING))) == [h.wire() for h in HISTORY]


def test_the_annotations_are_the_ones_the_operator_reads() -> None:
    for key, control in [
        (controls.APPROVE, "approve"),
        (controls.ABORT, "abort"),
        (controls.RETRY, "retry"),
        (controls.PROMOTE_FULL, "promote-full"),
    ]:
        assert key == operator_controls.annotation(control)  # type: ignore[arg-type]
    assert set(HandledControls.model_fields) == {"approve", "abort", "retry", "promote_full"}


def test_control_plans() -> None:
    o = obj(AWAITING)
    plan = controls.plan_approve(o, "alice")
    assert isinstance(plan, controls.Plan) and plan.expect == "Approved"
    (w,) = plan.writes
    assert w.patch == {"metadata": {"annotations": {controls.APPROVE: "bbb222", controls.APPROVE + "-by": "alice"}}}
    # the operator's approval_names accepts the value, and the status shows it taken in once handled says so
    assert operator_controls.approval_names("bbb222", "bbb222")
    handled = obj(AWAITING.model_copy(update={"handled": HandledControls(approve="bbb222")}))
    assert w.taken(o, handled) and not w.taken(o, o)
    # a second approval step of the same revision gets `<revision>/<suffix>`
    again = controls.plan_approve(handled, "alice")
    assert isinstance(again, controls.Plan)
    value = again.writes[0].patch["metadata"]["annotations"][controls.APPROVE]
    assert value == "bbb222/step-3" and operator_controls.approval_names(value, "bbb222")
    # refusals name the state; nothing is written
    healthy = obj(ModelDeploymentStatus(phase="Healthy", stable=STABLE))
    for refused in (
        controls.plan_approve(healthy, "a"),
        controls.plan_abort(healthy, "a", None, NOW),
        controls.plan_retry(healthy, "a"),
        controls.plan_promote_full(healthy, "a", NOW),
        controls.plan_promote(healthy, "a"),
    ):
        assert isinstance(refused, controls.Refusal) and "phase Healthy" in refused.message
    # abort: the reason is the value; the same reason twice still acts (a new value)
    abort = controls.plan_abort(o, "alice", "INC-1", NOW)
    assert isinstance(abort, controls.Plan)
    assert abort.writes[0].patch["metadata"]["annotations"][controls.ABORT] == "INC-1"
    aborted_before = obj(AWAITING.model_copy(update={"handled": HandledControls(abort="INC-1")}))
    abort2 = controls.plan_abort(aborted_before, "alice", "INC-1", NOW)
    assert isinstance(abort2, controls.Plan)
    assert abort2.writes[0].patch["metadata"]["annotations"][controls.ABORT] == f"INC-1 ({timefmt.rfc3339(NOW)})"
    # promote passes what waits for a person: an approval step here
    promote = controls.plan_promote(o, "alice")
    assert isinstance(promote, controls.Plan) and promote.expect == "Approved"
    full = controls.plan_promote_full(o, "alice", NOW)
    assert isinstance(full, controls.Plan) and full.expect == "PromotedFull"
    # pause and resume write spec.paused, taken in once the generation is observed
    pause = controls.plan_pause(o)
    assert isinstance(pause, controls.Plan) and pause.writes[0].patch == {"spec": {"paused": True}}
    assert pause.writes[0].taken({"metadata": {"generation": 2}}, o)
    assert not pause.writes[0].taken({"metadata": {"generation": 3}}, o)
    assert isinstance(controls.plan_pause(obj(AWAITING, paused=True)), controls.Noop)
    assert isinstance(controls.plan_resume(o), controls.Noop)
    at_pause = AWAITING.model_copy(
        update={"conditions": [cond("Paused", "True", "PauseStep", "Step 2/4 pauses until resumed")]}
    )
    dance = controls.plan_resume(obj(at_pause))
    assert isinstance(dance, controls.Plan)
    assert [w.patch for w in dance.writes] == [{"spec": {"paused": True}}, {"spec": {"paused": False}}]
    assert controls.field_manager("system:admin") == "kubectl-modeldeploy:system:admin"


def test_retry_once_per_revision_and_outcome() -> None:
    rb = RevisionRef(revision="bbb222", model_version="8", sha256="1" * 64)
    rolled = AWAITING.model_copy(update={"canary": None, "rolled_back_revision": rb})
    plan = controls.plan_retry(obj(rolled), "alice")
    assert (
        isinstance(plan, controls.Plan) and plan.writes[0].patch["metadata"]["annotations"][controls.RETRY] == "bbb222"
    )
    twice = controls.plan_retry(obj(rolled.model_copy(update={"handled": HandledControls(retry="bbb222")})), "a")
    assert isinstance(twice, controls.Refusal) and "once" in twice.message
    retried = HistoryEntry(
        time=t(1), action="Retried", revision="bbb222", author="alice", reason="Retried", message="m"
    )
    after = obj(rolled.model_copy(update={"history": [*HISTORY, retried]}))
    result, lines = controls.outcome(plan, obj(rolled), after, NOW)
    assert result == "done" and "Retried bbb222 by alice: m" in lines[0] and lines[-1].startswith("now: phase")
    result, _ = controls.outcome(plan, obj(rolled), obj(rolled), NOW)
    assert result == "ignored"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (192, "3m12s"), (7500, "2h5m"), (3 * 86400 + 3600, "3d1h")],
)
def test_durations(seconds: int, text: str) -> None:
    assert timefmt.duration(seconds) == text


def test_times() -> None:
    assert timefmt.age("2026-01-01T11:59:58.250Z", NOW) == "1s"
    assert timefmt.age("not a time", NOW) == "?" and timefmt.age(None, NOW) == "?"


def test_frames_clip_to_the_terminal_and_redraw_from_the_top() -> None:
    text = "short\n" + "\x1b[31m" + "x" * 50 + "\x1b[0m" + "\n" + "y" * 10
    first = screen.frame(text, width=20, height=10, first=True)
    assert first.startswith(screen.HIDE_CURSOR + screen.HOME + screen.CLEAR_SCREEN)
    lines = first.split("\n")
    assert all(len(screen.visible(line)) <= 19 for line in lines)  # never wraps
    assert lines[1].endswith(screen.RESET + screen.ERASE_LINE_END)  # a clipped colour is closed
    again = screen.frame(text, 20, 10, first=False)
    assert again.startswith(screen.HOME) and screen.CLEAR_SCREEN not in again and again.endswith(screen.ERASE_BELOW)
    tall = screen.frame("\n".join(str(i) for i in range(30)), 40, 10, first=False)
    shown = [screen.visible(x) for x in tall.removeprefix(screen.HOME).split("\n")]
    assert len(shown) == 10 and shown[8] == "... 22 more lines (a taller terminal sh"
