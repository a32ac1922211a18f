"""Every OIP datatype ONNX Runtime serves, as JSON and as binary tensor data, through the echo model."""

from __future__ import annotations

import json

import httpx
import numpy as np
import orjson
import pytest
from tests.runtime.harness import RuntimeServer
from tests.runtime.models import OIP_TO_ONNX

from modeldeploy.runtime.codec import OIP_TO_NUMPY, deserialize_bytes, serialize_bytes

SAMPLES: dict[str, list[object]] = {
    "BOOL": [True, False, True, True, False, False],
    "UINT8": [0, 1, 2, 127, 200, 255],
    "UINT16": [0, 1, 65535, 3, 4, 5],
    "UINT32": [0, 1, 2**32 - 1, 3, 4, 5],
    "UINT64": [0, 1, 2**64 - 1, 3, 4, 5],
    "INT8": [-128, -1, 0, 1, 2, 127],
    "INT16": [-32768, -1, 0, 1, 2, 32767],
    "INT32": [-(2**31), -1, 0, 1, 2, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 1, 2, 2**63 - 1],
    "FP16": [0.5, -1.0, 0.0, 2.0, 65504.0, 0.25],
    "FP32": [0.5, -1.0, 0.0, 2.0, 3.25, 1e-3],
    "FP64": [0.5, -1.0, 0.0, 2.0, 3.25, 1e-300],
    "BYTES": ["a", "", "héllo", "δ", "x" * 10, "z"],
}
assert set(SAMPLES) == set(OIP_TO_ONNX) == set(OIP_TO_NUMPY)


def array(dt: str) -> np.ndarray:
    return np.array(SAMPLES[dt], dtype=OIP_TO_NUMPY[dt]).reshape(2, 3)


def test_every_datatype_as_json(echo: RuntimeServer) -> None:
    inputs = [{"name": f"in_{dt}", "datatype": dt, "shape": [2, 3], "data": SAMPLES[dt]} for dt in SAMPLES]
    r = httpx.post(echo.url + "/v2/models/echo/infer", content=orjson.dumps({"inputs": inputs}))
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    for dt, values in SAMPLES.items():
        o = outs[f"out_{dt}"]
        assert o["datatype"] == dt
        assert o["shape"] == [2, 3]
        if dt in ("FP16", "FP32"):
            np.testing.assert_allclose(o["data"], np.array(values, dtype=OIP_TO_NUMPY[dt]).astype(float))
        else:
            assert o["data"] == values, dt


def test_every_datatype_as_binary(echo: RuntimeServer) -> None:
    blobs, inputs = [], []
    for dt in SAMPLES:
        arr = array(dt)
        blob = serialize_bytes(arr) if dt == "BYTES" else arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        blobs.append(blob)
        params = {"binary_data_size": len(blob)}
        inputs.append({"name": f"in_{dt}", "datatype": dt, "shape": [2, 3], "parameters": params})
    header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    r = httpx.post(
        echo.url + "/v2/models/echo/infer",
        content=header + b"".join(blobs),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    offset = n
    for o in orjson.loads(r.content[:n])["outputs"]:
        size = o["parameters"]["binary_data_size"]
        chunk = r.content[offset : offset + size]
        offset += size
        dt = o["datatype"]
        if dt == "BYTES":
            got = [b.decode() for b in deserialize_bytes(chunk)]
            assert got == SAMPLES[dt]
        else:
            got_arr = np.frombuffer(chunk, dtype=OIP_TO_NUMPY[dt].newbyteorder("<")).reshape(o["shape"])
            np.testing.assert_array_equal(got_arr, array(dt))
    assert offset == len(r.content)


@pytest.mark.parametrize(
    ("dt", "data", "words"),
    [
        ("INT32", [1.5, 2, 3, 4, 5, 6], "integers"),
        ("INT8", [300, 2, 3, 4, 5, 6], "INT8"),
        ("UINT8", [-1, 2, 3, 4, 5, 6], "UINT8"),
        ("BOOL", [1, 0, 1, 0, 1, 0], "booleans"),
        ("BYTES", [1, 2, 3, 4, 5, 6], "strings"),
        ("INT64", [2**63, 2, 3, 4, 5, 6], "INT64"),
        ("UINT64", [-1, 2, 3, 4, 5, 6], "UINT64"),
        ("FP16", ["x", 2, 3, 4, 5, 6], "FP16"),
        ("FP64", [{"a": 1}, 2, 3, 4, 5, 6], "FP64"),
    ],
)
def test_values_that_do_not_fit_the_datatype(echo: RuntimeServer, dt: str, data: list[object], words: str) -> None:
    inputs = [
        {"name": f"in_{d}", "datatype": d, "shape": [2, 3], "data": data if d == dt else SAMPLES[d]} for d in SAMPLES
    ]
    r = httpx.post(echo.url + "/v2/models/echo/infer", content=json.dumps({"inputs": inputs}).encode())
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


def test_outputs_selection_returns_only_what_was_asked(echo: RuntimeServer) -> None:
    inputs = [{"name": f"in_{dt}", "datatype": dt, "shape": [2, 3], "data": SAMPLES[dt]} for dt in SAMPLES]
    wanted = [{"name": "out_INT8"}, {"name": "out_BYTES", "parameters": {"binary_data": True}}]
    body = {"inputs": inputs, "outputs": wanted}
    r = httpx.post(echo.url + "/v2/models/echo/infer", content=orjson.dumps(body))
    assert r.status_code == 200
    n = int(r.headers["inference-header-content-length"])
    outs = orjson.loads(r.content[:n])["outputs"]
    assert [o["name"] for o in outs] == ["out_INT8", "out_BYTES"]
    assert outs[0]["data"] == SAMPLES["INT8"]
    assert [b.decode() for b in deserialize_bytes(r.content[n:])] == SAMPLES["BYTES"]
