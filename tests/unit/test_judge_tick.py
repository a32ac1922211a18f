"""Analyser.tick end to end over fake HTTP answers: counters, schedule, provider errors, the record."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modeldeploy.operator.analysis import Analyser, AnalysisTarget, Arm, analysis_due
from modeldeploy.operator.analysis.engine import count
from modeldeploy.operator.api.analysis import Analysis
from modeldeploy.operator.api.status import AnalysisStatus, Verdict

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TARGET = AnalysisTarget(
    namespace="ml",
    name="fraud",
    model="fraud-scorer",
    stable=Arm("stable1", ("http://10.0.0.1:8080", "http://10.0.0.2:8080")),
    canary=Arm("canary1", ("http://10.0.0.3:8080",)),
)


# ------------------------------------------------------------------------------------ counters


@pytest.mark.parametrize(
    ("before", "verdict", "after"),
    [
        ((0, 0, 0), "Pass", (0, 0, 1)),
        ((1, 3, 2), "Pass", (0, 0, 3)),  # a Pass forgives earlier failures and inconclusive ticks
        ((1, 3, 2), "Fail", (2, 0, 2)),  # a Fail resets the inconclusive run
        ((1, 3, 2), "Inconclusive", (1, 4, 2)),  # Inconclusive leaves failures as they are
    ],
)
def test_counters(before: tuple[int, int, int], verdict: Verdict, after: tuple[int, int, int]) -> None:
    prev = AnalysisStatus(consecutive_failures=before[0], consecutive_inconclusive=before[1], passes=before[2])
    got = count(prev, verdict)
    assert (got.consecutive_failures, got.consecutive_inconclusive, got.passes) == after
    assert got.verdict == verdict


def test_counters_without_previous() -> None:
    assert count(None, "Fail").consecutive_failures == 1


def test_failure_limit_boundary() -> None:
    """The tick whose consecutive_failures reaches failureLimit is the one that triggers the rollback."""
    analysis = Analysis(failure_limit=2)
    status: AnalysisStatus | None = None
    reached = []
    verdicts: tuple[Verdict, ...] = ("Fail", "Inconclusive", "Fail")
    for verdict in verdicts:
        status = count(status, verdict)
        reached.append(status.consecutive_failures >= analysis.failure_limit)
    assert reached == [False, False, True]


# ------------------------------------------------------------------------------------ schedule


def test_analysis_due() -> None:
    analysis = Analysis(interval="5s", window="30s")
    assert analysis_due(None, analysis, T0)
    assert analysis_due(AnalysisStatus(), analysis, T0)
    last = AnalysisStatus(last_run_at="2025-01-01T12:00:00Z")
    assert not analysis_due(last, analysis, T0 + timedelta(seconds=4.9))
    assert analysis_due(last, analysis, T0 + timedelta(seconds=5))  # exactly one interval later
    assert analysis_due(AnalysisStatus(last_run_at="garbage"), analysis, T0)


# ------------------------------------------------------------------------------------ Prometheus answers


PROM = {"prometheus": {"address": "http://prometheus.test:9090", "timeout": "1s"}}


def _vector(rows: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [0, str(v)]} for m, v in rows]},
    }


def prometheus_answers(canary_errors: int, n: int = 1000) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        rows: list[tuple[dict[str, str], float]] = []
        for rev, errors in (("stable1", 0), ("canary1", canary_errors)):
            if "requests_total" in query:
                rows += [({"revision": rev, "code": "200"}, n - errors), ({"revision": rev, "code": "500"}, errors)]
            elif "duration_seconds_bucket" in query:
                rows += [({"revision": rev, "le": "0.005"}, n), ({"revision": rev, "le": "+Inf"}, n)]
            elif "class_total" in query:
                rows += [({"revision": rev, "class": "0"}, n / 2), ({"revision": rev, "class": "1"}, n / 2)]
        if query.startswith("custom"):
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}})
        return httpx.Response(200, json=_vector(rows))

    return handler


def analysis_spec(**fields: Any) -> Analysis:
    return Analysis.model_validate(
        {
            "interval": "5s",
            "window": "30s",
            "minRequests": 100,
            "slo": {"errorRatePercent": 1, "latencyP99Ms": 50},
            "compareToStable": {"maxErrorRateDelta": 0.5},
            "behaviour": {"maxClassMixDistance": 0.1},
            "provider": PROM,
            **fields,
        }
    )


async def _tick(
    handler: Callable[[httpx.Request], httpx.Response], analysis: Analysis, previous: AnalysisStatus | None = None
) -> AnalysisStatus:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        analyser = Analyser(http=http)
        try:
            return await analyser.tick(analysis, TARGET, previous, T0)
        finally:
            await analyser.aclose()


async def test_tick_pass_records_everything() -> None:
    metrics = [{"name": "custom-one", "query": "custom {{canary}}", "max": 5}]
    status = await _tick(prometheus_answers(0), analysis_spec(metrics=metrics))
    assert status.verdict == "Pass", status.message
    assert status.passes == 1
    assert status.last_run_at == "2025-01-01T12:00:00Z"
    assert status.window == "30s"
    assert set(status.arms) == {"stable", "canary"}
    assert status.arms["canary"].requests == 1000
    assert {c.metric for c in status.checks} == {
        "latencyP99Ms",
        "errorRatePercent",
        "errorRateDelta",
        "classMixDistance",
        "custom-one",
    }
    assert set(status.queries) == {"requests", "latency", "classes", "scores", "rejections", "metric:custom-one"}
    assert 'revision="canary1"' in status.queries["metric:custom-one"]
    assert status.message.startswith("Pass: all 5 checks")


async def test_tick_fail_counts_and_explains() -> None:
    previous = AnalysisStatus(consecutive_failures=1, consecutive_inconclusive=0, passes=2)
    status = await _tick(prometheus_answers(100), analysis_spec(), previous)
    assert status.verdict == "Fail"
    assert status.consecutive_failures == 2
    assert "canary error rate 10% > limit 1%" in status.message
    assert "canary n=1000, stable n=1000, over 30s" in status.message


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (lambda r: httpx.Response(200, text="<html>not prometheus</html>"), "not JSON"),
        (lambda r: httpx.Response(400, json={"status": "error", "error": "parse error"}), "HTTP 400: parse error"),
        (lambda r: httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix"}}), "'matrix'"),
        (
            lambda r: httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [{}]}}),
            "malformed",
        ),
    ],
)
async def test_bad_answers_are_inconclusive(handler: Callable[[httpx.Request], httpx.Response], expected: str) -> None:
    previous = AnalysisStatus(consecutive_failures=1, consecutive_inconclusive=2)
    status = await _tick(handler, analysis_spec(), previous)
    assert status.verdict == "Inconclusive"
    assert expected in status.message
    assert (status.consecutive_failures, status.consecutive_inconclusive) == (1, 3)
    assert status.checks[0].metric == "provider"


async def test_timeout_is_inconclusive() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    status = await _tick(handler, analysis_spec())
    assert status.verdict == "Inconclusive"
    assert "timed out" in status.message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_prometheus_is_inconclusive() -> None:
    analysis = analysis_spec(provider={"prometheus": {"address": f"http://127.0.0.1:{_closed_port()}"}})
    analyser = Analyser()
    try:
        status = await analyser.tick(analysis, TARGET, None, T0)
    finally:
        await analyser.aclose()
    assert status.verdict == "Inconclusive"
    assert "unreachable" in status.message


async def test_an_unexpected_exception_is_inconclusive() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    status = await _tick(handler, analysis_spec())
    assert status.verdict == "Inconclusive"
    assert "internal error: RuntimeError: boom" in status.message


# ------------------------------------------------------------------------------------ pods provider


def _page(revision: str, ok: float, errors: float = 0, started: float = 1.0) -> str:
    base = f'model="fraud-scorer",version="1",revision="{revision}",track="x"'
    return "\n".join(
        [
            "# TYPE modeldeploy_requests_total counter",
            f'modeldeploy_requests_total{{{base},code="200"}} {ok}',
            f'modeldeploy_requests_total{{{base},code="500"}} {errors}',
            "# TYPE modeldeploy_request_duration_seconds histogram",
            f'modeldeploy_request_duration_seconds_bucket{{{base},le="0.005"}} {ok + errors}',
            f'modeldeploy_request_duration_seconds_bucket{{{base},le="+Inf"}} {ok + errors}',
            f"modeldeploy_request_duration_seconds_count{{{base}}} {ok + errors}",
            f"modeldeploy_request_duration_seconds_sum{{{base}}} 0.1",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {started}",
            "",
        ]
    )


class FakePods:
    """Answers /metrics per pod host from a mutable table of counters."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        page = self.pages.get(request.url.host)
        if page is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, text=page)


