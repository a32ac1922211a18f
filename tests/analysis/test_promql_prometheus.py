"""The PromQL the operator renders, answered by a real Prometheus scraping real runtimes.

Four runtime processes stand for four revisions of one model (stable, a good canary with the same
model, a canary with a shifted class mix, an erroring canary); Prometheus scrapes them every second
through file_sd with a `namespace` target label, as the cluster's scrape config does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from e2e.loadgen import LoadGenerator
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.operator.analysis import Analyser, AnalysisTarget, Arm
from modeldeploy.operator.analysis.providers.prometheus import PrometheusMetrics
from modeldeploy.operator.analysis.samples import RawWindow
from modeldeploy.operator.api.analysis import Analysis, PrometheusProvider
from modeldeploy.runtime import contract

from .conftest import MODEL, NAMESPACE, Prometheus, Revision, Runtimes

LOAD = 300
POLL_S = 0.25


def target(stable: Revision, canary: Revision) -> AnalysisTarget:
    return AnalysisTarget(NAMESPACE, "fraud", MODEL, Arm(stable.name, (stable.url,)), Arm(canary.name, (canary.url,)))


def analysis(prom: Prometheus, **fields: Any) -> Analysis:
    return Analysis.model_validate(
        {
            "interval": "5s",
            "window": "10m",
            "minRequests": 100,
            "slo": {"errorRatePercent": 1, "latencyP99Ms": 500},
            "compareToStable": {"maxErrorRateDelta": 1},
            "behaviour": {"maxClassMixDistance": 0.1, "maxInputRejectionPercent": 5},
            "provider": {"prometheus": {"address": prom.url, "timeout": "2s"}},
            **fields,
        }
    )


def runtime_counters(url: str) -> dict[str, float]:
    """requests by code and classes, as the runtime itself counts them."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url + contract.METRICS_PATH).text):
        for s in family.samples:
            if s.name == contract.METRIC_REQUESTS_TOTAL:
                out[f"code {s.labels['code']}"] = s.value
            elif s.name == contract.METRIC_PREDICTION_CLASS_TOTAL:
                out[f"class {s.labels['class']}"] = s.value
    return out


async def poll(what: str, probe: Callable[[], Any], limit_s: float = 30.0) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)  # poll


@pytest.fixture(scope="module")
def loaded(runtimes: Runtimes, prometheus: Prometheus) -> Runtimes:
    """Every runtime answered LOAD requests on the same inputs, and Prometheus has scraped them all."""

    async def load() -> None:
        await asyncio.gather(*(LoadGenerator(r.url, MODEL, seed=7).send(LOAD) for r in runtimes.all()))

    asyncio.run(load())
    expected = {
        r.name: sum(runtime_counters(r.url).get(f"code {c}", 0) for c in ("200", "500")) for r in runtimes.all()
    }

    def scraped() -> bool:
        query = f"sum by (revision) ({contract.METRIC_REQUESTS_TOTAL})"
        body = httpx.get(prometheus.url + "/api/v1/query", params={"query": query}).json()
        seen = {row["metric"]["revision"]: float(row["value"][1]) for row in body["data"]["result"]}
        return all(seen.get(name, 0) >= n for name, n in expected.items())

    deadline = time.monotonic() + 30
    while not scraped():
        assert time.monotonic() < deadline, "Prometheus did not scrape the load within 30 s"
        time.sleep(POLL_S)  # poll
    return runtimes


async def measure(prom: Prometheus, spec: Analysis, tgt: AnalysisTarget) -> RawWindow:
    async with httpx.AsyncClient() as http:
        provider = PrometheusMetrics(http, PrometheusProvider(address=prom.url, timeout="2s"))
        return await provider.measure(spec, tgt, datetime.now(UTC))


async def test_queries_answer_with_the_runtime_counts(loaded: Runtimes, prometheus: Prometheus) -> None:
    spec = analysis(prometheus)
    raw = await measure(prometheus, spec, target(loaded.stable, loaded.erroring))
    for arm, revision in ((raw.stable, loaded.stable), (raw.canary, loaded.erroring)):
        own = runtime_counters(revision.url)
        own_total = own.get("code 200", 0.0) + own.get("code 500", 0.0)
        seen_total = sum(arm.requests_by_code.values())
        # increase() extrapolates towards the end of the window by up to ~1.1 scrape intervals, which is
        # a large share of a series only seconds old; the shares of each code are exact
        assert own_total <= seen_total <= own_total * 1.5
        for code in ("200", "500"):
            share = arm.requests_by_code.get(code, 0.0) / seen_total
            assert share == pytest.approx(own.get(f"code {code}", 0.0) / own_total, abs=0.01)
        assert arm.duration_buckets[-1][0] == float("inf")
        assert arm.duration_buckets[-1][1] == pytest.approx(sum(arm.requests_by_code.values()), rel=0.01)
    assert raw.canary.requests_by_code.get("500", 0) > LOAD * 0.9  # every real input fails in the erroring model
    own_classes = {k: v for k, v in runtime_counters(loaded.stable.url).items() if k.startswith("class")}
    total = sum(own_classes.values())
    seen_total = sum(raw.stable.class_counts.values())
    for key, value in own_classes.items():
        assert raw.stable.class_counts.get(key.removeprefix("class "), 0.0) / seen_total == pytest.approx(
            value / total, abs=0.05
        )
    assert raw.window_seconds == 600
    assert set(raw.queries) == {"requests", "latency", "classes", "scores", "rejections"}


