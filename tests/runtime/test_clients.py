"""The clients people already use, as real clients: tritonclient's HTTP client (JSON and binary)
and KServe's REST client."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tests.runtime import models
from tests.runtime.harness import RuntimeServer
from tests.runtime.test_datatypes import SAMPLES, array
from tritonclient.utils import InferenceServerException

X = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)


def reference() -> np.ndarray:
    return models.classifier_reference(models.classifier(0), X)


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_infer(clf: RuntimeServer, binary: bool) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{clf.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("clf", "7")
        meta = client.get_model_metadata("clf")
        assert meta["inputs"][0]["name"] == "input"
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        inp = triton.InferInput("input", list(X.shape), "FP32")
        inp.set_data_from_numpy(X, binary_data=binary)
        out = triton.InferRequestedOutput("probabilities", binary_data=binary)
        result = client.infer("clf", [inp], outputs=[out], request_id="t1")
        np.testing.assert_allclose(result.as_numpy("probabilities"), reference(), rtol=1e-6)
        assert result.get_response()["id"] == "t1"
        # no outputs named: tritonclient asks for every output in binary form
        result = client.infer("clf", [inp])
        np.testing.assert_allclose(result.as_numpy("probabilities"), reference(), rtol=1e-6)
    finally:
        client.close()


def test_tritonclient_all_datatypes_binary_and_json(echo: RuntimeServer) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{echo.port}")
    try:
        for binary in (True, False):
            inputs = []
            for dt in SAMPLES:
                arr = array(dt)
                if dt == "BYTES":
                    arr = np.array([str(s).encode() for s in SAMPLES[dt]], dtype=np.object_).reshape(2, 3)
                i = triton.InferInput(f"in_{dt}", [2, 3], dt)
                # tritonclient refuses FP16 as JSON: send that one in binary either way
                i.set_data_from_numpy(arr, binary_data=binary or dt == "FP16")
                inputs.append(i)
            outputs = [triton.InferRequestedOutput(f"out_{dt}", binary_data=binary or dt == "FP16") for dt in SAMPLES]
            result = client.infer("echo", inputs, outputs=outputs)
            for dt in SAMPLES:
                got = result.as_numpy(f"out_{dt}")
                if dt == "BYTES":
                    assert [v.decode() if isinstance(v, bytes) else v for v in got.ravel()] == SAMPLES[dt]
                else:
                    np.testing.assert_array_equal(got, array(dt))
    finally:
        client.close()


def test_tritonclient_sees_errors_as_errors(clf: RuntimeServer) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{clf.port}")
    try:
        inp = triton.InferInput("input", [1, 3], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 3), np.float32))
        with pytest.raises(InferenceServerException, match="shape"):
            client.infer("clf", [inp])
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.infer("other", [inp])
    finally:
        client.close()


@pytest.mark.parametrize("binary", [False, True])
async def test_kserve_rest_client(clf: RuntimeServer, binary: bool) -> None:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    try:
        assert await client.is_server_live(clf.url)
        assert await client.is_server_ready(clf.url)
        assert await client.is_model_ready(clf.url, "clf")
        inp = InferInput(name="input", shape=list(X.shape), datatype="FP32")
        inp.set_data_from_numpy(X, binary_data=binary)
        req = InferRequest(model_name="clf", infer_inputs=[inp], request_id="k1")
        resp = await client.infer(clf.url, req, model_name="clf")
        assert resp.id == "k1"
        (out,) = resp.outputs
        assert out.name == "probabilities"
        np.testing.assert_allclose(out.as_numpy(), reference(), rtol=1e-6)
    finally:
        await client.close()