async def test_pods_provider_differences_ticks() -> None:
    pods = FakePods()
    analysis = Analysis.model_validate(
        {"interval": "5s", "window": "30s", "minRequests": 100, "slo": {"errorRatePercent": 1}}
    )

    def load(stable_ok: float, canary_ok: float, canary_errors: float = 0, canary_started: float = 1.0) -> None:
        pods.pages["10.0.0.1"] = _page("stable1", stable_ok)
        pods.pages["10.0.0.2"] = _page("stable1", stable_ok)
        pods.pages["10.0.0.3"] = _page("canary1", canary_ok, canary_errors, canary_started)

    async with httpx.AsyncClient(transport=httpx.MockTransport(pods)) as http:
        analyser = Analyser(http=http)
        load(10_000, 5_000)
        first = await analyser.tick(analysis, TARGET, None, T0)
        assert first.verdict == "Inconclusive"
        assert "baseline taken" in first.message

        load(10_300, 5_200)
        second = await analyser.tick(analysis, TARGET, first, T0 + timedelta(seconds=5))
        assert second.verdict == "Pass", second.message
        assert second.arms["stable"].requests == 600  # two pods, 300 each
        assert second.arms["canary"].requests == 200
        assert second.window == "5s"

        # the canary restarted and has since answered 150 requests, 30 of them with 500
        load(10_600, 120, 30, canary_started=2.0)
        third = await analyser.tick(analysis, TARGET, second, T0 + timedelta(seconds=10))
        assert third.arms["canary"].requests == 150
        assert third.verdict == "Fail"
        assert third.window == "10s"  # measured from the oldest snapshot inside the window

        # one stable pod stops answering: left out and said so
        del pods.pages["10.0.0.2"]
        load_stable_one = _page("stable1", 11_000)
        pods.pages["10.0.0.1"] = load_stable_one
        fourth = await analyser.tick(analysis, TARGET, third, T0 + timedelta(seconds=15))
        assert "10.0.0.2:8080 did not answer" in fourth.message
        assert fourth.arms["stable"].requests == 1000

        # every canary pod gone: a provider error, Inconclusive
        del pods.pages["10.0.0.3"]
        fifth = await analyser.tick(analysis, TARGET, fourth, T0 + timedelta(seconds=20))
        assert fifth.verdict == "Inconclusive"
        assert "none of the 1 canary pods answered" in fifth.message
        assert fifth.consecutive_failures == fourth.consecutive_failures
        await analyser.aclose()


