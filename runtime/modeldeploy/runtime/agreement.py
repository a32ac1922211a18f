"""Do two v2 answers to the same request agree? Pure functions, no I/O (issue 13's mirror).

`decode_answer` reads a v2 inference response (JSON tensors, or the binary tensor extension with
its JSON header length) into arrays; `compare` says whether the candidate's answer agrees with
the live one, output by output:

- a **class** output (the `--prediction-output` of kind `class`; else any output whose second
  dimension is larger than 1) agrees when the argmax of every row is equal;
- a **score** output (the `--prediction-output` of kind `score`; else any other floating-point
  output) agrees when every element is within the absolute *or* the relative tolerance
  (|a - b| <= absolute, or |a - b| <= relative * max(|a|, |b|)); its largest |a - b| is reported;
- any other output agrees when it is exactly equal.

A request agrees when every output of the live answer agrees; an output missing from the
candidate's answer, or of another datatype or shape, disagrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.codec import OIP_TO_NUMPY, InferError, deserialize_bytes

_LE = {k: v.newbyteorder("<") for k, v in OIP_TO_NUMPY.items() if k != "BYTES"}

KIND_CLASS = "class"
KIND_SCORE = "score"
KIND_EXACT = "exact"


class AnswerError(ValueError):
    """The answer is not a readable v2 inference response."""


@dataclass(frozen=True, slots=True)
class Tensor:
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray[Any, Any]


def decode_answer(body: bytes, header_len: int | None) -> dict[str, Tensor]:
    """The outputs of a v2 response body, by name. Raises AnswerError on anything unreadable."""
    head = body if header_len is None else body[:header_len]
    if header_len is not None and not 0 <= header_len <= len(body):
        raise AnswerError("inference-header-content-length is outside the body")
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as e:
        raise AnswerError(f"not JSON: {e}") from None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        raise AnswerError("no outputs list")
    blob = memoryview(body)[len(head) :]
    offset = 0
    result: dict[str, Tensor] = {}
    for out in outputs:
        if not isinstance(out, dict):
            raise AnswerError("an output is not an object")
        name, datatype, shape = out.get("name"), out.get("datatype"), out.get("shape")
        if not isinstance(name, str) or datatype not in OIP_TO_NUMPY or not isinstance(shape, list):
            raise AnswerError("an output lacks name, datatype or shape")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise AnswerError(f"output {name!r}: bad shape")
        dims = tuple(shape)
        count = int(np.prod(dims, dtype=np.int64)) if dims else 1
        params = out.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(blob):
                raise AnswerError(f"output {name!r}: binary_data_size runs past the body")
            chunk = bytes(blob[offset : offset + size])
            offset += size
            arr = _from_binary(chunk, datatype, count, name)
        else:
            arr = _from_json(out.get("data"), datatype, count, name)
        result[name] = Tensor(datatype, dims, arr.reshape(dims) if datatype != "BYTES" else arr)
    return result


def _from_binary(chunk: bytes, datatype: str, count: int, name: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        try:
            items = deserialize_bytes(chunk, name, count)
        except InferError as e:
            raise AnswerError(e.message) from None
        if len(items) != count:
            raise AnswerError(f"output {name!r}: {len(items)} BYTES elements for {count}")
        return np.asarray(items, dtype=object)
    dtype = _LE[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise AnswerError(f"output {name!r}: {len(chunk)} bytes of data for {count} elements")
    return np.frombuffer(chunk, dtype=dtype)


def _from_json(data: Any, datatype: str, count: int, name: str) -> np.ndarray[Any, Any]:
    if not isinstance(data, list):
        raise AnswerError(f"output {name!r}: no data")
    flat = np.asarray(data, dtype=object).ravel() if data and isinstance(data[0], list) else data
    if len(flat) != count:
        raise AnswerError(f"output {name!r}: {len(flat)} elements for shape of {count}")
    if datatype == "BYTES":
        return np.asarray([str(v).encode() for v in flat], dtype=object)
    try:
        return np.asarray(list(flat), dtype=OIP_TO_NUMPY[datatype])
    except (TypeError, ValueError, OverflowError):
        raise AnswerError(f"output {name!r}: data is not {datatype}") from None


@dataclass(frozen=True, slots=True)
class Rules:
    """How outputs are compared: the watched output and its kind (the runtime's --prediction-output
    and --prediction-kind; None: judge each output by its shape), and the score tolerances."""

    watched_output: str | None = None
    watched_kind: str = KIND_CLASS
    absolute: float = c.DEFAULT_MIRROR_ABSOLUTE_TOLERANCE
    relative: float = c.DEFAULT_MIRROR_RELATIVE_TOLERANCE

    def kind(self, name: str, t: Tensor) -> str:
        if name == self.watched_output:
            return self.watched_kind
        if t.datatype in {"BYTES", "BOOL"}:
            return KIND_EXACT
        if len(t.shape) >= 2 and t.shape[1] > 1:
            return KIND_CLASS
        if t.datatype.startswith("FP"):
            return KIND_SCORE
        return KIND_EXACT


@dataclass(frozen=True, slots=True)
class Comparison:
    agreed: bool
    #: one per score output present in both answers with the same shape: the largest |a - b|
    score_differences: tuple[float, ...]
    #: the first output that disagreed, and why (for a debug log line), or ""
    why: str = ""


def compare(live: Mapping[str, Tensor], candidate: Mapping[str, Tensor], rules: Rules) -> Comparison:
    diffs: list[float] = []
    why = ""
    for name, a in live.items():
        b = candidate.get(name)
        if b is None:
            why = why or f"output {name!r} missing from the candidate's answer"
            continue
        if a.datatype != b.datatype or a.shape != b.shape:
            why = why or f"output {name!r}: {a.datatype}{list(a.shape)} vs {b.datatype}{list(b.shape)}"
            continue
        kind = rules.kind(name, a)
        if kind == KIND_SCORE and a.datatype != "BYTES":
            ok, worst = scores_agree(a.data, b.data, rules.absolute, rules.relative)
            diffs.append(worst)
        elif kind == KIND_CLASS and a.datatype != "BYTES":
            ok = classes_agree(a.data, b.data)
        else:
            ok = exactly_equal(a.data, b.data)
        if not ok:
            why = why or f"output {name!r} differs ({kind})"
    return Comparison(not why, tuple(diffs), why)


def classes_agree(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    """Equal argmax per row ([N, k...]), equal argmax of a float vector, equal integer labels."""
    if a.size == 0:
        return True
    if a.ndim >= 2:
        ra, rb = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        if ra.shape[1] == 1:
            return exactly_equal(ra, rb)
        return bool(np.array_equal(ra.argmax(axis=1), rb.argmax(axis=1)))
    if a.dtype.kind == "f":
        return int(a.argmax()) == int(b.argmax())
    return exactly_equal(a, b)


def scores_agree(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], absolute: float, relative: float
) -> tuple[bool, float]:
    """(every element within the absolute or the relative tolerance, the largest |a - b|). NaN equals NaN
    and infinities equal themselves; a NaN or infinity against anything else is an infinite difference."""
    if a.size == 0:
        return True, 0.0
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(same, 0.0, np.abs(x - y))
    d = np.where(np.isnan(d), np.inf, d)
    scale = np.maximum(np.abs(x), np.abs(y))
    with np.errstate(invalid="ignore"):
        ok = (d <= absolute) | (d <= relative * scale)
    return bool(ok.all()), float(d.max())


def exactly_equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))
