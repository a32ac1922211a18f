"""Property tests of the tensor codec: no input, however malformed, produces anything but a 4xx.

The codec functions are tested directly (thousands of cases in seconds) and a sample goes through
HTTP to the real server, where the answer must never be a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.runtime.harness import RuntimeServer

from modeldeploy.runtime import codec
from modeldeploy.runtime import contract as c
from modeldeploy.runtime.codec import (
    OIP_TO_NUMPY,
    DecodedRequest,
    InferError,
    TensorSpec,
    decode_request,
    decompress,
    encode_response,
    serialize_bytes,
)

INPUTS = {
    "x": TensorSpec("x", "FP32", (-1, 4)),
    "s": TensorSpec("s", "BYTES", (-1,)),
    "i": TensorSpec("i", "INT8", (2, -1)),
}
OUTPUTS = {"y": TensorSpec("y", "FP32", (-1,)), "z": TensorSpec("z", "BYTES", (-1,))}
DATATYPES = sorted(OIP_TO_NUMPY)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30,
)
shapes = st.one_of(st.lists(st.integers(min_value=-2, max_value=6), max_size=4), json_values, st.just([2**40, 2**40]))
tensor_entries = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from([*INPUTS, "nope"]), json_scalars),
        "datatype": st.one_of(st.sampled_from([*DATATYPES, "FLOAT"]), json_scalars),
        "shape": shapes,
        "data": json_values,
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.one_of(st.integers(-2, 64), json_scalars)}), json_values
        ),
    },
)
output_params = st.sampled_from(["binary_data", "classification"])
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_scalars,
        "inputs": st.one_of(st.lists(tensor_entries, max_size=4), json_values),
        "outputs": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["y", "z", "w"])},
                    optional={"parameters": st.dictionaries(output_params, json_scalars)},
                ),
                max_size=3,
            ),
            json_values,
        ),
        "parameters": st.one_of(st.fixed_dictionaries({"binary_data_output": json_scalars}), json_values),
    },
)


def check_decode(body: bytes, header_length: int | None) -> DecodedRequest | None:
    try:
        req = decode_request(body, header_length, INPUTS, OUTPUTS)
    except InferError as e:
        assert 400 <= e.status < 500
        assert e.reason in c.REJECTION_REASONS
        assert orjson.loads(e.body())["error"]
        return None
    # what is accepted matches the signature exactly
    assert set(req.inputs) == set(INPUTS)
    for name, arr in req.inputs.items():
        spec = INPUTS[name]
        assert arr.dtype == OIP_TO_NUMPY[spec.datatype]
        assert spec.shape is not None
        assert arr.ndim == len(spec.shape)
        assert all(e < 0 or e == d for e, d in zip(spec.shape, arr.shape, strict=True))
    return req


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(-5, 300)))
def test_arbitrary_bytes_never_escape_as_anything_but_4xx(body: bytes, header_length: int | None) -> None:
    check_decode(body, header_length)


@settings(max_examples=600, deadline=None)
@given(requests, st.binary(max_size=64), st.booleans())
def test_structured_garbage_is_a_4xx_or_a_valid_request(req: dict[str, Any], tail: bytes, binary: bool) -> None:
    head = orjson.dumps(req)
    if binary:
        check_decode(head + tail, len(head))
    else:
        check_decode(head, None)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_document_is_a_4xx_or_valid(doc: Any) -> None:
    check_decode(orjson.dumps(doc), None)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, int | None, dict[str, np.ndarray]]:
    n = draw(st.integers(0, 3))
    k = draw(st.integers(0, 3))
    x = np.array(
        draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=n * 4, max_size=n * 4)), dtype=np.float32
    ).reshape(n, 4)
    s = np.array(draw(st.lists(st.text(max_size=5), min_size=n, max_size=n)), dtype=object).reshape(n)
    i = np.array(draw(st.lists(st.integers(-128, 127), min_size=2 * k, max_size=2 * k)), dtype=np.int8).reshape(2, k)
    arrays = {"x": x, "s": s, "i": i}
    binary = draw(st.sets(st.sampled_from(list(arrays))))
    nested = draw(st.booleans())
    entries, blobs = [], []
    for name, arr in arrays.items():
        e: dict[str, Any] = {"name": name, "datatype": INPUTS[name].datatype, "shape": list(arr.shape)}
        if name in binary:
            blob = serialize_bytes(arr) if arr.dtype == object else arr.tobytes()
            e["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            e["data"] = arr.tolist() if nested else arr.ravel().tolist()
        entries.append(e)
    head = orjson.dumps({"inputs": entries})
    if binary:
        return head + b"".join(blobs), len(head), arrays
    return head, None, arrays


@settings(max_examples=300, deadline=None)
@given(valid_requests())
def test_valid_requests_round_trip_exactly(case: tuple[bytes, int | None, dict[str, np.ndarray]]) -> None:
    body, hl, arrays = case
    req = check_decode(body, hl)
    assert req is not None
    for name, arr in arrays.items():
        got = req.inputs[name]
        assert got.shape == arr.shape
        if arr.dtype == object:
            assert got.tolist() == arr.tolist()
        else:
            np.testing.assert_array_equal(got, arr)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, width=32), max_size=12),
    st.lists(st.text(max_size=4), max_size=5),
    st.booleans(),
    st.booleans(),
)
def test_encode_response_json_and_binary(ys: list[float], zs: list[str], bin_y: bool, bin_z: bool) -> None:
    y = np.array(ys, dtype=np.float32)
    z = np.array(zs, dtype=object)
    body, hl = encode_response("m", "1", "id", [(OUTPUTS["y"], y, bin_y), (OUTPUTS["z"], z, bin_z)])
    assert (hl is None) == (not bin_y and not bin_z)
    doc = orjson.loads(body if hl is None else body[:hl])
    assert doc["id"] == "id"
    oy, oz = doc["outputs"]
    assert oy["shape"] == [len(ys)]
    if not bin_y:
        got = [math.inf if v is None else v for v in oy["data"]]  # orjson writes inf as null
        assert len(got) == len(ys)
    if not bin_z:
        assert oz["data"] == zs


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100), st.sampled_from(["gzip", "deflate", "br", "identity", ""]))
def test_decompress_never_raises_anything_but_infer_error(body: bytes, enc: str) -> None:
    try:
        decompress(body, enc, 1000)
    except InferError as e:
        assert e.status in (400, 413, 415)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_garbage_over_http_is_never_a_5xx(clf: RuntimeServer, req: dict[str, Any]) -> None:
    r = httpx.post(clf.url + "/v2/models/clf/infer", content=orjson.dumps(req), timeout=10)
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 400), r.text


@pytest.mark.parametrize("dt", DATATYPES)
def test_every_datatype_name_is_known(dt: str) -> None:
    assert np.dtype(OIP_TO_NUMPY[dt]) is not None


# ------------------------------------------------------- the np.fromiter path agrees with np.asarray

NUMERIC_DATATYPES = ["FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]

json_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # negative, tiny and huge exponents
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-(2**70), 2**70),  # ints in float tensors; out of range for the integer types
    st.integers(-300, 300),
)
# besides numbers: what numpy converts or refuses element by element
odd_elements: st.SearchStrategy[Any] = st.one_of(
    st.booleans(), st.none(), st.sampled_from(["1.5", "nan", "x", ""]), st.just({})
)


def outcome(body: bytes, spec: TensorSpec) -> tuple[str, Any, Any]:
    try:
        arr = decode_request(body, None, {spec.name: spec}, {}).inputs[spec.name]
    except InferError as e:
        return "error", e.status, (e.reason, e.message)
    return "ok", arr.dtype, (arr.shape, arr.tobytes())


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(NUMERIC_DATATYPES),
    st.lists(json_numbers, min_size=1, max_size=24),
    st.lists(odd_elements, max_size=2),
    st.sampled_from(["flat", "nested", "short"]),
    st.booleans(),
)
def test_fromiter_path_agrees_with_asarray_path(
    datatype: str, values: list[Any], odd: list[Any], layout: str, exponents: bool
) -> None:
    """Flat, nested or miscounted data, negative numbers, exponents, ints in float tensors, values out
    of an integer type's range, and elements numpy converts or refuses: the array, or the status,
    reason and message of the error, are the same with the np.fromiter path as without it."""
    data: list[Any] = [*values, *odd]
    n = len(data)
    shape = [n]
    payload: Any = data
    if layout == "nested" and n % 2 == 0:
        shape, payload = [2, n // 2], [data[: n // 2], data[n // 2 :]]
    elif layout == "short":
        shape = [n + 1]
    spec = TensorSpec("t", datatype, tuple(-1 for _ in shape))
    doc = {"inputs": [{"name": "t", "datatype": datatype, "shape": shape, "data": payload}]}
    body = json.dumps(doc, separators=(",", ":")).encode()  # orjson writes no int over 64 bits
    if exponents:  # the same numbers spelled with exponents, as other JSON encoders write them
        body = body.replace(b".0,", b"e0,").replace(b"0.0", b"0e-0")
    fast = outcome(body, spec)
    with mock.patch.object(codec, "_flat_numeric", lambda *a: None):
        slow = outcome(body, spec)
    assert fast == slow


def test_fromiter_path_is_taken_for_flat_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[np.ndarray] = []
    real = codec._flat_numeric

    def spy(*a: Any) -> np.ndarray | None:
        got = real(*a)
        if got is not None:
            calls.append(got)
        return got

    monkeypatch.setattr(codec, "_flat_numeric", spy)
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, -2.5e-3] * 4}]})
    spec = {"x": TensorSpec("x", "FP32", (-1, 4))}
    arr = decode_request(body, None, spec, {}).inputs["x"]
    assert len(calls) == 1
    assert arr.shape == (2, 4) and arr.dtype == np.float32
    assert np.array_equal(arr, np.asarray([1, -2.5e-3] * 4, dtype=np.float32).reshape(2, 4))
