"""HTTP/1.1 on asyncio and httptools, without ASGI: parse, hand to the App, write the reply.

Measured faster than uvicorn + raw ASGI for this workload (no per-request scope dicts, message
dicts or tasks when inference runs inline). Keeps what matters: keep-alive, pipelined requests
answered in order, chunked request bodies, `Expect: 100-continue`, a body limit answered with
413 before the body is buffered, idle connections closed after a keep-alive timeout, and a
graceful drain: stop listening, answer in-flight requests with `connection: close`, close idle
connections, finish when no connection is left or the grace period is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from http import HTTPStatus
from typing import Any, cast

import httptools
import orjson

from modeldeploy.runtime.app import App, Response

log = logging.getLogger("modeldeploy.runtime")
access_log = logging.getLogger("modeldeploy.runtime.access")

KEEPALIVE_TIMEOUT_S = 75.0  # longer than the usual load balancer idle timeout (60 s)
DRAIN_IDLE_S = 0.2  # while draining, a connection idle this long is closed
REQUEST_TIMEOUT_S = 60.0  # a request whose bytes stop arriving this long is answered 408
MAX_PIPELINED = 64
_HEADERS_WANTED = frozenset({b"content-length", b"inference-header-content-length", b"content-encoding", b"expect"})
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status


class _Slot:
    """One response position on a connection: answers leave in request order."""

    __slots__ = ("close", "data", "resp")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.close = False
        self.resp: Response | None = None


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.too_large = False
        self.in_message = False
        self.t0 = 0.0
        self.pending: deque[_Slot] = deque()
        self.closing = False
        self.paused = False
        self.last_active = 0.0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.last_active = self.server.loop.time()
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.in_message:
            self.server.receiving -= 1
            self.in_message = False
        self.closing = True
        self.server.check_drained()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.server.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._fatal(400, f"malformed HTTP request: {e}")

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self.t0 = time.perf_counter()
        self.url = b""
        self.headers = {}
        self.body = []
        self.body_size = 0
        self.too_large = False
        self.in_message = True
        self.server.receiving += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n in _HEADERS_WANTED:
            self.headers[n] = value

    def on_headers_complete(self) -> None:
        cl = self.headers.get(b"content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.server.max_body_bytes:
            self.too_large = True
            if self.headers.get(b"expect", b"").lower() == b"100-continue":
                # the client waits for our word before sending the body: refuse it now
                self._respond_now(self.app.body_too_large(self._path(), self.t0), close=True)
                self._message_done()
                self.closing = True
            return
        if self.headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.body_size += len(body)
        if self.body_size > self.server.max_body_bytes:
            self.too_large = True
            self.body = []
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.in_message:
            return
        self._message_done()
        path = self._path()
        close = not self.parser.should_keep_alive() or self.server.draining
        if self.too_large:
            self._respond_now(self.app.body_too_large(path, self.t0), close=True)
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        method = self.parser.get_method()
        try:
            result = self.app.handle(method, path, body, self.headers, self.t0)
        except Exception:  # a bug, not the client's fault: answer 500 and keep serving
            log.exception("unhandled error on %s", path)
            result = Response(500, b'{"error":"internal server error"}')
        if isinstance(result, Response):
            if method == b"HEAD":
                result = Response(result.status, b"", result.content_type, result.headers)
            self._respond_now(result, close)
            return
        if result.result is not None:  # resolved already
            self._respond_now(result.result, close)
            return
        slot = _Slot()
        self.pending.append(slot)
        if len(self.pending) > MAX_PIPELINED and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        result.callback = lambda r: self._complete(slot, r, close)

    # ------------------------------------------------------------------ responses

    def _path(self) -> str:
        url = self.url
        q = url.find(b"?")
        if q >= 0:
            url = url[:q]
        return url.decode("latin-1")

    def _message_done(self) -> None:
        if self.in_message:
            self.in_message = False
            self.server.receiving -= 1

    def _render(self, r: Response, close: bool) -> bytes:
        head = b"%scontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n" % (
            _status_line(r.status),
            r.content_type,
            len(r.body),
            r.headers,
            b"connection: close\r\n" if close else b"",
        )
        if self.server.access_log:
            access_log.info("%s %d %.3fms", self._path(), r.status, (time.perf_counter() - self.t0) * 1e3)
        return head + r.body

    def _respond_now(self, r: Response, close: bool) -> None:
        if self.pending:  # earlier answers still outstanding: keep the order
            slot = _Slot()
            slot.data = self._render(r, close)
            slot.close = close
            slot.resp = r
            self.pending.append(slot)
            return
        self._write(self._render(r, close), close)
        self.app.after_write(r, time.perf_counter())

    def _complete(self, slot: _Slot, r: Response, close: bool) -> None:
        close = close or self.server.draining
        slot.data = self._render(r, close)
        slot.close = close
        slot.resp = r
        written: list[Response] = []
        while self.pending and self.pending[0].data is not None:
            s = self.pending.popleft()
            assert s.data is not None
            self._write(s.data, s.close)
            if s.resp is not None:
                written.append(s.resp)
            if s.close:
                self.pending.clear()
                break
        if self.paused and len(self.pending) < MAX_PIPELINED // 4 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        t = time.perf_counter()
        for resp in written:
            self.app.after_write(resp, t)

    def _write(self, data: bytes, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        self.last_active = self.server.loop.time()
        if close or (self.server.draining and not self.in_message and not self.pending):
            self.closing = True
            t.close()

    def _fatal(self, status: int, message: str) -> None:
        self._message_done()
        r = Response(status, orjson.dumps({"error": message}))
        self.pending.clear()
        self._write(self._render(r, True), True)

    # ------------------------------------------------------------------ idle handling

    def is_idle(self) -> bool:
        return not self.in_message and not self.pending

    def close_if_idle(self, idle_for: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        quiet = self.server.loop.time() - self.last_active
        if self.is_idle() and quiet >= idle_for:
            self.closing = True
            self.transport.close()
        elif self.in_message and quiet >= REQUEST_TIMEOUT_S:
            # a request that stopped arriving half-way (a stalled or slowloris client)
            self._fatal(408, f"no request data for {REQUEST_TIMEOUT_S:g} s")


class HttpServer:
    def __init__(self, app: App, host: str, port: int, max_body_bytes: int, access_log: bool = False) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpProtocol] = set()
        self.receiving = 0
        self.draining = False
        self._server: asyncio.base_events.Server | None = None
        self._drained = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpProtocol(self), self.host, self.port, backlog=4096, reuse_address=True
        )
        self._schedule_sweep(5.0)

    def bound_port(self) -> int:
        assert self._server is not None
        sock: Any = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def _schedule_sweep(self, every: float) -> None:
        self._sweeper = self.loop.call_later(every, self._sweep)

    def _sweep(self) -> None:
        idle = DRAIN_IDLE_S if self.draining else KEEPALIVE_TIMEOUT_S
        for conn in list(self.connections):
            conn.close_if_idle(idle)
        self.check_drained()
        self._schedule_sweep(DRAIN_IDLE_S / 2 if self.draining else 5.0)

    def begin_drain(self) -> None:
        """Stop listening; in-flight requests finish and their connections close after the answer."""
        if self.draining:
            return
        self.draining = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep()

    def check_drained(self) -> None:
        if self.draining and not self.connections:
            self._drained.set()

    async def wait_drained(self, limit_s: float) -> bool:
        try:
            await asyncio.wait_for(self._drained.wait(), limit_s)
            return True
        except TimeoutError:
            return False

    def close_all(self) -> None:
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
