"""The pods provider against real runtime processes: exact counts, differenced from the span's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from e2e.loadgen import LoadGenerator

from modeldeploy.operator.analysis import Analyser, AnalysisTarget, Arm
from modeldeploy.operator.api.analysis import Analysis

from .conftest import MODEL, NAMESPACE, Revision, Runtimes

SPEC = Analysis.model_validate(
    {
        "interval": "1s",
        "window": "1s",  # shorter than the processes have lived: the first tick only takes a baseline
        "minRequests": 100,
        "slo": {"errorRatePercent": 1},
        "behaviour": {"maxClassMixDistance": 0.1},
        # no comparison with stable: these tests are about the counts; a p99 of 150 requests on a loaded
        # machine is noise that the default latency-ratio check rightly calls Inconclusive
        "compareToStable": {},
    }
)


def target(stable: Revision, canary: Revision, since: datetime | None = None) -> AnalysisTarget:
    return AnalysisTarget(
        NAMESPACE, "fraud", MODEL, Arm(stable.name, (stable.url,)), Arm(canary.name, (canary.url,)), since=since
    )


async def test_pods_provider_counts_exactly_between_ticks(runtimes: Runtimes) -> None:
    analyser = Analyser()
    # the runtime processes may be less than a second old here; the first tick must see them older
    # than its 1 s window, or their counters are read from zero instead of taken as the baseline
    now = datetime.now(UTC) + timedelta(seconds=2)
    spec = SPEC.model_copy(update={"window": "1h"})  # long enough to keep the first snapshot as the baseline
    try:
        tgt = target(runtimes.stable, runtimes.same, since=now)  # the step began now: both processes are older
        await LoadGenerator(runtimes.stable.url, MODEL).send(10)  # counters exist before the baseline
        await LoadGenerator(runtimes.same.url, MODEL).send(10)
        first = await analyser.tick(spec, tgt, None, now)
        assert first.verdict == "Inconclusive"
        assert "baseline taken" in first.message

        await LoadGenerator(runtimes.stable.url, MODEL, seed=1).send(250)
        await LoadGenerator(runtimes.same.url, MODEL, seed=1).send(150)
        second = await analyser.tick(spec, tgt, first, now + timedelta(seconds=5))
        assert second.verdict == "Pass", second.message
        assert second.arms["stable"].requests == 250
        assert second.arms["canary"].requests == 150
        assert second.window == "5s"
        assert second.queries["canary"] == f"scrape {runtimes.same.url}/metrics"

        # same arms against a shifted model: the behaviour check fails on exact counts
        # a new step (a new span) against a shifted model: both pods' baselines are taken again
        tgt_shifted = target(runtimes.stable, runtimes.shifted, since=now + timedelta(seconds=6))
        await LoadGenerator(runtimes.shifted.url, MODEL).send(10)
        restart = await analyser.tick(spec, tgt_shifted, None, now + timedelta(seconds=6))
        assert restart.message.count("baseline taken") == 2, restart.message
        await LoadGenerator(runtimes.stable.url, MODEL, seed=2).send(300)
        await LoadGenerator(runtimes.shifted.url, MODEL, seed=2).send(300)
        third = await analyser.tick(spec, tgt_shifted, None, now + timedelta(seconds=10))
        assert third.verdict == "Fail", third.message
        assert {c.metric for c in third.checks if c.verdict == "Fail"} == {"classMixDistance"}
        assert third.arms["canary"].requests == 300
    finally:
        await analyser.aclose()


async def test_erroring_pod_fails_and_a_dead_pod_is_inconclusive(runtimes: Runtimes) -> None:
    analyser = Analyser()
    now = datetime.now(UTC)
    spec = SPEC.model_copy(update={"window": "1h"})
    tgt = target(runtimes.stable, runtimes.erroring)
    try:
        await analyser.tick(spec, tgt, None, now)
        await LoadGenerator(runtimes.stable.url, MODEL).send(200)
        stats = await LoadGenerator(runtimes.erroring.url, MODEL).send(200)
        assert {a.code for a in stats.answers} == {500}
        failed = await analyser.tick(spec, tgt, None, now + timedelta(seconds=5))
        assert failed.verdict == "Fail"
        assert failed.arms["canary"].errors == 200
        assert "canary error rate 100% > limit 1%" in failed.message

        dead = AnalysisTarget(NAMESPACE, "fraud", MODEL, tgt.stable, Arm("gone", ("http://127.0.0.1:9",)))
        status = await analyser.tick(spec, dead, failed, now + timedelta(seconds=10))
        assert status.verdict == "Inconclusive"
        assert "none of the 1 canary pods answered" in status.message
        assert status.consecutive_failures == 1
    finally:
        await analyser.aclose()
