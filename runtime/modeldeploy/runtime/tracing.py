"""Tracing of inferences with OpenTelemetry, when the standard `OTEL_*` environment asks for it.

Off unless the environment names an exporter: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP/protobuf), or `OTEL_TRACES_EXPORTER` (`otlp`,
`console`, `none`); `OTEL_SDK_DISABLED=true` turns it off whatever else is set. Off, nothing of
OpenTelemetry is imported and the request path is the one without tracing (`App` is left as it is).
On (the `otel` extra: opentelemetry-sdk and the OTLP/HTTP exporter), each inference request gets a
SERVER span `POST /v2/models/{name}/infer` from the request's first byte to its answer's write, with
the model's name, version, revision and track, the HTTP status, an error status on a 5xx, and as
parent the caller's `traceparent` (`OTEL_PROPAGATORS`, W3C trace context and baggage by default).
Every other `OTEL_*` variable (sampler, resource attributes, service name, exporter endpoint,
headers, timeouts, batch sizes) is read by the SDK itself, as the specification says. Log lines
written while an inference is handled (an inference failure's line with its request id) carry the
span's `trace_id` and `span_id`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modeldeploy.runtime.config import ConfigError

if TYPE_CHECKING:  # the `otel` extra: imported only when tracing is on
    from opentelemetry.sdk.trace import SpanProcessor

    from modeldeploy.runtime.app import App, Deferred, Response

DEFAULT_SERVICE_NAME = "modeldeploy-runtime"
_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


def wanted(environ: Mapping[str, str]) -> str | None:
    """The exporter the environment asks for (`otlp`, `console`), or None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        names = [e.strip() for e in exporter.split(",") if e.strip()]
        if names == ["none"]:
            return None
        unknown = [n for n in names if n not in ("otlp", "console")]
        if unknown or len(names) != 1:
            raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: this runtime exports to one of otlp, console, none")
        return names[0]
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def _exporter_processor(kind: str, environ: Mapping[str, str]) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter  # noqa: PLC0415

    if kind == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip()
    if protocol not in ("", "http/protobuf"):
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this runtime exports OTLP over http/protobuf"
            " (a Collector's port 4318); set it to http/protobuf or leave it unset"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return BatchSpanProcessor(OTLPSpanExporter())


class Tracing:
    """A tracer provider and the spans of inferences in flight."""

    def __init__(
        self, model_name: str, model_version: str, revision: str, track: str, processor: SpanProcessor
    ) -> None:
        from opentelemetry import context, propagate, trace  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; ours only fill gaps
        resource = Resource.create({})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = Resource.create({"service.name": DEFAULT_SERVICE_NAME})
        self.provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("modeldeploy.runtime")
        self._trace = trace
        self._context = context
        self._extract = propagate.extract
        self.name = f"POST /v2/models/{model_name}/infer"
        self.attributes = {
            "modeldeploy.model.name": model_name,
            "modeldeploy.model.version": model_version,
            "modeldeploy.revision": revision,
            "modeldeploy.track": track,
            "http.request.method": "POST",
        }
        #: open spans by id() of the Response that ends them (when its write is done)
        self._open: dict[int, Any] = {}

    def begin(self, path: str, headers: Mapping[bytes, bytes], t0: float) -> tuple[Any, object]:
        """A span from `t0` (perf_counter) on, child of the request's `traceparent`, made current."""
        carrier = {k.decode("latin-1"): headers[k].decode("latin-1") for k in _TRACE_HEADERS if k in headers}
        parent = self._extract(carrier) if carrier else None
        start_ns = time.time_ns() - int((time.perf_counter() - t0) * 1e9)
        span = self.tracer.start_span(
            self.name,
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={**self.attributes, "url.path": path},
            start_time=start_ns,
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def release(self, token: object) -> None:
        self._context.detach(token)  # type: ignore[arg-type]

    def hold(self, resp: Response, span: Any) -> None:
        self._open[id(resp)] = span

    def end(self, resp: Response, t_written: float) -> None:
        span = self._open.pop(id(resp), None)
        if span is None:
            return
        span.set_attribute("http.response.status_code", resp.status)
        if resp.status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, f"HTTP {resp.status}"))
        span.end(end_time=time.time_ns() - int((time.perf_counter() - t_written) * 1e9))

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds


class TraceIdFormatter(logging.Formatter):
    """The runtime's log format, with ` trace_id=<32 hex> span_id=<16 hex>` while a span is current."""

    def format(self, record: logging.LogRecord) -> str:
        from opentelemetry import trace  # noqa: PLC0415

        text = super().format(record)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            text += f" trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}"
        return text


def install(app: App, tracing: Tracing) -> None:
    """Route the app's inferences through `tracing`: its `infer` and `after_write` are wrapped on the
    instance, so an app without tracing keeps its methods untouched."""
    from modeldeploy.runtime.app import App as AppType  # noqa: PLC0415
    from modeldeploy.runtime.app import Deferred as DeferredType  # noqa: PLC0415
    from modeldeploy.runtime.app import Response as ResponseType  # noqa: PLC0415

    plain_infer = AppType.infer.__get__(app)
    plain_after_write = AppType.after_write.__get__(app)
    path = f"/v2/models/{app.cfg.model_name}/infer"

    def infer(body: bytes, headers: dict[bytes, bytes], t0: float) -> Response | Deferred:
        span, token = tracing.begin(path, headers, t0)
        try:
            result = plain_infer(body, headers, t0)
        finally:
            tracing.release(token)
        if type(result) is ResponseType:
            tracing.hold(result, span)
            return result
        assert isinstance(result, DeferredType)
        if result.result is not None:
            tracing.hold(result.result, span)
            return result
        outer = DeferredType()

        def delivered(r: Response) -> None:
            tracing.hold(r, span)
            outer.resolve(r)

        result.callback = delivered
        return outer

    def after_write(resp: Response, t_written: float) -> None:
        plain_after_write(resp, t_written)
        tracing.end(resp, t_written)

    app.infer = infer  # type: ignore[method-assign]
    app.after_write = after_write  # type: ignore[method-assign]


def from_env(
    environ: Mapping[str, str], model_name: str, model_version: str, revision: str, track: str
) -> Tracing | None:
    """Tracing as the environment asks, or None (nothing imported). ConfigError names a bad variable
    or the missing `otel` extra."""
    kind = wanted(environ)
    if kind is None:
        return None
    try:
        processor = _exporter_processor(kind, environ)
    except ImportError as e:
        raise ConfigError(
            f"OTEL_* asks for tracing ({kind}) but OpenTelemetry is not installed ({e.name}):"
            " pip install 'modeldeploy[otel]', or unset OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER"
        ) from None
    return Tracing(model_name, model_version, revision, track, processor)


def correlate_logs() -> None:
    """Every handler of the root logger formats with trace ids from now on."""
    for handler in logging.getLogger().handlers:
        fmt = handler.formatter._fmt if handler.formatter is not None else None
        handler.setFormatter(TraceIdFormatter(fmt))