async def test_good_canary_passes(loaded: Runtimes, prometheus: Prometheus) -> None:
    analyser = Analyser()
    try:
        status = await analyser.tick(analysis(prometheus), target(loaded.stable, loaded.same), None, datetime.now(UTC))
    finally:
        await analyser.aclose()
    assert status.verdict == "Pass", status.message
    assert status.arms["canary"].requests >= LOAD * 0.9


async def test_erroring_canary_fails_on_error_rate(loaded: Runtimes, prometheus: Prometheus) -> None:
    analyser = Analyser()
    try:
        status = await analyser.tick(
            analysis(prometheus), target(loaded.stable, loaded.erroring), None, datetime.now(UTC)
        )
    finally:
        await analyser.aclose()
    assert status.verdict == "Fail"
    failing = {c.metric for c in status.checks if c.verdict == "Fail"}
    assert {"errorRatePercent", "errorRateDelta"} <= failing
    assert "canary error rate" in status.message


async def test_shifted_class_mix_fails_on_behaviour(loaded: Runtimes, prometheus: Prometheus) -> None:
    analyser = Analyser()
    try:
        status = await analyser.tick(
            analysis(prometheus), target(loaded.stable, loaded.shifted), None, datetime.now(UTC)
        )
    finally:
        await analyser.aclose()
    assert status.verdict == "Fail", status.message
    failing = {c.metric for c in status.checks if c.verdict == "Fail"}
    assert failing == {"classMixDistance"}
    assert "class mix JS distance" in status.message


async def test_custom_metrics_with_placeholders(loaded: Runtimes, prometheus: Prometheus) -> None:
    metrics = [
        {
            "name": "canary-success-ratio",
            "query": (
                f'sum(increase({contract.METRIC_REQUESTS_TOTAL}{{ {{{{canary}}}}, code="200" }}[{{{{window}}}}]))'
                f" / sum(increase({contract.METRIC_REQUESTS_TOTAL}{{{{{{canary}}}}}}[{{{{window}}}}]))"
            ),
            "min": 0.99,
        },
        {"name": "many-series", "query": f"{contract.METRIC_REQUESTS_TOTAL}{{ {{{{stable}}}} }}", "max": 1},
    ]
    spec = analysis(prometheus, metrics=metrics)
    raw = await measure(prometheus, spec, target(loaded.stable, loaded.erroring))
    assert raw.custom["canary-success-ratio"] == pytest.approx(0.0, abs=0.01)
    assert raw.custom["many-series"] is None
    assert any("many-series: returned" in n for n in raw.notes)
    assert 'revision="erroring0"' in raw.queries["metric:canary-success-ratio"]
    raw_good = await measure(prometheus, spec, target(loaded.stable, loaded.same))
    assert raw_good.custom["canary-success-ratio"] == pytest.approx(1.0)


async def test_stopped_prometheus_is_inconclusive(loaded: Runtimes, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second Prometheus scrapes the same runtimes; stopped mid-analysis, the next tick is Inconclusive."""
    prom = Prometheus(
        tmp_path_factory.mktemp("prometheus-stopped"),
        [(r.url.removeprefix("http://"), {"namespace": NAMESPACE}) for r in (loaded.stable, loaded.same)],
    ).start()
    spec = analysis(prom, window="1m")
    tgt = target(loaded.stable, loaded.same)
    analyser = Analyser()
    try:
        load = LoadGenerator(loaded.stable.url, MODEL, rate=100).start()
        load_canary = LoadGenerator(loaded.same.url, MODEL, rate=100).start()

        async def passing() -> Any:
            status = await analyser.tick(spec, tgt, None, datetime.now(UTC))
            return status if status.verdict == "Pass" else None

        first = await poll("a passing tick", passing)
        prom.stop()
        second = await analyser.tick(spec, tgt, first, datetime.now(UTC))
        await load.stop()
        await load_canary.stop()
    finally:
        await analyser.aclose()
        prom.stop()
    assert second.verdict == "Inconclusive"
    assert "unreachable" in second.message
    assert (second.consecutive_inconclusive, second.consecutive_failures, second.passes) == (1, 0, 1)
