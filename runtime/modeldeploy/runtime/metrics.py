"""Prometheus metrics, bound once to (model, version, revision, track) so the hot path only adds.

prometheus-client's metric objects take a lock per update and walk the bucket list; at tens of
thousands of requests per second that was the largest single cost of a request after the
inference itself. Here each series is a plain Python number (or a bucket list, found by bisect),
updated without locks, and a collector turns them into the exposition format when scraped.

Thread rule: each series is written by one thread only. The event loop writes the request,
latency and rejection series; with inference on the worker thread, that thread writes the batch,
queue and prediction series (without it, the loop writes those too). A scrape reads them as they
are; a histogram's count is derived from its buckets, so the two always agree.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from modeldeploy.runtime import contract as c

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: status codes an inference request can be answered with, bound at 0 from the start
REQUEST_CODES = (200, 400, 404, 413, 415, 500, 503)
#: the most class series created at load time; a wider watched output is left to create them on use
MAX_DECLARED_CLASSES = 1024


class Value:
    """A counter or gauge series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = float(value)


class Histogram:
    """One histogram series: per-bucket counts (the last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le semantics: v <= bound
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            out.append(("+Inf" if bound == float("inf") else _fmt(bound), float(acc)))
        return out


def _fmt(x: float) -> str:
    return repr(float(x))


class _TrackSeries:
    """The request, batch, queue, prediction and rejection series of one track."""

    __slots__ = (
        "batch_size",
        "classes",
        "prediction_score",
        "queue_duration",
        "rejections",
        "request_duration",
        "requests",
    )

    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self.requests: dict[int, Value] = {code: Value() for code in REQUEST_CODES}
        self.request_duration = Histogram(latency_buckets)
        self.batch_size = Histogram(c.BATCH_SIZE_BUCKETS)
        self.queue_duration = Histogram(c.QUEUE_DURATION_BUCKETS)
        self.classes: dict[int, Value] = {}
        self.prediction_score = Histogram(c.PREDICTION_SCORE_BUCKETS)
        self.rejections: dict[str, Value] = {reason: Value() for reason in c.REJECTION_REASONS}


class Metrics:
    """Every series carries the track label. The track can change while serving (`set_track`, when the
    pod's label changes): the counters and histograms of each track the runtime has had are kept, those
    of the current track count on and those of earlier tracks stay at their last values (so every series
    is monotonic and counts only what happened under its track); the gauges show the current track only."""

    def __init__(
        self,
        model: str,
        version: str,
        revision: str,
        track: str,
        prediction_kind: str,
        *,
        latency_buckets: Sequence[float] = c.REQUEST_DURATION_BUCKETS,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._base = (model, version, revision)
        self.latency_buckets = tuple(latency_buckets)
        self.prediction_kind = prediction_kind
        self._tracks: dict[str, _TrackSeries] = {}
        self._declared_classes = 0
        self.model_load_seconds = Value()
        self.model_ready = Value()
        self.track = ""
        self.set_track(track)
        self.registry.register(_Collector(self))

    def set_track(self, track: str) -> None:
        """Count from now on under `track` (series of a track had before resume where they stopped)."""
        if track == self.track:
            return
        s = self._tracks.get(track)
        if s is None:
            s = self._tracks[track] = _TrackSeries(self.latency_buckets)
            for k in range(self._declared_classes):
                s.classes.setdefault(k, Value())
        self._active = s
        self._requests = s.requests
        self.request_duration = s.request_duration
        self.batch_size = s.batch_size
        self.queue_duration = s.queue_duration
        self._classes = s.classes
        self.prediction_score = s.prediction_score
        self._rejections = s.rejections
        self.track = track

    def labels(self) -> list[str]:
        """The current values of BASE_LABELS."""
        return [*self._base, self.track]

    # ------------------------------------------------------------------ updates (hot path)

    def request(self, code: int, seconds: float) -> None:
        v = self._requests.get(code)
        if v is None:
            v = self._requests[code] = Value()
        v.value += 1
        self.request_duration.observe(seconds)

    def rejection(self, reason: str) -> None:
        v = self._rejections.get(reason)
        if v is None:
            v = self._rejections[reason] = Value()
        v.value += 1

    def predictions(self, out: np.ndarray[Any, Any]) -> None:
        """Record the watched output of one request (or batch): argmax counts or scores per row."""
        if out.size == 0 or out.dtype.kind not in "fiub":
            return
        if self.prediction_kind == "class":
            if out.ndim >= 2:
                idx = out.reshape(out.shape[0], -1).argmax(axis=1)
            elif out.dtype.kind in "iub":
                idx = out.astype(np.int64, copy=False)  # a label output: the value is the class
            else:
                idx = np.asarray([out.argmax()])
            if idx.size == 1:
                self._class(int(idx[0])).value += 1
                return
            values, counts = np.unique(idx, return_counts=True)
            for k, n in zip(values.tolist(), counts.tolist(), strict=True):
                self._class(int(k)).value += n
        else:
            for s in _scores(out).tolist():
                self.prediction_score.observe(s)

    def declare_classes(self, n: int) -> None:
        """Create the class series 0..n-1 at 0, so that the first prediction of each class is an
        increase Prometheus sees (a series that first appears at 5 counts as no increase)."""
        if n > MAX_DECLARED_CLASSES:
            return
        self._declared_classes = n
        for k in range(n):
            self._class(k)

    def _class(self, k: int) -> Value:
        v = self._classes.get(k)
        if v is None:
            v = self._classes[k] = Value()
        return v

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ exposition

    def families(self) -> Iterator[Metric]:
        base = list(c.BASE_LABELS)
        tracks = sorted(self._tracks.items())

        def counter(name: str, doc: str, extra: str, pick: Callable[[_TrackSeries], dict[Any, Value]]) -> Metric:
            fam = CounterMetricFamily(name.removesuffix("_total"), doc, labels=[*base, extra])
            for track, s in tracks:
                for key, v in sorted(pick(s).items(), key=lambda kv: str(kv[0])):
                    fam.add_metric([*self._base, track, str(key)], v.value)
            return fam

        def histogram(name: str, doc: str, pick: Callable[[_TrackSeries], Histogram]) -> Metric:
            fam = HistogramMetricFamily(name, doc, labels=base)
            for track, s in tracks:
                h = pick(s)
                fam.add_metric([*self._base, track], h.buckets(), h.sum)
            return fam

        def gauge(name: str, doc: str, v: Value) -> Metric:
            fam = GaugeMetricFamily(name, doc, labels=base)
            fam.add_metric(self.labels(), v.value)
            return fam

        yield counter(
            c.METRIC_REQUESTS_TOTAL, "Inference requests by HTTP status code", c.LABEL_CODE, lambda s: s.requests
        )
        yield histogram(
            c.METRIC_REQUEST_DURATION,
            "Inference request latency from the first byte parsed to the response written",
            lambda s: s.request_duration,
        )
        yield histogram(c.METRIC_BATCH_SIZE, "Rows per session.run", lambda s: s.batch_size)
        yield histogram(
            c.METRIC_QUEUE_DURATION,
            "Time a request waited in the batcher before session.run",
            lambda s: s.queue_duration,
        )
        yield gauge(
            c.METRIC_MODEL_LOAD_SECONDS, "Seconds to fetch, verify, load and warm up the model", self.model_load_seconds
        )
        yield gauge(c.METRIC_MODEL_READY, "1 when the model is loaded, verified and warmed up", self.model_ready)
        yield counter(
            c.METRIC_PREDICTION_CLASS_TOTAL,
            "Predicted classes (argmax of the watched output), per row",
            c.LABEL_CLASS,
            lambda s: s.classes,
        )
        yield histogram(c.METRIC_PREDICTION_SCORE, "Score of the watched output, per row", lambda s: s.prediction_score)
        yield counter(
            c.METRIC_INPUT_REJECTIONS_TOTAL, "Rejected inputs by reason", c.LABEL_REASON, lambda s: s.rejections
        )


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()

    def describe(self) -> Iterator[Metric]:
        return iter(())


def class_count(shape: tuple[int, ...] | None, datatype: str) -> int | None:
    """How many classes `Metrics.predictions` can count for an output of this signature (shape with
    -1 for dynamic dims, OIP datatype), or None when that is not known before the first answer.

    [N, k...] with fixed k...: argmax over the flattened row, so prod(k...) (the last dimension for
    [N, k]). A fixed [k] float vector: argmax over it, so k. A 1-D integer output holds labels
    whose range the signature does not tell; BYTES outputs are not counted."""
    if shape is None or datatype == "BYTES":
        return None
    if len(shape) >= 2:
        rest = shape[1:]
        if any(d < 0 for d in rest):
            return None
        return math.prod(rest)
    if len(shape) == 1 and shape[0] >= 0 and datatype.startswith("FP"):
        return shape[0]
    return None


def _scores(out: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """One score per row: the value itself for [N] or [N,1]; the last column for [N,2] (the positive
    class of a binary classifier); the highest value of the row (the confidence) otherwise."""
    if out.ndim <= 1:
        return out.astype(np.float64, copy=False).ravel()
    rows = out.reshape(out.shape[0], -1)
    if rows.shape[1] == 1:
        return rows[:, 0].astype(np.float64)
    if rows.shape[1] == 2:
        return rows[:, 1].astype(np.float64)
    best: np.ndarray[Any, Any] = rows.max(axis=1).astype(np.float64)
    return best
