"""HTTP/1.1 on asyncio and httptools, without ASGI: parse, hand to the App, write the reply.

Measured faster than uvicorn + raw ASGI for this workload (no per-request scope dicts, message
dicts or tasks when inference runs inline). Keeps what matters: keep-alive, pipelined requests
answered in order, chunked request bodies, `Expect: 100-continue`, a body limit answered with
413 before the body is buffered, idle connections closed after a keep-alive timeout, and a
graceful drain: stop listening, answer in-flight requests with `connection: close`, close idle
connections, finish when no connection is left or the grace period is over.

Hostile clients are bounded by `limits.Limits`: the request target (414), header bytes and count
(431, counted before httptools has gathered a whole header value), the time to receive the headers
and the whole request (408, total, not since the last byte), a connection cap (503 and close) and
write-side flow control: once a connection's unsent answers pass the write buffer limit (or too many
answers wait for inference), parsed requests wait in a backlog unanswered and reading pauses, until
the client has read enough. A connection whose answers stay unread past the request timeout is
aborted. Nothing a client sends reaches the log as a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from functools import partial
from http import HTTPStatus
from typing import Any, cast

import httptools
import orjson

from modeldeploy.runtime.app import App, Deferred, Response
from modeldeploy.runtime.errors import internal_error, safe_path
from modeldeploy.runtime.limits import Limits

log = logging.getLogger("modeldeploy.runtime")
access_log = logging.getLogger("modeldeploy.runtime.access")

DRAIN_IDLE_S = 0.2  # while draining, a connection idle this long is closed
MAX_PIPELINED = 64  # answers waiting for inference on one connection before requests wait unparsed
_PARSE_SLICE = 4 * 1024  # bytes parsed at a time while requests may pile up in the backlog
_TURN = 2  # pipelined requests answered per connection before other connections get a turn
#: (the W3C trace context headers are kept for tracing, `tracing.py`; a request without them pays nothing;
#: `modeldeploy-mirror` marks a mirrored copy, `mirror.py`)
_HEADERS_WANTED = frozenset(
    {
        b"content-length",
        b"inference-header-content-length",
        b"content-encoding",
        b"expect",
        b"traceparent",
        b"tracestate",
        b"baggage",
        b"modeldeploy-mirror",
    }
)
#: header names as clients usually spell them -> the lower-case name kept, or b"" for one not kept
#: (saves a lower() per header on the hot path; other spellings are lowered)
_HEADER_SPELLINGS: dict[bytes, bytes] = {
    **{n: n for n in _HEADERS_WANTED},
    **{n.title(): n for n in _HEADERS_WANTED},
    **{n: b"" for n in (b"host", b"Host", b"content-type", b"Content-Type", b"user-agent", b"User-Agent")},
    **{n: b"" for n in (b"accept", b"Accept", b"accept-encoding", b"Accept-Encoding", b"connection", b"Connection")},
}
#: the table while parsing slowly: every header field misses it and has its bytes counted (never written)
_NO_SPELLINGS: dict[bytes, bytes] = {}
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _internal_response(method: bytes, path: str, e: Exception) -> Response:
    rid, err = internal_error(f"{method.decode('latin-1')} {safe_path(path)}", e)
    return Response(500, err, headers=b"x-request-id: %s\r\n" % rid.encode())


def _header_count_message(max_headers: int) -> str:
    return f"more than {max_headers} header fields (--max-headers)"


def _header_bytes_message(limits: Limits) -> str:
    return f"request headers exceed the limit of {limits.max_header_bytes} bytes (--max-header-bytes)"


class _RefusedError(Exception):
    """Raised inside a parser callback after the connection was answered and closed: stop parsing."""


_Request = tuple[bytes, str, bytes, dict[bytes, bytes], float, bool]  # method, path, body, headers, t0, close


class _Slot:
    """One response position on a connection: answers leave in request order."""

    __slots__ = ("close", "data", "resp")

    def __init__(self) -> None:
        self.data: bytes | None = None  # the rendered answer, once there is one
        self.close = False  # close after it (before the answer: the request asked for a close)
        self.resp: Response | None = None


class HttpProtocol(asyncio.Protocol):
    # slots: past ~30 attributes an instance dict stops sharing its keys and every attribute access on the
    # hot path gets slower (measured: ~1.5 us a request at 48k requests/s)
    __slots__ = (
        "access_log",
        "app",
        "backlog",
        "body",
        "body_expected",
        "body_size",
        "closing",
        "fast_max",
        "head_bytes",
        "header_bytes",
        "header_count",
        "headers",
        "in_head",
        "in_message",
        "last_active",
        "limits",
        "max_body",
        "max_header_bytes",
        "max_headers",
        "max_url",
        "now",
        "parser",
        "paused",
        "peer_done",
        "pending",
        "rejected",
        "server",
        "slow",
        "spellings",
        "t0",
        "too_large",
        "transport",
        "turn",
        "turn_scheduled",
        "unparsed",
        "url",
        "write_paused_at",
    )

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self.now = server.loop.time
        self.access_log = server.access_log
        self.max_url = server.limits.max_request_line_bytes
        self.max_header_bytes = server.limits.max_header_bytes
        self.max_headers = server.limits.max_headers
        # a read this small that starts a request cannot hold a request target or headers over their
        # limits: it is parsed without counting bytes per header (the header count is checked once)
        self.fast_max = min(_PARSE_SLICE, self.max_url, self.max_header_bytes)
        self.slow = False  # parsing a larger read, or a head spread over reads: count as it comes
        self.spellings = _HEADER_SPELLINGS  # _NO_SPELLINGS while slow
        self.max_body = server.max_body_bytes
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
        self.write_paused_at: float | None = None
        self.backlog: deque[_Request] = deque()
        self.unparsed = b""  # received while requests waited in the backlog
        self.turn = 0  # requests dispatched in this turn of the loop
        self.body_expected = 0  # the content-length of the message being received
        self.turn_scheduled = False
        self.rejected = False
        self.peer_done = False  # the client half-closed: close once its answers are written
        self.last_active = 0.0
        self.in_head = False
        self.head_bytes = 0
        self.header_count = 0
        self.header_bytes = 0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.last_active = self.now()
        if len(self.server.connections) >= self.server.limits.max_connections:
            self.rejected = True  # answered 503 once the client speaks (or closed by the sweep)
            self.closing = True  # data_received reads nothing more (and checks one flag per read)
            self.server.rejected.add(self)
            return
        high = self.server.limits.write_buffer_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.rejected.discard(self)
        self.backlog.clear()
        self.unparsed = b""
        if self.in_message:
            self.server.receiving -= 1
            self.in_message = False
        self.closing = True
        self.server.check_drained()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.rejected and not self.transport_closing():
                n = self.limits.max_connections
                self._fatal(503, f"the server is at its limit of {n} connections (--max-connections)")
            return
        self.last_active = self.now()
        self.turn = 0
        if len(data) <= self.fast_max and not self.in_head:  # the common case: one small read, a new request
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
                self._parse_error(e)
            if self.in_head and not self.closing:  # a request's head goes on in the next read
                self.head_bytes = 0
                self.header_bytes = 0  # (the fast path counts header fields, not their bytes)
                self._count_head(len(data))
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse `data` in slices; once requests wait in the backlog, keep the rest unparsed (reading
        is paused then) so that one read of tiny pipelined requests cannot hold the loop for long."""
        was_in_head = self.in_head
        n = fed = len(data)
        self.slow = True
        self.spellings = _NO_SPELLINGS
        try:
            if n <= _PARSE_SLICE:
                self.parser.feed_data(data)
            else:
                view = memoryview(data)
                i = 0
                while i < n:
                    # a slice, plus the rest of a body being received (large bodies go in one piece)
                    step = _PARSE_SLICE
                    if self.in_message and not self.in_head:
                        step += max(0, self.body_expected - self.body_size)
                    self.parser.feed_data(view[i : i + step])
                    i += step
                    if self.backlog and not self.closing and i < n:
                        self.unparsed = bytes(view[i:])
                        fed = i
                        break
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            self._parse_error(e)
        finally:
            self.slow = False
            self.spellings = _HEADER_SPELLINGS
        if was_in_head and self.in_head and not self.closing:
            self._count_head(fed)

    def _count_head(self, fed: int) -> None:
        """Bytes fed while the request's head is still open: httptools gathers a header's value before
        calling on_header, so a huge value is caught here (within one read of the limit)."""
        self.head_bytes += fed
        limits = self.limits
        if self.head_bytes > limits.max_header_bytes + limits.max_request_line_bytes:
            self._fatal(431, _header_bytes_message(limits))

    def _parse_error(self, e: Exception) -> None:
        if isinstance(e, httptools.HttpParserUpgrade):
            self._fatal(400, "protocol upgrades are not supported")
        elif isinstance(e, httptools.HttpParserCallbackError):
            if not self.closing:  # not one of our refusals: a bug in a callback
                self._internal("parsing a request", e.__context__ or e)
        else:
            self._fatal(400, f"malformed HTTP request: {str(e)[:200]}")

    def transport_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def eof_received(self) -> bool | None:
        """A half-closed client still gets the answers to the requests it completed, then a close."""
        if self.in_message or self.rejected or self.is_idle():
            return None  # the transport closes
        self.peer_done = True
        return True

    def pause_writing(self) -> None:
        """The transport's unsent bytes passed the write buffer limit: answer nothing more, read nothing."""
        self.write_paused_at = self.server.loop.time()
        self._set_reading()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self._run_backlog()
        t = self.transport
        if (self.server.close_each or self.peer_done) and self.is_idle() and t is not None and not t.is_closing():
            self.closing = True
            t.close()

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self.t0 = time.perf_counter()
        self.url = b""
        self.headers = {}
        # (self.body is already empty: on_message_complete takes it)
        self.body_size = 0
        self.too_large = False
        self.in_message = True
        self.in_head = True
        self.header_count = 0
        if self.slow:  # the byte counts of a head parsed in the fast path start where it leaves it
            self.head_bytes = 0
            self.header_bytes = 0
        self.server.receiving += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        if self.slow and len(self.url) > self.max_url:
            self._fatal(414, f"request target exceeds the limit of {self.max_url} bytes (--max-request-line-bytes)")
            raise _RefusedError

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1  # (checked once the head is complete, or below while parsing slowly)
        n = self.spellings.get(name)  # while parsing slowly, an empty table: every field goes below
        if n is None:
            if self.slow:
                self.header_bytes += len(name) + len(value)
                if self.header_count > self.max_headers:
                    self._fatal(431, _header_count_message(self.max_headers))
                    raise _RefusedError
                if self.header_bytes > self.max_header_bytes:
                    self._fatal(431, _header_bytes_message(self.limits))
                    raise _RefusedError
            n = name.lower()
            if n in _HEADERS_WANTED:
                self.headers[n] = value
        elif n:
            self.headers[n] = value

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.header_count > self.max_headers:
            self._fatal(431, _header_count_message(self.max_headers))
            raise _RefusedError
        headers = self.headers
        cl = headers.get(b"content-length")
        expected = self.body_expected = int(cl) if cl is not None and cl.isdigit() else 0
        if expected > self.max_body:
            # refuse now rather than read a body that will never be served (the client may be waiting
            # for 100-continue, or be a hostile one sending gigabytes); the connection closes
            self.too_large = True
            self._respond_now(self.app.body_too_large(self._path(), self.t0), close=True)
            self._message_done()
            self.closing = True
            raise _RefusedError
        expect = headers.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.body_size += len(body)
        if self.body_size > self.max_body:
            self.too_large = True
            self.body = []
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.in_message:
            return
        self.in_message = False  # (self._message_done(), without the call)
        self.server.receiving -= 1
        url = self.url
        q = url.find(b"?")
        path = (url if q < 0 else url[:q]).decode("latin-1")  # (self._path(), without the call)
        close = not self.parser.should_keep_alive() or self.server.close_each
        if self.too_large:
            self._respond_now(self.app.body_too_large(path, self.t0), close=True)
            return
        chunks = self.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.body = []
        method = self.parser.get_method()
        if (
            self.turn >= _TURN
            or self.backlog
            or self.write_paused_at is not None
            or (self.pending and len(self.pending) >= MAX_PIPELINED)  # (no len() call while none waits)
        ):
            # the client is not reading its answers (or many wait for inference, or it pipelines many
            # at once): hold the parsed request, not its answer, and read no more until the answers
            # drain; pipelined requests are answered a few per turn of the loop, fair to other clients
            backlog = self.backlog
            backlog.append((method, path, body, self.headers, self.t0, close))
            if len(backlog) == 1:  # (behind the first one, reading is paused and the turn arranged already)
                self._set_reading()
                self._schedule_turn()
            return
        self.turn += 1
        try:
            result = self.app.handle(method, path, body, self.headers, self.t0)
        except Exception as e:  # a bug, not the client's fault: one log line, a 500, keep serving
            result = _internal_response(method, path, e)
        if type(result) is Response:
            if method != b"HEAD":  # the common case, answered at once
                self._respond_now(result, close)
                return
        elif type(result) is Deferred:
            if result.result is not None:  # resolved at once (one connection: no batch to wait for)
                self._respond_now(result.result, close)
            else:
                self._wait_for(result, close)
            return
        self._answer(result, method, close)

    def _dispatch(  # noqa: PLR0917  (the hot path: no tuple per request; the backlog stores _Request)
        self, method: bytes, path: str, body: bytes, headers: dict[bytes, bytes], t0: float, close: bool
    ) -> None:
        """Answer one request held in the backlog (on_message_complete answers the others inline)."""
        self.turn += 1
        try:
            result = self.app.handle(method, path, body, headers, t0)
        except Exception as e:  # a bug, not the client's fault: one log line, a 500, keep serving
            result = _internal_response(method, path, e)
        self._answer(result, method, close or self.server.close_each)

    def _answer(self, result: Response | Deferred, method: bytes, close: bool) -> None:
        if isinstance(result, Response):
            if method == b"HEAD":
                result = Response(result.status, b"", result.content_type, result.headers)
            self._respond_now(result, close)
            return
        if result.result is not None:  # resolved already
            self._respond_now(result.result, close)
            return
        self._wait_for(result, close)

    def _wait_for(self, result: Deferred, close: bool) -> None:
        """Hold the answer's place on the connection until the batcher delivers it."""
        slot = _Slot()
        slot.close = close
        self.pending.append(slot)
        if len(self.pending) >= MAX_PIPELINED:
            self._set_reading()
        result.callback = partial(self._complete, slot)  # (one Python call fewer than a lambda)

    def _blocked(self) -> bool:
        return self.write_paused_at is not None or len(self.pending) >= MAX_PIPELINED

    def _set_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        pause = self._blocked() or bool(self.backlog) or bool(self.unparsed)
        if pause and not self.paused:
            t.pause_reading()
            self.paused = True
        elif not pause and self.paused:
            t.resume_reading()
            self.paused = False

    def _schedule_turn(self) -> None:
        if not self.turn_scheduled and not self._blocked() and not self.closing:
            self.turn_scheduled = True
            self.server.loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self.turn_scheduled = False
        self.turn = 0
        self._run_backlog()

    def _run_backlog(self) -> None:
        while not self._blocked() and not self.closing:
            if self.turn >= _TURN:
                self._schedule_turn()
                break
            if self.backlog:
                self._dispatch(*self.backlog.popleft())
            elif self.unparsed:
                data, self.unparsed = self.unparsed, b""
                self._feed(data)
            else:
                break
        self._set_reading()

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
            _STATUS_LINES.get(r.status) or b"HTTP/1.1 %d Unknown\r\n" % r.status,
            r.content_type,
            len(r.body),
            r.headers,
            b"connection: close\r\n" if close else b"",
        )
        if self.access_log:
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

    def _complete(self, slot: _Slot, r: Response) -> None:
        """The batcher's answer for `slot` (whose `close` says the request asked for a close): write it,
        and the answers ready behind it, in order."""
        close = slot.close or self.server.close_each
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
                self.backlog.clear()
                self.unparsed = b""
                break
        t = time.perf_counter()
        self.last_active = self.now()
        for resp in written:
            self.app.after_write(resp, t)
        if self.backlog or self.unparsed:
            self._run_backlog()
        elif self.paused:
            self._set_reading()

    def _write(self, data: bytes, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)  # (the idle clock runs from the last request's arrival, or a deferred answer)
        if close or ((self.server.close_each or self.peer_done) and self.is_idle()):
            self.closing = True
            t.close()

    def _fatal(self, status: int, message: str) -> None:
        """Answer `status` at once, ahead of anything unsent, and close: the connection is not trusted."""
        self.in_head = False
        self._answer_and_close(Response(status, orjson.dumps({"error": message})))

    def _internal(self, what: str, e: BaseException) -> None:
        rid, body = internal_error(what, e)
        self._answer_and_close(Response(500, body, headers=b"x-request-id: %s\r\n" % rid.encode()))

    def _answer_and_close(self, r: Response) -> None:
        """Drop everything unsent and unparsed, write `r`, close."""
        self._message_done()
        self.pending.clear()
        self.backlog.clear()
        self.unparsed = b""
        self.closing = True
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(self._render(r, True))
            t.close()

    # ------------------------------------------------------------------ idle handling

    def is_idle(self) -> bool:
        return (
            not self.in_message
            and not self.pending
            and not self.backlog
            and not self.unparsed
            and self.write_paused_at is None
        )

    def sweep(self, now: float, idle_for: float) -> None:
        """Close or answer a connection past one of its timeouts (`now`: the loop's clock)."""
        t = self.transport
        if t is None:
            return
        limits = self.server.limits
        if self.write_paused_at is not None and now - self.write_paused_at >= limits.request_timeout_s:
            # answers left unread this long (also on a connection closing after them): the client is
            # gone or hostile
            self.closing = True
            t.abort()
            return
        if t.is_closing():
            return
        quiet = now - self.last_active
        if self.rejected:
            if quiet >= min(limits.header_timeout_s, idle_for):
                self.closing = True
                t.close()
            return
        if self.is_idle():
            if quiet >= idle_for:
                self.closing = True
                t.close()
            return
        if self.in_message:
            took = time.perf_counter() - self.t0
            if self.in_head and took >= limits.header_timeout_s:
                self._fatal(
                    408, f"request headers not received within {limits.header_timeout_s:g} s (--header-timeout-s)"
                )
            elif took >= limits.request_timeout_s:
                self._fatal(408, f"request not received within {limits.request_timeout_s:g} s (--request-timeout-s)")


