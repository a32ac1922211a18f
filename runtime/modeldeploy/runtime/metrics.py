"""Prometheus metrics, bound once to (model, version, revision, track) so the hot path only observes."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modeldeploy.runtime import contract as c

CONTENT_TYPE = CONTENT_TYPE_LATEST

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: half the scrape size, nothing the analysis reads


class Metrics:
    def __init__(self, model: str, version: str, revision: str, track: str, prediction_kind: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        base = c.BASE_LABELS
        lv = (model, version, revision, track)
        r = self.registry
        self._requests = Counter(
            c.METRIC_REQUESTS_TOTAL, "Inference requests by HTTP status code", (*base, c.LABEL_CODE), registry=r
        )
        self.request_duration = Histogram(
            c.METRIC_REQUEST_DURATION,
            "Inference request latency from the first byte parsed to the response written",
            base,
            buckets=c.REQUEST_DURATION_BUCKETS,
            registry=r,
        ).labels(*lv)
        self.batch_size = Histogram(
            c.METRIC_BATCH_SIZE, "Rows per session.run", base, buckets=c.BATCH_SIZE_BUCKETS, registry=r
        ).labels(*lv)
        self.queue_duration = Histogram(
            c.METRIC_QUEUE_DURATION,
            "Time a request waited in the batcher before session.run",
            base,
            buckets=c.QUEUE_DURATION_BUCKETS,
            registry=r,
        ).labels(*lv)
        self.model_load_seconds = Gauge(
            c.METRIC_MODEL_LOAD_SECONDS, "Seconds to fetch, verify, load and warm up the model", base, registry=r
        ).labels(*lv)
        self.model_ready = Gauge(
            c.METRIC_MODEL_READY, "1 when the model is loaded, verified and warmed up", base, registry=r
        ).labels(*lv)
        self._classes = Counter(
            c.METRIC_PREDICTION_CLASS_TOTAL,
            "Predicted classes (argmax of the watched output), per row",
            (*base, c.LABEL_CLASS),
            registry=r,
        )
        self.prediction_score = Histogram(
            c.METRIC_PREDICTION_SCORE,
            "Score of the watched output, per row",
            base,
            buckets=c.PREDICTION_SCORE_BUCKETS,
            registry=r,
        ).labels(*lv)
        self._rejections = Counter(
            c.METRIC_INPUT_REJECTIONS_TOTAL, "Rejected inputs by reason", (*base, c.LABEL_REASON), registry=r
        )
        self._lv = lv
        self.prediction_kind = prediction_kind
        # pre-bound children; codes and classes seen later are bound once on first use
        self._by_code: dict[int, Any] = {
            code: self._requests.labels(*lv, str(code)) for code in (200, 400, 404, 413, 500, 503)
        }
        self._by_class: dict[int, Any] = {}
        self._by_reason: dict[str, Any] = {
            reason: self._rejections.labels(*lv, reason) for reason in c.REJECTION_REASONS
        }
        self.model_ready.set(0)

    def request(self, code: int, seconds: float) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._requests.labels(*self._lv, str(code))
        child.inc()
        self.request_duration.observe(seconds)

    def rejection(self, reason: str) -> None:
        child = self._by_reason.get(reason)
        if child is None:
            child = self._by_reason[reason] = self._rejections.labels(*self._lv, reason)
        child.inc()

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
                self._class(int(idx[0])).inc()
                return
            values, counts = np.unique(idx, return_counts=True)
            for v, n in zip(values.tolist(), counts.tolist(), strict=True):
                self._class(int(v)).inc(n)
        else:
            scores = _scores(out)
            for s in scores.tolist():
                self.prediction_score.observe(s)

    def _class(self, k: int) -> Any:
        child = self._by_class.get(k)
        if child is None:
            child = self._by_class[k] = self._classes.labels(*self._lv, str(k))
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
