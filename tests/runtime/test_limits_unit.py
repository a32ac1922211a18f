"""Unit tests of the request limits in the codec and of the secret-free messages of the sources."""

from __future__ import annotations

import orjson
import pytest

from modeldeploy.runtime.codec import InferError, TensorSpec, decode_request, deserialize_bytes
from modeldeploy.runtime.limits import Limits, TensorLimits
from modeldeploy.runtime.sources import authorization, redact, scrub

SPECS = {
    "x": TensorSpec("x", "FP32", (-1, -1)),
    "s": TensorSpec("s", "BYTES", (-1,)),
}
LIMITS = TensorLimits(max_elements=1000, max_bytes_elements=10, max_bytes_total=100)


def body(x: dict[str, object], s: dict[str, object] | None = None) -> bytes:
    s = s or {"shape": [1], "data": ["a"]}
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", **x}, {"name": "s", "datatype": "BYTES", **s}]})


def refuse(data: bytes, status: int, words: str, header_length: int | None = None) -> None:
    with pytest.raises(InferError) as e:
        decode_request(data, header_length, SPECS, {}, LIMITS)
    assert e.value.status == status and words in e.value.message, e.value.message


def test_dimensions_and_counts_over_the_element_limit_are_400() -> None:
    refuse(body({"shape": [0, 2**62], "data": []}), 400, "--max-tensor-elements")
    refuse(body({"shape": [2**62, 0], "data": []}), 400, "--max-tensor-elements")
    refuse(body({"shape": [40, 40], "data": [0] * 1600}), 400, "--max-tensor-elements")
    req = decode_request(body({"shape": [0, 1000], "data": []}), None, SPECS, {}, LIMITS)
    assert req.inputs["x"].shape == (0, 1000)


def test_bytes_elements_and_their_size_are_413() -> None:
    refuse(body({"shape": [1, 1], "data": [0]}, {"shape": [11], "data": ["a"] * 11}), 413, "--max-bytes-elements")
    refuse(body({"shape": [1, 1], "data": [0]}, {"shape": [2], "data": ["a" * 60] * 2}), 413, "--max-bytes-total")
    blob = b"\0\0\0\0" * 11
    head = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0]},
                {"name": "s", "datatype": "BYTES", "shape": [11], "parameters": {"binary_data_size": len(blob)}},
            ]
        }
    )
    refuse(head + blob, 413, "--max-bytes-elements", len(head))


def test_deserialize_bytes_stops_past_the_count_it_was_asked_for() -> None:
    assert len(deserialize_bytes(b"\0\0\0\0" * 1000, "s", 5)) == 6


def test_limits_defaults_and_sweep() -> None:
    lim = Limits()
    assert lim.tensor_elements(123) == 123
    assert Limits(max_tensor_elements=7).tensor_elements(123) == 7
    assert lim.sweep_every_s() == 2.5
    assert Limits(header_timeout_s=0.01).sweep_every_s() == 0.02


def test_messages_hold_no_credentials_nor_query_strings() -> None:
    env = {"AUTHORIZATION": "Bearer tok-123456", "AWS_SECRET_ACCESS_KEY": "sek-abcdef"}
    assert redact("https://user:pw@host:8443/a/m.onnx?X-Amz-Signature=abc#f") == "https://host:8443/a/m.onnx"
    text = "GET https://h/m?sig=abc failed with tok-123456 and sek-abcdef"
    assert scrub(text, env) == "GET https://h/m?<redacted> failed with <redacted> and <redacted>"
    assert authorization({"AUTHORIZATION": "tok"}) == "Bearer tok"
    assert authorization({"AUTHORIZATION": "Basic dTpw"}) == "Basic dTpw"
    assert authorization({}) is None
