"""Every endpoint and every client error, over real HTTP against the real server."""

from __future__ import annotations

import gzip
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.runtime import models
from tests.runtime.conftest import SMALL_BODY_LIMIT, ModelFiles
from tests.runtime.harness import RuntimeServer, start_server

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.codec import deserialize_bytes, serialize_bytes
from modeldeploy.runtime.metrics import REQUEST_CODES

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, 1.0, 1.0], [0, 0, 0, 0]], dtype=np.float32)


def infer_body(x: np.ndarray = X, **extra: object) -> dict[str, object]:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
        **extra,
    }


def post(server: RuntimeServer, body: object, path: str | None = None, **kw: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(server.url + (path or "/v2/models/clf/infer"), content=content, timeout=10.0, **kw)  # type: ignore[arg-type]


def expected(server_model: bytes, x: np.ndarray = X) -> np.ndarray:
    return models.classifier_reference(server_model, x)


def scrape(server: RuntimeServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    text = httpx.get(server.url + c.METRICS_PATH).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


# --------------------------------------------------------------------------- health and metadata


def test_health_and_server_metadata(clf: RuntimeServer) -> None:
    assert httpx.get(clf.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(clf.url + "/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(clf.url + "/v2").json()
    assert meta["name"] == "modeldeploy"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_ready(clf: RuntimeServer, model_files: object) -> None:
    for path in ("/v2/models/clf", "/v2/models/clf/versions/7"):
        r = httpx.get(clf.url + path)
        assert r.status_code == 200
        m = r.json()
        assert m["name"] == "clf"
        assert m["versions"] == ["7"]
        assert m["platform"] == "onnxruntime_onnx"
        assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert m["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
        assert m["parameters"]["sha256"] == model_files.classifier_sha  # type: ignore[attr-defined]
    for path in ("/v2/models/clf/ready", "/v2/models/clf/versions/7/ready"):
        r = httpx.get(clf.url + path)
        assert (r.status_code, r.json()) == (200, {"name": "clf", "ready": True})


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/other", 404),
        ("GET", "/v2/models/other/ready", 404),
        ("GET", "/v2/models/clf/versions/8", 404),
        ("POST", "/v2/models/other/infer", 404),
        ("POST", "/v2/models/clf/versions/8/infer", 404),
        ("GET", "/nope", 404),
        ("GET", "/v2/models/clf/infer", 405),
        ("DELETE", "/v2/health/ready", 405),
    ],
)
def test_unknown_paths_models_versions_and_methods(clf: RuntimeServer, method: str, path: str, status: int) -> None:
    r = httpx.request(method, clf.url + path, content=orjson.dumps(infer_body()))
    assert r.status_code == status
    assert "error" in r.json()


def test_no_access_log_by_default(clf: RuntimeServer) -> None:
    assert post(clf, infer_body()).status_code == 200
    assert "/v2/models/clf/infer" not in clf.log()


def test_head_request_has_no_body(clf: RuntimeServer) -> None:
    r = httpx.head(clf.url + "/v2/health/live")
    assert r.status_code == 200
    assert r.content == b""


# --------------------------------------------------------------------------- inference


def test_infer_json_matches_onnxruntime_and_echoes_id(clf: RuntimeServer) -> None:
    r = post(clf, infer_body(id="req-1"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == "req-1"
    assert doc["model_name"] == "clf"
    assert doc["model_version"] == "7"
    (out,) = doc["outputs"]
    assert out["name"] == "probabilities"
    assert out["datatype"] == "FP32"
    assert out["shape"] == [3, 3]
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 3), expected(models.classifier(0)), rtol=1e-6)


def test_versioned_infer_path_and_nested_data(clf: RuntimeServer) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": X.tolist()}]}
    r = post(clf, body, "/v2/models/clf/versions/7/infer")
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        np.array(r.json()["outputs"][0]["data"]).reshape(3, 3), expected(models.classifier(0)), rtol=1e-6
    )


def test_no_id_means_no_id(clf: RuntimeServer) -> None:
    assert "id" not in post(clf, infer_body()).json()


def test_binary_request_and_binary_response(clf: RuntimeServer) -> None:
    header = orjson.dumps(
        {
            "id": "b",
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [3, 4], "parameters": {"binary_data_size": X.nbytes}}
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    )
    r = post(clf, header + X.tobytes(), headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta = orjson.loads(r.content[:n])
    (out,) = meta["outputs"]
    assert out["parameters"]["binary_data_size"] == 9 * 4
    got = np.frombuffer(r.content[n:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(got, expected(models.classifier(0)), rtol=1e-6)


def test_request_level_binary_data_output(clf: RuntimeServer) -> None:
    r = post(clf, infer_body(parameters={"binary_data_output": True}))
    assert r.status_code == 200
    n = int(r.headers["inference-header-content-length"])
    assert len(r.content) == n + 9 * 4
    # an explicit per-output binary_data=false wins over the request default
    r = post(
        clf,
        infer_body(
            parameters={"binary_data_output": True},
            outputs=[{"name": "probabilities", "parameters": {"binary_data": False}}],
        ),
    )
    assert "inference-header-content-length" not in r.headers
    assert len(r.json()["outputs"][0]["data"]) == 9


def test_gzip_request_body(clf: RuntimeServer) -> None:
    r = post(clf, gzip.compress(orjson.dumps(infer_body())), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text


def test_chunked_request_body(clf: RuntimeServer) -> None:
    data = orjson.dumps(infer_body())

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    r = httpx.post(clf.url + "/v2/models/clf/infer", content=chunks())
    assert r.status_code == 200, r.text


def test_keepalive_and_pipelining_answer_in_order(clf: RuntimeServer) -> None:
    bodies = [orjson.dumps(infer_body(id=str(i))) for i in range(5)]
    raw = b"".join(
        b"POST /v2/models/clf/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b) for b in bodies
    )
    with socket.create_connection(("127.0.0.1", clf.port), timeout=10) as s:
        s.sendall(raw)
        buf = b""
        ids: list[str] = []
        while len(ids) < 5:
            chunk = s.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = buf[:head_end].decode()
                length = int(
                    next(line.split(":")[1] for line in head.split("\r\n") if line.lower().startswith("content-length"))
                )
                if len(buf) < head_end + 4 + length:
                    break
                ids.append(orjson.loads(buf[head_end + 4 : head_end + 4 + length])["id"])
                buf = buf[head_end + 4 + length :]
    assert ids == ["0", "1", "2", "3", "4"]


# --------------------------------------------------------------------------- client errors


def _err(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    for w in words:
        assert w in msg, msg


def test_malformed_json(clf: RuntimeServer) -> None:
    _err(post(clf, b"{not json"), 400, "not valid JSON")
    _err(post(clf, b"[1,2]"), 400, "JSON object")
    _err(post(clf, {"inputs": "x"}), 400, "'inputs'")


def test_unknown_and_missing_input(clf: RuntimeServer) -> None:
    _err(
        post(clf, {"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]}),
        400,
        "unknown input",
        "nope",
    )
    _err(post(clf, {"inputs": []}), 400, "missing input", "input")


def test_wrong_datatype(clf: RuntimeServer) -> None:
    body = infer_body()
    body["inputs"][0]["datatype"] = "INT64"  # type: ignore[index]
    _err(post(clf, body), 400, "datatype INT64", "FP32")
    body["inputs"][0]["datatype"] = "FLOAT"  # type: ignore[index]
    _err(post(clf, body), 400, "unknown datatype")


def test_wrong_shape(clf: RuntimeServer) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [4, 3], "data": X.ravel().tolist()}]}
    _err(post(clf, body), 400, "shape [4, 3]", "[-1, 4]")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [12], "data": X.ravel().tolist()}]}
    _err(post(clf, body), 400, "shape")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [-3, 4], "data": []}]}
    _err(post(clf, body), 400, "non-negative")