class HttpServer:
    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        max_body_bytes: int,
        *,
        access_log: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.limits = limits or Limits()
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpProtocol] = set()
        #: connections past --max-connections, answered 503 and closed
        self.rejected: set[HttpProtocol] = set()
        self.receiving = 0
        self.draining = False
        #: not serving (the pod's serving label is false): answers carry `connection: close`, keep-alive ends
        self.shedding = False
        #: draining or shedding: every connection closes after its answer in flight
        self.close_each = False
        self._server: asyncio.base_events.Server | None = None
        self._drained = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpProtocol(self), self.host, self.port, backlog=4096, reuse_address=True
        )
        self._schedule_sweep(self.limits.sweep_every_s())

    def bound_port(self) -> int:
        assert self._server is not None
        sock: Any = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def _schedule_sweep(self, every: float) -> None:
        self._sweeper = self.loop.call_later(every, self._sweep)

    def _sweep(self) -> None:
        idle = DRAIN_IDLE_S if self.close_each else self.limits.keepalive_timeout_s
        now = self.loop.time()
        for conn in [*self.connections, *self.rejected]:
            conn.sweep(now, idle)
        self.check_drained()
        self._schedule_sweep(DRAIN_IDLE_S / 2 if self.close_each else self.limits.sweep_every_s())

    def begin_drain(self) -> None:
        """Stop listening; in-flight requests finish and their connections close after the answer."""
        if self.draining:
            return
        self.draining = True
        self.close_each = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep()

    def set_shedding(self, on: bool) -> None:
        """Taken out of serving (or back): from now on every answer carries `connection: close` and its
        connection closes after it; a keep-alive connection idle for DRAIN_IDLE_S closes (at once, for
        those idle that long already). Keeps listening. A connection that has just been answered is
        given DRAIN_IDLE_S for its next request, answered with `connection: close`, rather than closed
        under a client about to send (which would see its request fail)."""
        self.shedding = on
        self.close_each = on or self.draining
        if on and not self.draining:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweep()  # closes the connections idle for DRAIN_IDLE_S, then sweeps every DRAIN_IDLE_S / 2

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
        for conn in [*self.connections, *self.rejected]:
            if conn.transport is not None:
                conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