async def test_pods_provider_counts_a_young_pod_from_zero() -> None:
    pods = FakePods()
    now = T0
    young = (now - timedelta(seconds=10)).timestamp()
    for host, rev in (("10.0.0.1", "stable1"), ("10.0.0.2", "stable1"), ("10.0.0.3", "canary1")):
        pods.pages[host] = _page(rev, 400, started=young)
    analysis = Analysis.model_validate({"interval": "5s", "window": "30s", "minRequests": 100})
    async with httpx.AsyncClient(transport=httpx.MockTransport(pods)) as http:
        status = await Analyser(http=http).tick(analysis, TARGET, None, now)
    assert status.verdict == "Pass", status.message
    assert status.arms["canary"].requests == 400
    assert status.window == "10s"


async def test_pods_provider_without_pods_is_inconclusive() -> None:
    target = AnalysisTarget("ml", "fraud", "fraud-scorer", Arm("s", ("http://10.0.0.1:8080",)), Arm("c", ()))
    async with httpx.AsyncClient(transport=httpx.MockTransport(FakePods())) as http:
        status = await Analyser(http=http).tick(Analysis(), target, None, T0)
    assert status.verdict == "Inconclusive"
    assert "no ready pods" in status.message


def test_status_round_trips_through_the_wire_form() -> None:
    status = AnalysisStatus(verdict="Pass", passes=1, queries={"requests": "sum(x)"})
    assert AnalysisStatus.model_validate(json.loads(json.dumps(status.wire()))) == status


async def test_baselines_are_kept_per_modeldeployment() -> None:
    """Issue 12 hole 4: snapshots were keyed by pod URL alone and pruned with the caller's window, so a
    ModelDeployment judged every 5 minutes beside one with a 30 s window never kept a baseline."""
    pods = FakePods()
    slow = Analysis.model_validate({"interval": "5m", "window": "5m", "minRequests": 100})
    fast = Analysis.model_validate({"interval": "30s", "window": "30s", "minRequests": 100})
    other = dataclasses.replace(
        TARGET,
        name="other",
        stable=Arm("stable9", ("http://10.0.0.1:8080", "http://10.0.0.2:8080")),
        canary=Arm("canary9", ("http://10.0.0.3:8080",)),
    )
    total = 10_000.0

    def load() -> None:
        for host, rev in (("10.0.0.1", "stable1"), ("10.0.0.2", "stable1"), ("10.0.0.3", "canary1")):
            pods.pages[host] = _page(rev, total) + _page(rev.replace("1", "9"), total)

    async with httpx.AsyncClient(transport=httpx.MockTransport(pods)) as http:
        analyser = Analyser(http=http)
        load()
        first = await analyser.tick(slow, TARGET, None, T0)
        assert "baseline taken" in first.message
        status = None
        for i in range(1, 11):  # the other one ticks every 30 s over the same pods
            total += 100
            load()
            status = await analyser.tick(fast, other, status, T0 + timedelta(seconds=30 * i))
        second = await analyser.tick(slow, TARGET, first, T0 + timedelta(minutes=5))
        assert "baseline taken" not in second.message and second.arms["canary"].requests == 1000
        await analyser.aclose()