def test_data_length_does_not_match_shape(clf: RuntimeServer) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": [1.0] * 11}]}
    _err(post(clf, body), 400, "11 elements", "needs 12")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [[1, 2, 3, 4], [1, 2]]}]}
    _err(post(clf, body), 400, "input 'input'")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": ["a", "b", "c", "d"]}]}
    _err(post(clf, body), 400, "FP32")


def test_binary_data_errors(clf: RuntimeServer) -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "parameters": {"binary_data_size": 48}}]}
    )
    hl = {"Inference-Header-Content-Length": str(len(header))}
    _err(post(clf, header + X.tobytes()[:40], headers=hl), 400, "binary_data_size")
    _err(post(clf, header + X.tobytes() + b"xx", headers=hl), 400, "binary tensor data")
    _err(
        post(clf, header, headers={"Inference-Header-Content-Length": "99999"}), 400, "Inference-Header-Content-Length"
    )
    _err(post(clf, header, headers={"Inference-Header-Content-Length": "ten"}), 400, "integer")


def test_unknown_output(clf: RuntimeServer) -> None:
    _err(post(clf, infer_body(outputs=[{"name": "logits"}])), 400, "unknown output", "logits")


def test_body_over_limit_is_413(clf: RuntimeServer) -> None:
    big = b'{"inputs": [' + b" " * (SMALL_BODY_LIMIT + 10) + b"]}"
    _err(post(clf, big), 413, "exceeds")

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while reading
        for _ in range(SMALL_BODY_LIMIT // 4096 + 2):
            yield b" " * 4096

    _err(httpx.post(clf.url + "/v2/models/clf/infer", content=chunks()), 413, "exceeds")
    # the server is fine afterwards
    assert post(clf, infer_body()).status_code == 200


def test_malformed_http_gets_400(clf: RuntimeServer) -> None:
    with socket.create_connection(("127.0.0.1", clf.port), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 400")


def test_unsupported_content_encoding(clf: RuntimeServer) -> None:
    _err(post(clf, b"xx", headers={"Content-Encoding": "br"}), 415, "content-encoding")


# --------------------------------------------------------------------------- metrics


def test_metrics_labels_codes_rejections_and_predictions(clf: RuntimeServer) -> None:
    before = scrape(clf)
    assert post(clf, infer_body()).status_code == 200
    assert post(clf, {"inputs": []}).status_code == 400
    after = scrape(clf)
    base = {"model": "clf", "version": "7", "revision": "abc123", "track": "canary"}

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({**base, **labels}.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(c.METRIC_REQUESTS_TOTAL, code="200") == 1
    assert delta(c.METRIC_REQUESTS_TOTAL, code="400") == 1
    assert delta(c.METRIC_REQUEST_DURATION + "_count") == 2
    assert delta(c.METRIC_INPUT_REJECTIONS_TOTAL, reason="missing_input") == 1
    assert sum(delta(c.METRIC_PREDICTION_CLASS_TOTAL, **{"class": k}) for k in "012") == 3  # one per row
    assert delta(c.METRIC_BATCH_SIZE + "_sum") == 3
    assert after[(c.METRIC_MODEL_READY, tuple(sorted(base.items())))] == 1
    assert after[(c.METRIC_MODEL_LOAD_SECONDS, tuple(sorted(base.items())))] > 0
    assert (c.METRIC_REQUEST_DURATION + "_bucket", tuple(sorted({**base, "le": "0.0001"}.items()))) in after


def test_zero_series_exist_right_after_ready(model_files: ModelFiles, log_dir: Path) -> None:
    """A fresh server, scraped before any request: the classes of the watched output (3), the status
    codes and the rejection reasons are there at 0, so Prometheus's increase() sees the first one."""
    s = start_server("fresh", f"file://{model_files.classifier}", log_dir=log_dir)
    try:
        got = scrape(s)
    finally:
        assert s.stop() == 0, s.log()
    base = {"model": "fresh", "version": "1", "revision": "", "track": "stable"}

    def value(name: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted({**base, **labels}.items()))))

    assert [value(c.METRIC_PREDICTION_CLASS_TOTAL, **{"class": str(k)}) for k in range(4)] == [0, 0, 0, None]
    assert value(c.METRIC_REQUESTS_TOTAL, code="200") == 0
    assert all(value(c.METRIC_REQUESTS_TOTAL, code=str(code)) == 0 for code in REQUEST_CODES)
    assert all(value(c.METRIC_INPUT_REJECTIONS_TOTAL, reason=r) == 0 for r in c.REJECTION_REASONS)
    assert value(c.METRIC_MODEL_READY) == 1


def test_struct_helper_bytes_roundtrip() -> None:
    arr = np.array(["a", "", "héllo"], dtype=object)
    blob = serialize_bytes(arr)
    assert blob[:4] == struct.pack("<I", 1)
    assert [b.decode() for b in deserialize_bytes(blob)] == ["a", "", "héllo"]
