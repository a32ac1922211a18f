"""Issue 6's stories on the local cluster, under load: the real operator judges real runtime pods.

Each story deploys version 1 (two pods), sends steady load to the model's ClusterIP (a new
connection per request, so the kube-proxy stand-in spreads it by replica ratio), rolls out a
canary, and waits for the operator's decision.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import (
    ModelDeploymentHandle,
    ModelFile,
    PrometheusProcess,
    analysis_spec,
    apply_crds,
    build_models,
    wait_for,
)
from e2e.installed import InstalledOperator
from e2e.loadgen import BackgroundLoad
from e2e.stories import (
    DATAPLANE_S,
    Outcome,
    deploy_stable,
    held_inconclusive,
    promoted_to,
    roll_out,
    rolled_back,
    start_load,
)

from modeldeploy.localcluster.pytest_plugin import LOCAL_ONLY, ClusterHandle

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="session")
def story_crds(local_cluster: ClusterHandle) -> None:
    apply_crds(local_cluster)


@pytest.fixture
def story_models(local_cluster: ClusterHandle, k8s_namespace: str) -> dict[str, ModelFile]:
    return build_models(local_cluster, k8s_namespace)


@pytest.fixture
def md(
    local_cluster: ClusterHandle,
    k8s_namespace: str,
    story_crds: None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[ModelDeploymentHandle]:
    op = InstalledOperator(local_cluster, k8s_namespace, tmp_path / "operator.log").start()
    failed_before = request.session.testsfailed
    try:
        yield ModelDeploymentHandle(local_cluster, k8s_namespace)
    finally:
        op.stop()
        if request.session.testsfailed > failed_before:
            sys.stderr.write(f"\n--- operator log tail ({op.log_path}) ---\n{op.log()[-4000:]}\n")


@pytest.fixture
def prometheus_url(local_cluster: ClusterHandle) -> str:
    if not local_cluster.prometheus_url:
        pytest.skip(LOCAL_ONLY)
    return local_cluster.prometheus_url


def _stable(md: ModelDeploymentHandle, models: dict[str, ModelFile], analysis: dict[str, object]) -> BackgroundLoad:
    deploy_stable(md, models["stable"], analysis)
    return start_load(md, models["stable"].version)


def _assert_rolled_back_with_numbers(outcome: Outcome, metric_words: str) -> None:
    assert outcome.decision == "RolledBack", outcome.status
    conditions = {c["type"]: (c["status"], c["reason"]) for c in outcome.status["conditions"]}
    assert conditions["Ready"] == ("False", "RolledBack")
    assert conditions["Stalled"] == ("True", "AnalysisFailed")
    assert conditions["Degraded"][0] == "True"
    assert conditions["Available"][0] == "True"
    message = outcome.message
    assert metric_words in message
    for words in ("limit", "canary n=", "stable n=", "over "):
        assert words in message, message
    assert outcome.status["stable"]["modelVersion"] == "1"


def test_latency_slo_breach_is_rolled_back_with_zero_failed_requests(
    md: ModelDeploymentHandle, story_models: dict[str, ModelFile], prometheus_url: str
) -> None:
    analysis = analysis_spec(prometheus_url, slo={"latencyP99Ms": 5})
    load = _stable(md, story_models, analysis)
    try:
        outcome = roll_out(md, load, story_models["slow"], analysis, until=rolled_back)
    finally:
        stats = load.stop()
    _assert_rolled_back_with_numbers(outcome, "canary p99 latency")
    assert stats.versions().get("3", 0) > 0, "the slow canary never took traffic"
    assert not stats.failed(), f"failed client requests: {stats.failed()[:5]}"
    # once the data plane has followed the decision, every request is answered by stable
    assert set(stats.versions(start=_mono(outcome, outcome.decided_at + DATAPLANE_S))) == {"1"}
    latency = next(c for c in outcome.status["analysis"]["checks"] if c["metric"] == "latencyP99Ms")
    assert latency["verdict"] == "Fail"
    assert latency["value"] > 5
    assert outcome.rollback_seconds is not None
    assert outcome.rollback_seconds <= 10, f"rollback took {outcome.rollback_seconds:.1f}s"


def test_erroring_canary_is_rolled_back_by_the_pods_provider(
    md: ModelDeploymentHandle, story_models: dict[str, ModelFile]
) -> None:
    analysis = analysis_spec(None, slo={"errorRatePercent": 1}, compareToStable={"maxErrorRateDelta": 1})
    load = _stable(md, story_models, analysis)
    try:
        outcome = roll_out(md, load, story_models["erroring"], analysis, until=rolled_back)
    finally:
        stats = load.stop()
    _assert_rolled_back_with_numbers(outcome, "canary error rate")
    assert {a.code for a in stats.failed()} == {500}, "only the erroring canary's answers failed"
    late = outcome.failed_after(outcome.decided_at + DATAPLANE_S)
    assert not late, f"requests failed {DATAPLANE_S}s after the rollback: {late[:3]}"


def test_class_mix_shift_is_rolled_back_by_the_behaviour_check(
    md: ModelDeploymentHandle, story_models: dict[str, ModelFile], prometheus_url: str
) -> None:
    analysis = analysis_spec(prometheus_url, behaviour={"maxClassMixDistance": 0.1})
    load = _stable(md, story_models, analysis)
    try:
        outcome = roll_out(md, load, story_models["shifted"], analysis, until=rolled_back)
    finally:
        stats = load.stop()
    _assert_rolled_back_with_numbers(outcome, "class mix JS distance")
    failing = {c["metric"] for c in outcome.status["analysis"]["checks"] if c["verdict"] == "Fail"}
    assert failing == {"classMixDistance"}
    assert not stats.failed()


def test_good_canary_is_promoted(
    md: ModelDeploymentHandle, story_models: dict[str, ModelFile], prometheus_url: str
) -> None:
    analysis = analysis_spec(
        prometheus_url,
        slo={"latencyP99Ms": 250, "errorRatePercent": 1},
        compareToStable={"maxErrorRateDelta": 1, "maxLatencyRatio": 3},
        behaviour={"maxClassMixDistance": 0.1},
    )
    load = _stable(md, story_models, analysis)
    try:
        outcome = roll_out(md, load, story_models["good"], analysis, until=promoted_to("2"))
    finally:
        stats = load.stop()
    assert outcome.decision == "Promoted", outcome.status
    assert any(c.get("verdict") == "Pass" for c in outcome.checks)
    assert not stats.failed()
    assert stats.versions().get("2", 0) > 0
    assert set(stats.versions(start=_mono(outcome, outcome.decided_at + DATAPLANE_S))) == {"2"}
    history = [h["action"] for h in outcome.status["history"]]
    assert history[-1] == "Promoted"


def test_prometheus_stopped_mid_analysis_is_inconclusive_and_never_promotes(
    local_cluster: ClusterHandle,
    local_only: None,
    md: ModelDeploymentHandle,
    story_models: dict[str, ModelFile],
    tmp_path: Path,
) -> None:
    prometheus = PrometheusProcess(local_cluster, tmp_path / "prometheus").start()
    try:
        analysis = {**analysis_spec(prometheus.url, slo={"errorRatePercent": 1}), "inconclusiveLimit": 3}
        steps: list[dict[str, Any]] = [{"setWeight": 50}, {"analysis": {"duration": "10m"}}]
        load = _stable(md, story_models, analysis)
        md.apply(story_models["good"], analysis, steps)
        wait_for(
            lambda: (md.status().get("analysis") or {}).get("verdict") == "Pass", 120, "a passing check before the stop"
        )
        prometheus.stop()
        try:
            outcome = roll_out(md, load, story_models["good"], analysis, until=held_inconclusive, steps=steps)
        finally:
            stats = load.stop()
    finally:
        prometheus.stop()
    assert outcome.decision == "Inconclusive", outcome.status
    status = outcome.status
    assert status["stable"]["modelVersion"] == "1", "promoted without evidence"
    assert status["canary"]["modelVersion"] == "2"
    assert status["analysis"]["verdict"] == "Inconclusive"
    assert "unreachable" in status["analysis"]["message"]
    assert status["analysis"]["consecutiveInconclusive"] >= 3
    assert not any(h["action"] == "Promoted" for h in status.get("history") or [] if h.get("modelVersion") == "2")
    assert not stats.failed()


def _mono(outcome: Outcome, wall: float) -> float:
    """A wall-clock time as the load generator's monotonic clock (from any answer's pair of stamps)."""
    answer = outcome.load.answers[0]
    return answer.started + (wall - answer.wall)
