"""Runtime tracing: off (nothing imported) unless OTEL_* names an exporter; on, a span per inference with
model, version, revision and track, child of the caller's `traceparent`, trace ids in log lines. In-process
with the SDK's in-memory exporter, and the real server exporting OTLP/HTTP protobuf to a receiver that
decodes it with the OTLP protobuf definitions."""

from __future__ import annotations

import http.server
import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from modeldeploy.runtime import tracing
from modeldeploy.runtime.app import App, Response
from modeldeploy.runtime.config import ConfigError, parse
from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.model import Model

from .conftest import ModelFiles
from .harness import RuntimeServer, free_port, wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
BODY = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, None),  # no exporter named: off
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
    ],
)
def test_which_environment_turns_tracing_on(env: dict[str, str], expected: str | None) -> None:
    assert tracing.wanted(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "one of otlp, console, none"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_a_bad_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tracing.from_env(env, "m", "1", "r", "stable")


def test_off_imports_nothing_of_opentelemetry(model_files: ModelFiles) -> None:
    code = (
        "import sys\n"
        "from modeldeploy.runtime import __main__, app, tracing\n"
        "assert tracing.from_env({}, 'm', '1', 'r', 'stable') is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_runtime_refuses_tracing_it_cannot_do_with_a_message(model_files: ModelFiles, tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy.runtime",
            "--model-name",
            "clf",
            "--model-uri",
            str(model_files.classifier),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "jaeger"},
        check=False,
    )
    assert p.returncode == 2 and "OTEL_TRACES_EXPORTER='jaeger'" in p.stderr and "Traceback" not in p.stderr


def app_with(path: Path, sha: str, exporter: InMemorySpanExporter) -> App:
    cfg = parse(
        [
            *("--model-name", "clf", "--model-uri", f"file://{path}", "--sha256", sha),
            *("--model-version", "7", "--revision", "abc123", "--track", "canary"),
        ]
    )
    app = App(cfg, Metrics(cfg.model_name, cfg.model_version, cfg.revision, cfg.track, cfg.prediction_kind))
    app.set_model(Model.load(path), sha, 0.1)
    app.set_ready(True)
    tracing.install(app, tracing.Tracing("clf", "7", "abc123", "canary", SimpleSpanProcessor(exporter)))
    return app


def call(app: App, body: bytes, headers: dict[bytes, bytes]) -> Response:
    t0 = time.perf_counter()
    resp = app.handle(b"POST", "/v2/models/clf/infer", body, headers, t0)
    assert isinstance(resp, Response)
    app.after_write(resp, time.perf_counter())
    return resp


def test_a_span_per_inference_child_of_the_callers_traceparent(model_files: ModelFiles) -> None:
    exporter = InMemorySpanExporter()
    app = app_with(model_files.classifier, model_files.classifier_sha, exporter)
    assert call(app, BODY, {b"traceparent": TRACEPARENT.encode()}).status == 200
    assert call(app, BODY, {}).status == 200
    assert call(app, b"{not json", {}).status == 400
    first, second, bad = exporter.get_finished_spans()
    assert first.name == "POST /v2/models/clf/infer" and first.kind.name == "SERVER"
    attrs = dict(first.attributes or {})
    assert attrs == {
        "modeldeploy.model.name": "clf",
        "modeldeploy.model.version": "7",
        "modeldeploy.revision": "abc123",
        "modeldeploy.track": "canary",
        "http.request.method": "POST",
        "url.path": "/v2/models/clf/infer",
        "http.response.status_code": 200,
    }
    assert f"{first.context.trace_id:032x}" == TRACE_ID
    assert first.parent is not None and f"{first.parent.span_id:016x}" == PARENT_ID and first.parent.is_remote
    assert second.parent is None and second.context.trace_id != first.context.trace_id  # a root of its own
    assert first.start_time is not None and first.end_time is not None and first.end_time >= first.start_time
    assert dict(bad.attributes or {})["http.response.status_code"] == 400
    assert bad.status.status_code == StatusCode.UNSET  # the client's fault is no server error
    assert first.resource.attributes["service.name"] == tracing.DEFAULT_SERVICE_NAME


