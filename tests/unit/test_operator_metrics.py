"""The operator's analysis metrics, recorded by a real `Operator.reconcile` over a fake Kube and read
back from the operator's registry: verdicts, rollbacks by reason, time from the first failing check
to the canary's weight at zero, and the condition gauge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from modeldeploy.operator import metrics
from modeldeploy.operator.analysis import Analyser, AnalysisTarget
from modeldeploy.operator.analysis.engine import count
from modeldeploy.operator.api import Analysis, AnalysisStatus, ModelDeployment
from modeldeploy.operator.controller import Loop as _Loop
from modeldeploy.operator.controller import Operator, rollback_seconds
from modeldeploy.operator.kube import Kube
from modeldeploy.operator.rollout import Observed, effective_for, plan

from .test_handlers_gateway import FakeKube
from .test_planner import ANALYSIS, SHA_B, Sim, deploy, make_md, verdict


def sample(metric: str, /, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(metric, labels) or 0.0


class FakeAnalyser:
    """Answers every tick with the next of `verdicts`, as `Analyser.tick` would have counted them."""

    def __init__(self, *verdicts: str) -> None:
        self.verdicts = list(verdicts)

    async def tick(
        self, analysis: Analysis, target: AnalysisTarget, previous: AnalysisStatus | None, now: datetime
    ) -> AnalysisStatus:
        v = self.verdicts.pop(0)
        return count(previous, v, now.isoformat()).model_copy(  # type: ignore[arg-type]
            update={"last_run_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "message": f"{v}: latencyP99Ms 80 > 50"}
        )


def canary_taking_traffic(first_failure: datetime | None) -> dict[str, Any]:
    """A ModelDeployment at its analysis step with the canary at 50%; one failed check behind it."""
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=ANALYSIS))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    if first_failure is not None:
        v = verdict("Fail", failures=1, at=first_failure).model_copy(
            update={"first_failure_at": first_failure.isoformat()}
        )
        sim.tick(verdict=v)
    assert sim.status.canary is not None and sim.status.canary.weight == 50
    return sim.obj


def reconcile(obj: dict[str, Any], analyser: FakeAnalyser) -> FakeKube:
    kube = FakeKube(obj, routes=True)
    op = Operator(cast("Kube", kube), cast("Analyser", analyser))
    asyncio.run(op.reconcile("ml", "fraud", _Loop()))
    return kube


def test_a_failed_check_that_reaches_the_limit_records_verdict_rollback_and_its_time() -> None:
    first = datetime.now(UTC) - timedelta(seconds=6)  # one interval (5s) ago: the next check is due
    obj = canary_taking_traffic(first)
    before = {
        "fail": sample("modeldeploy_operator_analysis_verdicts_total", namespace="ml", name="fraud", verdict="Fail"),
        "rb": sample("modeldeploy_operator_rollbacks_total", namespace="ml", name="fraud", reason="AnalysisFailed"),
        "n": sample("modeldeploy_operator_rollback_seconds_count"),
        "sum": sample("modeldeploy_operator_rollback_seconds_sum"),
        "old": sample("modeldeploy_operator_rollouts_total", namespace="ml", name="fraud", result="AnalysisFailed"),
    }
    kube = reconcile(obj, FakeAnalyser("Fail"))
    assert kube.statuses, "the rollback was written"
    fail = sample("modeldeploy_operator_analysis_verdicts_total", namespace="ml", name="fraud", verdict="Fail")
    assert fail == before["fail"] + 1
    rb = sample("modeldeploy_operator_rollbacks_total", namespace="ml", name="fraud", reason="AnalysisFailed")
    assert rb == before["rb"] + 1
    old = sample("modeldeploy_operator_rollouts_total", namespace="ml", name="fraud", result="AnalysisFailed")
    assert old == before["old"] + 1  # the existing series keeps counting
    assert sample("modeldeploy_operator_rollback_seconds_count") == before["n"] + 1
    took = sample("modeldeploy_operator_rollback_seconds_sum") - before["sum"]
    assert 6.0 <= took < 60.0  # measured from the first failed check, not from this reconcile
    stalled = {
        s: sample("modeldeploy_operator_condition", namespace="ml", name="fraud", type="Stalled", status=s)
        for s in ("True", "False", "Unknown")
    }
    assert stalled == {"True": 1.0, "False": 0.0, "Unknown": 0.0}
    assert sample("modeldeploy_operator_condition", namespace="ml", name="fraud", type="Degraded", status="True") == 1


def test_a_passing_check_counts_a_pass_and_no_rollback() -> None:
    obj = canary_taking_traffic(None)
    before_pass = sample("modeldeploy_operator_analysis_verdicts_total", namespace="ml", name="fraud", verdict="Pass")
    before_n = sample("modeldeploy_operator_rollback_seconds_count")
    reconcile(obj, FakeAnalyser("Pass"))
    after = sample("modeldeploy_operator_analysis_verdicts_total", namespace="ml", name="fraud", verdict="Pass")
    assert after == before_pass + 1
    assert sample("modeldeploy_operator_rollback_seconds_count") == before_n
    assert sample("modeldeploy_operator_condition", namespace="ml", name="fraud", type="Stalled", status="False") == 1
    progressing = sample(
        "modeldeploy_operator_condition", namespace="ml", name="fraud", type="Progressing", status="True"
    )
    assert progressing == 1


def test_forget_drops_the_condition_series() -> None:
    metrics.set_conditions("gone", "md", [("Ready", "True"), ("Stalled", "False")])
    assert sample("modeldeploy_operator_condition", namespace="gone", name="md", type="Ready", status="True") == 1
    metrics.forget("gone", "md")
    labels = {"namespace": "gone", "name": "md", "type": "Ready", "status": "True"}
    assert metrics.REGISTRY.get_sample_value("modeldeploy_operator_condition", labels) is None


def test_first_failure_is_kept_through_failures_and_inconclusive_and_cleared_by_a_pass() -> None:
    s = count(None, "Fail", "t1")
    assert s.first_failure_at == "t1"
    s = count(s, "Inconclusive", "t2")
    assert s.first_failure_at == "t1"
    s = count(s, "Fail", "t3")
    assert (s.first_failure_at, s.consecutive_failures) == ("t1", 2)
    s = count(s, "Pass", "t4")
    assert s.first_failure_at is None
    assert count(s, "Fail", "t5").first_failure_at == "t5"
    assert count(None, "Inconclusive", "t6").first_failure_at is None


def test_rollback_seconds_only_for_analysis_rollbacks() -> None:
    obj = canary_taking_traffic(None)
    md = ModelDeployment.from_wire(obj)
    now = datetime.now(UTC)
    p = plan(md, effective_for(md.spec), Observed(), None, now)
    assert p.rollback is None and rollback_seconds(p, now) is None


def test_info_is_one_series_per_object_replaced_when_its_owner_or_tier_changes() -> None:
    metrics.set_info("ml", "info-md", "team-a", 1)
    metrics.set_info("ml", "other-md", "team-a", 1)
    metrics.set_info("ml", "info-md", "team-b", 2)
    info = "modeldeploy_modeldeployment_info"
    assert sample(info, namespace="ml", name="info-md", owner="team-b", tier="2") == 1
    assert (
        metrics.REGISTRY.get_sample_value(info, {"namespace": "ml", "name": "info-md", "owner": "team-a", "tier": "1"})
        is None
    )
    assert sample(info, namespace="ml", name="other-md", owner="team-a", tier="1") == 1
    metrics.forget("ml", "info-md")
    assert (
        metrics.REGISTRY.get_sample_value(info, {"namespace": "ml", "name": "info-md", "owner": "team-b", "tier": "2"})
        is None
    )
