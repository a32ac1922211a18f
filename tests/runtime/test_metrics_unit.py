"""The lock-free metric series and their exposition (le semantics, cumulative buckets, labels)."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.metrics import MAX_DECLARED_CLASSES, REQUEST_CODES, Histogram, Metrics, class_count


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(m.render().decode())
        for s in fam.samples
    }


def test_histogram_le_semantics_and_cumulative_buckets() -> None:
    h = Histogram([1, 2, 5])
    for v in (0.5, 1.0, 1.5, 2.0, 7.0):
        h.observe(v)
    assert h.buckets() == [("1.0", 2.0), ("2.0", 4.0), ("5.0", 4.0), ("+Inf", 5.0)]
    assert h.sum == 12.0


def test_exposition_names_labels_and_values() -> None:
    m = Metrics("fraud", "7", "abc", "canary", "class")
    m.request(200, 0.0002)
    m.request(418, 0.5)  # a code not pre-bound
    m.rejection(c.REJECTION_SHAPE)
    m.predictions(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32))
    m.batch_size.observe(3)
    m.model_ready.set(1)
    got = samples(m)
    base = {"model": "fraud", "version": "7", "revision": "abc", "track": "canary"}

    def key(name: str, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted({**base, **extra}.items()))

    assert got[key(c.METRIC_REQUESTS_TOTAL, code="200")] == 1
    assert got[key(c.METRIC_REQUESTS_TOTAL, code="418")] == 1
    assert got[key(c.METRIC_REQUEST_DURATION + "_bucket", le="0.00025")] == 1
    assert got[key(c.METRIC_REQUEST_DURATION + "_count")] == 2
    assert got[key(c.METRIC_INPUT_REJECTIONS_TOTAL, reason="shape")] == 1
    assert got[key(c.METRIC_PREDICTION_CLASS_TOTAL, **{"class": "1"})] == 2
    assert got[key(c.METRIC_PREDICTION_CLASS_TOTAL, **{"class": "0"})] == 1
    assert got[key(c.METRIC_BATCH_SIZE + "_sum")] == 3
    assert got[key(c.METRIC_MODEL_READY)] == 1
    assert any(name.startswith("process_") for name, _ in got)


def test_score_kind() -> None:
    m = Metrics("m", "1", "", "stable", "score")
    m.predictions(np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32))  # [N, 2]: the positive column
    got = samples(m)
    lab = tuple(sorted({"model": "m", "version": "1", "revision": "", "track": "stable"}.items()))
    assert got[(c.METRIC_PREDICTION_SCORE + "_count", lab)] == 2
    assert abs(got[(c.METRIC_PREDICTION_SCORE + "_sum", lab)] - 1.1) < 1e-6


def test_class_count_from_the_signature() -> None:
    assert class_count((-1, 3), "FP32") == 3
    assert class_count((1, 10), "FP16") == 10
    assert class_count((-1, 2, 3), "FP32") == 6  # argmax over the flattened row
    assert class_count((-1, -1), "FP32") is None  # the class dimension is dynamic
    assert class_count((5,), "FP64") == 5  # one vector: argmax over it
    assert class_count((5,), "INT64") is None  # labels: their range is not in the signature
    assert class_count((-1,), "FP32") is None
    assert class_count((), "FP32") is None
    assert class_count(None, "FP32") is None
    assert class_count((-1, 3), "BYTES") is None


def test_declared_series_exist_at_zero_before_any_request() -> None:
    m = Metrics("m", "1", "", "stable", "class")
    m.declare_classes(3)
    m.declare_classes(MAX_DECLARED_CLASSES + 1)  # too wide: left to be created on use
    got = samples(m)
    base = {"model": "m", "version": "1", "revision": "", "track": "stable"}

    def value(name: str, **extra: str) -> float | None:
        return got.get((name, tuple(sorted({**base, **extra}.items()))))

    assert [value(c.METRIC_PREDICTION_CLASS_TOTAL, **{"class": str(k)}) for k in range(4)] == [0, 0, 0, None]
    assert all(value(c.METRIC_REQUESTS_TOTAL, code=str(code)) == 0 for code in REQUEST_CODES)
    assert all(value(c.METRIC_INPUT_REJECTIONS_TOTAL, reason=r) == 0 for r in c.REJECTION_REASONS)
    m.predictions(np.array([[0.1, 0.9, 0.0]], dtype=np.float32))
    assert samples(m)[(c.METRIC_PREDICTION_CLASS_TOTAL, tuple(sorted({**base, "class": "1"}.items())))] == 1
