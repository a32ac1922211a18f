"""Loading (file, plain path, pvc, http), digest mismatch, readiness while loading, the erroring
model, and SIGTERM under load with zero failed requests."""

from __future__ import annotations

import asyncio
import http.server
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from tests.runtime import models
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer, start_server, wait_for

from modeldeploy.runtime import contract as c

ONE_ROW = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})


class ModelHTTPServer:
    """Serves one model file over HTTP; holds every download until `release()` is called."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.gate = threading.Event()
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path != "/models/model.onnx":
                    self.send_error(404)
                    return
                outer.gate.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.data)))
                self.end_headers()
                self.wfile.write(outer.data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_http() -> Iterator[ModelHTTPServer]:
    s = ModelHTTPServer(models.classifier(0))
    yield s
    s.close()


def test_ready_only_after_download_verify_and_warmup(
    model_http: ModelHTTPServer, model_files: ModelFiles, tmp_path: Path, log_dir: Path
) -> None:
    s = RuntimeServer(
        "clf",
        model_http.url + "/models/model.onnx",
        "--sha256",
        model_files.classifier_sha,
        "--cache-dir",
        str(tmp_path),
        log_dir=log_dir,
    ).start()
    try:
        wait_for(lambda: s.status(c.HEALTH_LIVE_PATH) == 200, 30, "liveness while loading")
        wait_for(lambda: model_http.requests > 0, 30, "the download to start")
        # loading: alive, not ready, inference refused with 503
        assert s.status(c.HEALTH_READY_PATH) == 503
        assert s.status(c.model_ready_path("clf")) == 503
        assert s.status(c.model_path("clf")) == 503
        r = httpx.post(s.url + c.infer_path("clf"), content=ONE_ROW)
        assert r.status_code == 503
        assert "not ready" in r.json()["error"]
        metrics = httpx.get(s.url + c.METRICS_PATH).text
        assert 'modeldeploy_model_ready{model="clf",revision="",track="stable",version="1"} 0.0' in metrics
        model_http.release()
        s.wait_ready(30)
        assert httpx.post(s.url + c.infer_path("clf"), content=ONE_ROW).status_code == 200
        assert list((tmp_path / "modeldeploy-models").glob("*.onnx"))  # downloaded into --cache-dir
    finally:
        assert s.stop() == 0, s.log()


def test_download_404_exits_3(model_http: ModelHTTPServer, tmp_path: Path, log_dir: Path) -> None:
    s = RuntimeServer("clf", model_http.url + "/nope.onnx", "--cache-dir", str(tmp_path), log_dir=log_dir).start()
    assert s.wait_exit(30) == c.EXIT_LOAD_FAILED
    assert "404" in s.log()


def test_download_over_size_limit_exits_3(model_http: ModelHTTPServer, tmp_path: Path, log_dir: Path) -> None:
    model_http.release()
    s = RuntimeServer(
        "clf",
        model_http.url + "/models/model.onnx",
        "--cache-dir",
        str(tmp_path),
        "--download-max-bytes",
        "100",
        log_dir=log_dir,
    ).start()
    assert s.wait_exit(30) == c.EXIT_LOAD_FAILED
    assert "limit" in s.log()


def test_digest_mismatch_never_serves_and_says_both_digests(model_files: ModelFiles, log_dir: Path) -> None:
    wrong = "0" * 64
    s = RuntimeServer("clf", f"file://{model_files.classifier}", "--sha256", wrong, log_dir=log_dir).start()
    assert s.wait_exit(30) == c.EXIT_DIGEST_MISMATCH
    log = s.log()
    assert f"expected {wrong}" in log
    assert f"actual {model_files.classifier_sha}" in log
    assert "ready:" not in log


def test_pvc_uri_and_environment_twins(model_files: ModelFiles, log_dir: Path) -> None:
    # the claim `models-claim` is "mounted" at <pvc root>/models-claim
    root = model_files.root / "pvcs"
    target = root / "models-claim" / "fraud" / "7"
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(models.classifier(0))
    env = {
        c.ENV_PVC_ROOT: str(root),
        c.ENV_MODEL_VERSION: "7",
        c.ENV_TRACK: "shadow",
        c.ENV_MODEL_SHA256: model_files.classifier_sha,
        c.ENV_PREDICTION_KIND: "score",
    }
    s = start_server("clf", "pvc://models-claim/fraud/7", "--track", "canary", log_dir=log_dir, env=env)
    try:
        assert httpx.post(s.url + c.infer_path("clf"), content=ONE_ROW).status_code == 200
        metrics = httpx.get(s.url + c.METRICS_PATH).text
        # the flag won over the environment; the environment filled the rest
        assert 'modeldeploy_prediction_score_count{model="clf",revision="",track="canary",version="7"} 1.0' in metrics
    finally:
        assert s.stop() == 0


def test_erroring_model_is_ready_and_answers_500(model_files: ModelFiles, log_dir: Path) -> None:
    s = start_server("bad", str(model_files.erroring), log_dir=log_dir)
    try:
        zeros = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}]})
        assert httpx.post(s.url + c.infer_path("bad"), content=zeros).status_code == 200
        r = httpx.post(s.url + c.infer_path("bad"), content=ONE_ROW)
        assert r.status_code == 500
        assert "inference failed" in r.json()["error"]
        assert "1, 2, 3, 4" not in s.log() and "[1.0, 2.0" not in s.log()  # payloads are never logged
    finally:
        assert s.stop() == 0


def test_fixed_shape_model_batching_off_and_outputs_selection(model_files: ModelFiles, log_dir: Path) -> None:
    s = start_server("adder", str(model_files.adder), "--max-batch-size", "8", log_dir=log_dir)
    try:
        meta = httpx.get(s.url + c.model_path("adder")).json()
        assert meta["parameters"]["max_batch_size"] == 0
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        req = {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": a.tolist()},
                {"name": "b", "datatype": "FP32", "shape": [2, 3], "data": np.ones(6).tolist()},
            ],
            "outputs": [{"name": "diff"}],
        }
        r = httpx.post(s.url + c.infer_path("adder"), content=orjson.dumps(req))
        assert r.status_code == 200, r.text
        (out,) = r.json()["outputs"]
        assert out["name"] == "diff"
        assert out["data"] == (a - 1).ravel().tolist()
        req["inputs"][0]["shape"] = [1, 6]  # type: ignore[index]
        assert httpx.post(s.url + c.infer_path("adder"), content=orjson.dumps(req)).status_code == 400
    finally:
        assert s.stop() == 0


def test_config_errors_exit_2(model_files: ModelFiles, log_dir: Path) -> None:
    s = RuntimeServer("clf", str(model_files.classifier), "--track", "blue", log_dir=log_dir).start()
    assert s.wait_exit(30) == c.EXIT_CONFIG
    assert "--track" in s.log()
    s = RuntimeServer("clf", str(model_files.classifier), "--prediction-output", "nope", log_dir=log_dir).start()
    assert s.wait_exit(30) == c.EXIT_CONFIG
    assert "nope" in s.log()


# --------------------------------------------------------------------------- SIGTERM


@pytest.fixture
def slow_model(model_files: ModelFiles) -> Path:
    path = model_files.root / "slow.onnx"
    if not path.exists():
        models.write_model(path, models.slow_classifier(0))
    return path


async def test_sigterm_under_load_drains_with_zero_failed_requests(slow_model: Path, log_dir: Path) -> None:
    s = start_server("slow", str(slow_model), "--max-batch-size", "4", "--grace-period-s", "20", log_dir=log_dir)
    ok = 0
    refused = 0
    failures: list[str] = []
    after_term = 0
    term_sent = asyncio.Event()
    enough = asyncio.Event()  # set once the load has run a while (or failed)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal ok, refused, after_term
        while True:
            try:
                r = await http.post(s.url + c.infer_path("slow"), content=ONE_ROW)
            except httpx.ConnectError:
                refused += 1  # the listener is closed: the request was never accepted
                return
            except httpx.HTTPError as e:
                failures.append(repr(e))
                enough.set()
                return
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text}")
                enough.set()
                return
            ok += 1
            if ok >= 40:
                enough.set()
            if term_sent.is_set():
                after_term += 1

    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        tasks = [asyncio.create_task(client(http)) for _ in range(8)]
        await asyncio.wait_for(enough.wait(), 30)
        s.signal(signal.SIGTERM)
        term_sent.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    code = s.wait_exit(30)
    assert failures == [], failures
    assert code == 0, s.log()
    assert ok >= 40
    assert refused == 8  # every client ended on a refused connection, none on an error
    log = s.log()
    assert "SIGTERM: not ready" in log
    assert "drained; exiting" in log


def test_sigterm_while_idle_exits_promptly(model_files: ModelFiles, log_dir: Path) -> None:
    s = start_server("clf", str(model_files.classifier), log_dir=log_dir)
    # an idle keep-alive connection must not hold the drain up
    with httpx.Client() as keep:
        assert keep.get(s.url + c.HEALTH_READY_PATH).status_code == 200
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        assert s.wait_exit(10) == 0
        assert time.monotonic() - t0 < 5


def test_heavy_model_runs_off_the_loop_so_health_answers_during_inference(slow_model: Path, log_dir: Path) -> None:
    s = start_server("slow", str(slow_model), log_dir=log_dir)
    try:
        assert "on a worker thread" in s.log()  # auto: the warm-up run took over 2 ms
        rows = 150  # ~0.5 s of compute
        big = orjson.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": [0.5] * (rows * 4)}]}
        )
        done: dict[str, float] = {}

        def slow_call() -> None:
            r = httpx.post(s.url + c.infer_path("slow"), content=big, timeout=60)
            assert r.status_code == 200
            done["t"] = time.monotonic()

        t = threading.Thread(target=slow_call)
        t.start()
        # wait until the big request is being computed: the queue metric counts it when it starts running
        wait_for(lambda: _queue_count(s) >= 1, 30, "the heavy request to start")
        t_live = time.monotonic()
        assert httpx.get(s.url + c.HEALTH_LIVE_PATH, timeout=5).status_code == 200
        answered = time.monotonic()
        t.join(60)
        assert "t" in done
        assert answered < done["t"], "liveness waited for the inference to finish"
        assert answered - t_live < 1.0
    finally:
        assert s.stop() == 0


def _queue_count(s: RuntimeServer) -> float:
    for line in httpx.get(s.url + "/metrics").text.splitlines():
        if line.startswith("modeldeploy_queue_duration_seconds_count"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_drain_delay_keeps_serving_with_readiness_503(model_files: ModelFiles, log_dir: Path) -> None:
    s = start_server("clf", str(model_files.classifier), "--drain-delay-s", "30", log_dir=log_dir)
    with httpx.Client() as http:
        assert http.get(s.url + c.HEALTH_READY_PATH).status_code == 200
        s.signal(signal.SIGTERM)
        wait_for(lambda: http.get(s.url + c.HEALTH_READY_PATH).status_code == 503, 10, "readiness to turn false")
        assert http.get(s.url + c.model_ready_path("clf")).status_code == 503
        assert http.get(s.url + c.HEALTH_LIVE_PATH).status_code == 200
        # new connections are still accepted and answered during the delay
        assert httpx.post(s.url + c.infer_path("clf"), content=ONE_ROW).status_code == 200
        s.signal(signal.SIGTERM)  # a second SIGTERM ends the delay
        assert s.wait_exit(10) == 0


def test_grace_period_bounds_the_drain_even_during_a_long_inference(slow_model: Path, log_dir: Path) -> None:
    s = start_server("slow", str(slow_model), "--grace-period-s", "0.5", log_dir=log_dir)
    rows = 1000  # several seconds of compute on the worker thread
    big = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": [0.5] * (rows * 4)}]}
    )
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["status"] = httpx.post(s.url + c.infer_path("slow"), content=big, timeout=60).status_code
        except httpx.HTTPError as e:
            outcome["error"] = e

    t = threading.Thread(target=call)
    t.start()
    wait_for(lambda: _queue_count(s) >= 1, 30, "the long inference to start")
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.wait_exit(30) == 0
    elapsed = time.monotonic() - t0
    t.join(30)
    assert "status" not in outcome  # the server left before the answer: the grace period won
    assert elapsed < 5, elapsed
    assert "grace period over" in s.log()


def test_access_log_is_opt_in_and_never_holds_payloads(model_files: ModelFiles, log_dir: Path) -> None:
    s = start_server("clf", str(model_files.classifier), "--access-log", "true", log_dir=log_dir)
    try:
        assert httpx.post(s.url + c.infer_path("clf"), content=ONE_ROW).status_code == 200
        wait_for(lambda: "/v2/models/clf/infer 200" in s.log(), 10, "the access log line")
        assert "[1, 2, 3, 4]" not in s.log() and "probabilities" not in s.log()
    finally:
        assert s.stop() == 0


def test_non_tensor_outputs_are_left_out(model_files: ModelFiles, log_dir: Path) -> None:
    path = model_files.root / "seq.onnx"
    models.write_model(path, models.with_sequence_output())
    s = start_server("seq", str(path), log_dir=log_dir)
    try:
        meta = httpx.get(s.url + c.model_path("seq")).json()
        assert [o["name"] for o in meta["outputs"]] == ["y"]
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        r = httpx.post(s.url + c.infer_path("seq"), content=orjson.dumps(body))
        assert r.status_code == 200, r.text
        assert r.json()["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]
    finally:
        assert s.stop() == 0
