"""The mirror's comparison: reading v2 answers (JSON and binary) and the agreement rules per output kind."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.agreement import (
    AnswerError,
    Rules,
    Tensor,
    classes_agree,
    compare,
    decode_answer,
    scores_agree,
)
from modeldeploy.runtime.codec import TensorSpec, encode_response
from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.mirror import live_header_len
from modeldeploy.runtime.mirrormetrics import MirrorMetrics


def answer(
    outputs: dict[str, np.ndarray[Any, Any]], datatypes: dict[str, str], binary: bool
) -> tuple[bytes, int | None]:
    specs = [(TensorSpec(n, datatypes[n], tuple(a.shape)), a, binary) for n, a in outputs.items()]
    return encode_response("m", "1", None, specs)


OUTS: dict[str, np.ndarray[Any, Any]] = {
    "probabilities": np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], dtype=np.float32),
    "score": np.array([0.25, 0.75], dtype=np.float32),
    "label": np.array([1, 0], dtype=np.int64),
    "name": np.array([b"cat", b"dog"], dtype=object),
}
TYPES = {"probabilities": "FP32", "score": "FP32", "label": "INT64", "name": "BYTES"}


@pytest.mark.parametrize("binary", [False, True])
def test_decode_answer_json_and_binary(binary: bool) -> None:
    body, header_len = answer(OUTS, TYPES, binary)
    assert (header_len is not None) == binary
    got = decode_answer(body, header_len)
    assert list(got) == list(OUTS)
    for name, arr in OUTS.items():
        assert got[name].datatype == TYPES[name] and got[name].shape == arr.shape
        assert got[name].data.tolist() == arr.tolist()


def test_live_header_len_reads_the_rendered_header() -> None:
    assert live_header_len(b"inference-header-content-length: 123\r\n") == 123
    assert live_header_len(b"x-request-id: a\r\n") is None


@pytest.mark.parametrize(
    ("body", "header_len"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"outputs": [{"name": "a"}]}', None),
        (b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1]}]}', None),
        (b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": ["x"]}]}', None),
        (b'{"outputs": [{"name": "a", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 8}}]}', 93),
        (b'{"outputs": []}', 999),
    ],
)
def test_unreadable_answers_raise_answer_error(body: bytes, header_len: int | None) -> None:
    with pytest.raises(AnswerError):
        decode_answer(body, header_len)


def t(arr: np.ndarray[Any, Any], datatype: str = "FP32") -> Tensor:
    return Tensor(datatype, tuple(arr.shape), arr)


def test_class_outputs_compare_by_argmax_per_row() -> None:
    a = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], dtype=np.float32)
    same_argmax = np.array([[0.0, 0.9, 0.1], [0.4, 0.35, 0.25]], dtype=np.float32)
    flipped = np.array([[0.0, 0.9, 0.1], [0.3, 0.5, 0.2]], dtype=np.float32)
    rules = Rules()
    assert compare({"p": t(a)}, {"p": t(same_argmax)}, rules).agreed
    v = compare({"p": t(a)}, {"p": t(flipped)}, rules)
    assert not v.agreed and "class" in v.why and v.score_differences == ()
    assert classes_agree(np.array([3, 1]), np.array([3, 1])) and not classes_agree(np.array([3, 1]), np.array([3, 2]))
    assert classes_agree(np.array([0.1, 0.9]), np.array([0.2, 0.8]))  # a float vector: one argmax


def test_score_outputs_within_absolute_or_relative_tolerance() -> None:
    rules = Rules(absolute=1e-3, relative=1e-2)
    a = np.array([0.5, 100.0], dtype=np.float32)
    near = np.array([0.5009, 100.9], dtype=np.float32)  # 0.0009 absolute; 0.9 is 0.9% of 100.9
    far = np.array([0.52, 100.0], dtype=np.float32)
    v = compare({"s": t(a)}, {"s": t(near)}, rules)
    assert v.agreed and len(v.score_differences) == 1 and 0.89 < v.score_differences[0] < 0.91
    v = compare({"s": t(a)}, {"s": t(far)}, rules)
    assert not v.agreed and abs(v.score_differences[0] - 0.02) < 1e-6
    ok, worst = scores_agree(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 0.0, 0.0)
    assert ok and worst == 0.0
    ok, worst = scores_agree(np.array([np.nan]), np.array([1.0]), 1.0, 1.0)
    assert not ok and worst == float("inf")


def test_watched_output_kind_overrides_the_shape_rule() -> None:
    a = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
    b = np.array([[0.1, 0.69, 0.21]], dtype=np.float32)
    assert compare({"p": t(a)}, {"p": t(b)}, Rules()).agreed  # [N, 3]: class by default
    assert not compare({"p": t(a)}, {"p": t(b)}, Rules(watched_output="p", watched_kind="score")).agreed
    one = np.array([[0.2], [0.9]], dtype=np.float32)  # [N, 1] float: a score by default
    assert not compare({"s": t(one)}, {"s": t(one + 0.1)}, Rules()).agreed
    assert compare({"s": t(one)}, {"s": t(one + 0.00001)}, Rules()).agreed
    labels = np.array([[2], [1]], dtype=np.int64)  # a class output of one column: the label itself
    rules = Rules(watched_output="l", watched_kind="class")
    assert compare({"l": t(labels, "INT64")}, {"l": t(labels.copy(), "INT64")}, rules).agreed
    assert not compare({"l": t(labels, "INT64")}, {"l": t(labels + 1, "INT64")}, rules).agreed


def test_other_outputs_must_be_exactly_equal_and_all_outputs_must_agree() -> None:
    live = {n: t(a, TYPES[n]) for n, a in OUTS.items()}
    assert compare(live, dict(live), Rules()).agreed
    other = dict(live, name=t(np.array([b"cat", b"cow"], dtype=object), "BYTES"))
    assert not compare(live, other, Rules()).agreed
    other = dict(live, label=t(np.array([1, 1], dtype=np.int64), "INT64"))
    assert not compare(live, other, Rules()).agreed
    missing = {k: v for k, v in live.items() if k != "score"}
    v = compare(live, missing, Rules())
    assert not v.agreed and "missing" in v.why
    reshaped = dict(live, score=t(np.array([0.25, 0.75, 0.1], dtype=np.float32)))
    assert not compare(live, reshaped, Rules()).agreed
    extra = dict(live, more=t(np.zeros(2, dtype=np.float32)))
    assert compare(live, extra, Rules()).agreed  # an extra output of the candidate is not compared


def test_mirror_metrics_follow_the_track_and_keep_old_series() -> None:
    m = Metrics("fraud", "7", "rev1", "stable", "class")
    mm = MirrorMetrics(m)
    mm.outcome("rev2", c.MIRROR_AGREED)
    m.set_track("canary")
    mm.outcome("rev2", c.MIRROR_DISAGREED)
    m.request(200, 0.001)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(m.render().decode())
        for s in fam.samples
    }
    base = {"model": "fraud", "version": "7", "revision": "rev1", "candidate": "rev2"}

    def mirror(track: str, outcome: str) -> float:
        return got[
            (c.METRIC_MIRROR_REQUESTS_TOTAL, tuple(sorted({**base, "track": track, "outcome": outcome}.items())))
        ]

    assert (mirror("stable", "agreed"), mirror("stable", "disagreed")) == (1, 0)
    assert (mirror("canary", "agreed"), mirror("canary", "disagreed"), mirror("canary", "dropped")) == (0, 1, 0)

    def requests(track: str) -> float:
        labels = {"model": "fraud", "version": "7", "revision": "rev1", "track": track, "code": "200"}
        return got[(c.METRIC_REQUESTS_TOTAL, tuple(sorted(labels.items())))]

    assert (requests("stable"), requests("canary")) == (0, 1)
    ready = [k for k in got if k[0] == c.METRIC_MODEL_READY]
    assert [dict(k[1])["track"] for k in ready] == ["canary"]  # gauges: the current track only
