"""The v2 REST endpoints, independent of the HTTP transport.

`App.handle` takes a parsed request and returns a `Response`, or a `Deferred` one when the
request goes through the batcher (dynamic batching, or a worker thread for heavy models). Light
models without batching run inline on the event loop: a thread hand-off would cost more than
their inference.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.batching import Batcher, Outputs, Result
from modeldeploy.runtime.codec import DecodedRequest, InferError, decode_request, decompress, encode_response
from modeldeploy.runtime.config import Config
from modeldeploy.runtime.errors import new_request_id, one_line
from modeldeploy.runtime.limits import TensorLimits
from modeldeploy.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from modeldeploy.runtime.metrics import Metrics, class_count
from modeldeploy.runtime.mirror import Mirror
from modeldeploy.runtime.model import Model, ModelRunError

log = logging.getLogger("modeldeploy.runtime")

SERVER_NAME = "modeldeploy"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data", "model_configuration"]

JSON = b"application/json"
OCTET = b"application/octet-stream"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    #: rendered header lines, each ending in CRLF
    headers: bytes = b""
    #: an inference request: counted and timed by `App.after_write`, once the answer is on its way
    metered: bool = False
    t0: float = 0.0
    #: the outputs of an inline run, for the batch-size and prediction metrics (after the write)
    outputs: list[np.ndarray[Any, Any]] | None = None
    #: a live request sampled for the mirror: its body and headers, copied once the answer is written
    copy: tuple[bytes, dict[bytes, bytes]] | None = None


class Deferred:
    """A response that the batcher delivers later (within a loop callback, never from a thread)."""

    __slots__ = ("callback", "result")

    def __init__(self) -> None:
        self.callback: Callable[[Response], None] | None = None
        self.result: Response | None = None

    def resolve(self, r: Response) -> None:
        if self.callback is not None:
            self.callback(r)
        else:
            self.result = r


def _error(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"error": message}))


@dataclass(slots=True)
class State:
    ready: bool = False
    draining: bool = False
    #: the pod's serving label (podwatch): False -> the server closes keep-alive connections; readiness stays
    #: the model's (a shadow, or a canary held at the contract gate, is out of serving and must read Ready)
    serving: bool = True
    load_error: str | None = None
    sha256: str | None = None
    load_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class App:
    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.state = State()
        self.model: Model | None = None
        self.batcher: Batcher | None = None
        self.mirror: Mirror | None = None
        self.track = cfg.track
        self._watch_index = 0
        name = cfg.model_name
        v = cfg.model_version
        self._infer_paths = {c.infer_path(name), f"/v2/models/{name}/versions/{v}/infer"}
        self._ready_paths = {c.model_ready_path(name), f"/v2/models/{name}/versions/{v}/ready"}
        self._meta_paths = {c.model_path(name), f"/v2/models/{name}/versions/{v}"}
        self._server_meta = orjson.dumps({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})
        self._model_meta = b""
        self._live = Response(200, b'{"live":true}')
        lim = cfg.limits
        self.tensor_limits = TensorLimits(
            lim.tensor_elements(cfg.max_body_bytes), lim.max_bytes_elements, lim.max_bytes_total
        )

    # ------------------------------------------------------------------------------- lifecycle

    def set_model(self, model: Model, sha256: str, load_seconds: float) -> None:
        """Called once the model is loaded, verified and warmed up: then, and only then, ready."""
        self.model = model
        self.state.sha256 = sha256
        self.state.load_seconds = load_seconds
        watched = self.cfg.prediction_output or model.output_names[0]
        self._watch_index = model.output_names.index(watched)
        if self.metrics.prediction_kind == "class":
            spec = model.outputs[watched]
            n = class_count(spec.shape, spec.datatype)
            if n is not None:
                self.metrics.declare_classes(n)
        self._render_model_meta()
        self.metrics.model_load_seconds.set(load_seconds)

    def set_track(self, track: str) -> None:
        """The pod's track label changed: metrics and the model metadata follow it."""
        self.track = track
        self.metrics.set_track(track)
        if self.model is not None:
            self._render_model_meta()

    def _render_model_meta(self) -> None:
        model = self.model
        assert model is not None
        self._model_meta = orjson.dumps(
            {
                "name": self.cfg.model_name,
                "versions": [self.cfg.model_version],
                "platform": "onnxruntime_onnx",
                "inputs": [s.metadata() for s in model.inputs.values()],
                "outputs": [s.metadata() for s in model.outputs.values()],
                "parameters": {
                    "sha256": self.state.sha256,
                    "revision": self.cfg.revision,
                    "track": self.track,
                    "max_batch_size": self.batcher.max_batch_size
                    if self.batcher is not None and self.batcher.max_batch_size > 1
                    else 0,
                    "execution_provider": model.execution_provider,
                    "execution_provider_requested": model.requested_provider,
                    "execution_provider_fallback": model.provider_fallback,
                },
            }
        )

    def set_ready(self, ready: bool) -> None:
        self.state.ready = ready
        self.metrics.model_ready.set(1 if ready else 0)

    def record_outputs(self, outs: Outputs) -> None:
        self.metrics.predictions(outs[self._watch_index])

    # ------------------------------------------------------------------------------- dispatch

    def is_infer_path(self, path: str) -> bool:
        return path in self._infer_paths or (path.startswith("/v2/models/") and path.endswith("/infer"))

    def handle(
        self,
        method: bytes,
        path: str,
        body: bytes,
        headers: dict[bytes, bytes],
        t0: float,
    ) -> Response | Deferred:
        if path in self._infer_paths:
            if method != b"POST":
                return _method_not_allowed(b"POST")
            return self.infer(body, headers, t0)
        if "%" in path:
            path = urllib.parse.unquote(path)
            if path in self._infer_paths:
                return self.handle(method, path, body, headers, t0)
        if method not in (b"GET", b"HEAD"):
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                if method != b"POST":
                    return _method_not_allowed(b"POST")
                return self.finish(self._unknown_model(path), t0)
            if self._known(path):
                return _method_not_allowed(b"GET, HEAD")
            return _error(404, f"no such endpoint: {path[:200]}")
        if path == c.HEALTH_LIVE_PATH:
            return self._live
        if path == c.HEALTH_READY_PATH:
            ready = self.state.ready
            return Response(200 if ready else 503, orjson.dumps({"ready": ready}))
        if path in self._ready_paths:
            return self._readiness({"name": self.cfg.model_name, "ready": self.state.ready})
        if path == c.METRICS_PATH:
            return Response(200, self.metrics.render(), METRICS_CONTENT_TYPE.encode())
        if path == c.SERVER_METADATA_PATH or path == c.SERVER_METADATA_PATH + "/":
            return Response(200, self._server_meta)
        if path in self._meta_paths:
            if self.model is None:
                return _error(503, f"model {self.cfg.model_name!r} is not loaded yet")
            return Response(200, self._model_meta)
        if path.startswith("/v2/models/"):
            return self._unknown_model(path)
        if path.endswith("/infer"):
            return _method_not_allowed(b"POST")
        return _error(404, f"no such endpoint: {path}")

    def _known(self, path: str) -> bool:
        return path in (c.HEALTH_LIVE_PATH, c.HEALTH_READY_PATH, c.METRICS_PATH, c.SERVER_METADATA_PATH) or (
            path in self._ready_paths or path in self._meta_paths
        )

    def _unknown_model(self, path: str) -> Response:
        parts = path.split("/")  # ['', 'v2', 'models', name, ...]
        name = parts[3] if len(parts) > 3 else ""
        if name != self.cfg.model_name:
            return _error(404, f"unknown model {name!r}; this server serves {self.cfg.model_name!r}")
        if len(parts) > 5 and parts[4] == "versions" and parts[5] != self.cfg.model_version:
            return _error(
                404,
                f"unknown version {parts[5]!r} of model {name!r}; this server serves version "
                f"{self.cfg.model_version!r}",
            )
        return _error(404, f"no such endpoint: {path}")

    def _readiness(self, doc: dict[str, Any]) -> Response:
        return Response(200 if self.state.ready else 503, orjson.dumps(doc))

    # ------------------------------------------------------------------------------- inference

    def finish(self, resp: Response, t0: float) -> Response:
        """Mark an inference answer for the request metrics, recorded by `after_write`."""
        resp.metered = True
        resp.t0 = t0
        return resp

    def after_write(self, resp: Response, t_written: float) -> None:
        """Metrics for an answer already handed to the socket: off the request's critical path."""
        if not resp.metered:
            return
        self.metrics.request(resp.status, t_written - resp.t0)
        if resp.copy is not None and self.mirror is not None:
            self.mirror.submit(*resp.copy, resp, t_written - resp.t0)
        outs = resp.outputs
        if outs is not None:
            model = self.model
            first = outs[0]
            self.metrics.batch_size.observe(
                first.shape[0] if model is not None and model.batchable and first.ndim else 1
            )
            self.record_outputs(outs)

    def reject(self, e: InferError, t0: float) -> Response:
        if e.reason is not None:
            self.metrics.rejection(e.reason)
        return self.finish(Response(e.status, e.body()), t0)

    def body_too_large(self, path: str, t0: float) -> Response:
        e = InferError(
            413, f"request body exceeds the limit of {self.cfg.max_body_bytes} bytes", c.REJECTION_BODY_TOO_LARGE
        )
        if self.is_infer_path(path):
            return self.reject(e, t0)
        return Response(e.status, e.body())

    def infer(self, body: bytes, headers: dict[bytes, bytes], t0: float) -> Response | Deferred:
        model = self.model
        if model is None:  # while draining, requests that reached us are still answered
            return self.finish(_error(503, f"model {self.cfg.model_name!r} is not ready (loading)"), t0)
        m = self.mirror
        copy = (body, headers) if m is not None and m.sample(headers) else None
        try:
            enc = headers.get(b"content-encoding")
            if enc is not None:
                body = decompress(body, enc.decode("latin-1"), self.cfg.max_body_bytes)
            raw_len = headers.get(b"inference-header-content-length")
            header_len = None
            if raw_len is not None:
                try:
                    header_len = int(raw_len)
                except ValueError:
                    raise InferError(
                        400, "Inference-Header-Content-Length must be an integer", c.REJECTION_MALFORMED
                    ) from None
            req = decode_request(body, header_len, model.inputs, model.outputs, self.tensor_limits)
        except InferError as e:
            return self.reject(e, t0)
        if self.batcher is not None:
            return self._infer_batched(req, t0, copy)
        try:
            outs = model.run(req.inputs)
        except ModelRunError as e:
            return self.finish(_run_failed(e), t0)
        resp = self._encode(req, outs, t0)
        resp.outputs = outs  # batch size and predictions are recorded after the write
        resp.copy = copy
        return resp

    def _infer_batched(self, req: DecodedRequest, t0: float, copy: tuple[bytes, dict[bytes, bytes]] | None) -> Deferred:
        assert self.batcher is not None
        d = Deferred()

        def done(result: Result) -> None:
            if isinstance(result, ModelRunError):
                d.resolve(self.finish(_run_failed(result), t0))
            else:
                resp = self._encode(req, result, t0)
                resp.copy = copy
                d.resolve(resp)

        self.batcher.submit(req.inputs, done)
        return d

    def _encode(self, req: DecodedRequest, outs: list[np.ndarray[Any, Any]], t0: float) -> Response:
        """The answer to an inference, marked as `finish` marks it."""
        model = self.model
        assert model is not None
        specs = model.outputs
        names = model.output_names
        if req.outputs is None:
            # a loop, not a comprehension (a call of its own in CPython 3.11): every answer passes here
            chosen = []
            binary = req.binary_output
            for n, o in zip(names, outs, strict=True):
                chosen.append((specs[n], o, binary))
        else:
            by_name = dict(zip(names, outs, strict=True))
            chosen = [(specs[r.name], by_name[r.name], r.binary) for r in req.outputs]
        body, header_len = encode_response(self.cfg.model_name, self.cfg.model_version, req.id, chosen)
        if header_len is None:
            return Response(200, body, metered=True, t0=t0)
        headers = b"inference-header-content-length: %d\r\n" % header_len
        return Response(200, body, OCTET, headers, metered=True, t0=t0)


def _run_failed(e: ModelRunError) -> Response:
    """The model failed on input that matched its signature: a 500 whose answer names only the request
    id; ONNX Runtime's message goes to the one log line with that id."""
    rid = new_request_id()
    log.error("inference failed, request id %s: %s", rid, one_line(e))
    body = orjson.dumps({"error": f"inference failed; the server log has request id {rid}", "request_id": rid})
    return Response(500, body, headers=b"x-request-id: %s\r\n" % rid.encode())


def _method_not_allowed(allow: bytes) -> Response:
    r = _error(405, f"method not allowed; use {allow.decode()}")
    r.headers = b"allow: " + allow + b"\r\n"
    return r