def test_a_failed_inference_is_an_error_span_and_its_log_line_has_the_trace_id(model_files: ModelFiles) -> None:
    exporter = InMemorySpanExporter()
    app = app_with(model_files.erroring, model_files.erroring_sha, exporter)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(tracing.TraceIdFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("modeldeploy.runtime")
    logger.addHandler(handler)
    try:
        resp = call(app, BODY, {b"traceparent": TRACEPARENT.encode()})
    finally:
        logger.removeHandler(handler)
    assert resp.status == 500
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    line = stream.getvalue().strip()
    assert line.startswith("ERROR inference failed, request id ")
    assert line.endswith(f" trace_id={TRACE_ID} span_id={span.context.span_id:016x}")


class Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf ExportTraceServiceRequest."""

    requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
        if ok:
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            type(self).requests.append(req)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Rx", (Receiver,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def spans(rx: type[Receiver]) -> list[tuple[dict[str, Any], Any]]:
    """(resource attributes, span) for every span received."""
    out: list[tuple[dict[str, Any], Any]] = []
    for req in list(rx.requests):
        for rs in req.resource_spans:
            res = {a.key: a.value.string_value for a in rs.resource.attributes}
            out.extend((res, s) for ss in rs.scope_spans for s in ss.spans)
    return out


def attrs(span: Any) -> dict[str, Any]:
    return {
        a.key: a.value.string_value if a.value.HasField("string_value") else a.value.int_value for a in span.attributes
    }


@pytest.mark.parametrize("thread", ["off", "on"], ids=["inline", "on-a-worker-thread"])
def test_the_real_server_exports_otlp_http(
    model_files: ModelFiles, log_dir: Path, receiver: tuple[str, type[Receiver]], thread: str
) -> None:
    url, rx = receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "fraud-scorer",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
    }
    s = RuntimeServer(
        "clf",
        f"file://{model_files.erroring}",
        "--model-version",
        "9",
        "--revision",
        "r9",
        "--track",
        "canary",
        "--inference-thread",
        thread,
        log_dir=log_dir,
        env=env,
    )
    s.start().wait_ready()
    try:
        with httpx.Client(base_url=s.url, trust_env=False, timeout=10) as c:
            r = c.post("/v2/models/clf/infer", content=BODY, headers={"traceparent": TRACEPARENT})
            assert r.status_code == 500  # this model fails inside ONNX Runtime
            for _ in range(2):
                c.post("/v2/models/clf/infer", content=b"[]")  # 400
        got = wait_for(lambda: len(spans(rx)) >= 3 and spans(rx), timeout=20, what="3 spans at the receiver")
    finally:
        assert s.stop() == 0, s.log()
    by_status = sorted(got, key=lambda rs: -attrs(rs[1])["http.response.status_code"])
    res, span = by_status[0]
    assert res["service.name"] == "fraud-scorer" and res["deployment.environment"] == "test"
    assert span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_ID
    assert span.name == "POST /v2/models/clf/infer"
    a = attrs(span)
    assert {k: a[k] for k in ("modeldeploy.model.name", "modeldeploy.model.version", "modeldeploy.revision")} == {
        "modeldeploy.model.name": "clf",
        "modeldeploy.model.version": "9",
        "modeldeploy.revision": "r9",
    }
    assert a["modeldeploy.track"] == "canary" and a["http.response.status_code"] == 500
    assert span.status.code == span.status.STATUS_CODE_ERROR
    assert [attrs(s)["http.response.status_code"] for _, s in by_status] == [500, 400, 400]
    log = s.log()
    assert "tracing on" in log
    if thread == "off":  # the failure's log line is written while its span is current
        assert f"trace_id={TRACE_ID} span_id={span.span_id.hex()}" in log, log
