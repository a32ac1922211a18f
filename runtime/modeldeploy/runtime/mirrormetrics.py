"""The mirror's metrics (contract: METRIC_MIRROR_*), on the mirroring pod's registry.

Labels: BASE_LABELS of the mirroring pod, with its current track, plus `candidate` (the candidate's
revision from the mirror annotation), plus `outcome` or `arm`. A series is created when its
candidate is first mirrored to (every outcome at 0 then, so the first increase is seen) and kept,
at its last value, after the mirror stops or moves to another candidate or track.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.metrics import Histogram, Metrics, Value


class _CandidateSeries:
    __slots__ = ("durations", "outcomes", "score_difference")

    def __init__(self, latency_buckets: tuple[float, ...]) -> None:
        self.outcomes = {o: Value() for o in c.MIRROR_OUTCOMES}
        self.score_difference = Histogram(c.MIRROR_SCORE_DIFFERENCE_BUCKETS)
        self.durations = {arm: Histogram(latency_buckets) for arm in c.MIRROR_ARMS}


class MirrorMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str], _CandidateSeries] = {}  # (track, candidate) -> series
        metrics.registry.register(_MirrorCollector(self))

    def series(self, candidate: str) -> _CandidateSeries:
        """The series of `candidate` under the pod's current track (created at 0 on first use)."""
        key = (self.metrics.track, candidate)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _CandidateSeries(self.metrics.latency_buckets)
        return s

    def outcome(self, candidate: str, outcome: str) -> None:
        self.series(candidate).outcomes[outcome].inc()

    def count(self, candidate: str, outcome: str) -> float:
        """The current track's count of `outcome` for `candidate` (tests and logs)."""
        s = self._series.get((self.metrics.track, candidate))
        return s.outcomes[outcome].value if s is not None else 0.0

    def families(self) -> Iterator[Metric]:
        base = [*c.BASE_LABELS, c.LABEL_CANDIDATE]
        model, version, revision = self.metrics.labels()[:3]
        items = sorted(self._series.items())
        requests = CounterMetricFamily(
            c.METRIC_MIRROR_REQUESTS_TOTAL.removesuffix("_total"),
            "Mirrored copies of live requests by outcome: agreed, disagreed, candidate_error, dropped",
            labels=[*base, c.LABEL_OUTCOME],
        )
        diffs = HistogramMetricFamily(
            c.METRIC_MIRROR_SCORE_DIFFERENCE,
            "Largest |live - candidate| of each score output of each compared copy",
            labels=base,
        )
        durations = HistogramMetricFamily(
            c.METRIC_MIRROR_DURATION,
            "Latency of the compared copies: arm stable the live request's, arm candidate the copy's round trip",
            labels=[*base, c.LABEL_ARM],
        )
        for (track, candidate), s in items:
            lv = [model, version, revision, track, candidate]
            for outcome in c.MIRROR_OUTCOMES:
                requests.add_metric([*lv, outcome], s.outcomes[outcome].value)
            diffs.add_metric(lv, s.score_difference.buckets(), s.score_difference.sum)
            for arm in c.MIRROR_ARMS:
                h = s.durations[arm]
                durations.add_metric([*lv, arm], h.buckets(), h.sum)
        yield requests
        yield diffs
        yield durations


class _MirrorCollector(Collector):
    def __init__(self, m: MirrorMetrics) -> None:
        self._m = m

    def collect(self) -> Iterator[Metric]:
        return self._m.families()

    def describe(self) -> Iterator[Metric]:
        return iter(())
