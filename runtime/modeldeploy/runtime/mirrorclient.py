"""A small HTTP/1.1 client for the mirror's copies: a bounded queue, a few keep-alive connections,
a timeout per copy, on the runtime's own event loop.

Not httpx: an httpx request costs a few hundred microseconds of Python on the loop that also
serves the live requests, more than a whole live request of a small model; this client writes one
pre-rendered request and parses the answer with httptools (tens of microseconds). It speaks only
what the runtime's own server answers: a status, `content-length` bodies (chunked parsed by
httptools as well), keep-alive.

`send` never blocks and never raises: a copy either gets a `CandidateAnswer` or a failure message
through its callback (from the loop, later), or is refused at once (queue full: False).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

log = logging.getLogger("modeldeploy.runtime.mirror")


@dataclass(frozen=True, slots=True)
class CandidateAnswer:
    status: int
    body: bytes
    header_len: int | None  # inference-header-content-length, when the answer has binary outputs
    seconds: float  # from the request written to the answer read


#: the callback gets a CandidateAnswer, or a message saying why there is none; `dropped` is True when
#: the copy was never answered because the client stopped (closing or reconfigured)
Done = Callable[[CandidateAnswer | str, bool], None]


class _Job:
    __slots__ = ("data", "deadline", "done")

    def __init__(self, data: bytes, done: Done, deadline: float) -> None:
        self.data = data
        self.done = done
        self.deadline = deadline


class _Conn(asyncio.Protocol):
    def __init__(self, client: CandidateClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.job: _Job | None = None
        self.t_sent = 0.0
        self.body: list[bytes] = []
        self.header_len: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.complete = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        t0 = time.thread_time()
        try:
            self.parser.feed_data(data)  # a whole answer runs the comparison, through the callback
        except httptools.HttpParserError as e:
            self._fail(f"unreadable answer: {e}"[:200])
        self.client.spent += time.thread_time() - t0

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)
        if self.job is not None:
            self._finish(None, "the candidate closed the connection")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = []
        self.header_len = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"inference-header-content-length":
            try:
                self.header_len = int(value)
            except ValueError:
                self.header_len = -1

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.job is None:
            return
        status = self.parser.get_status_code()
        answer = CandidateAnswer(status, b"".join(self.body), self.header_len, time.perf_counter() - self.t_sent)
        keep = self.parser.should_keep_alive()
        self._finish(answer, "")
        if keep:
            self.client.idle(self)
        else:
            self.close()

    # ours
    def send(self, job: _Job, now: float) -> None:
        assert self.transport is not None
        self.job = job
        self.t_sent = time.perf_counter()
        self.timer = self.client.loop.call_at(job.deadline, self._timeout) if job.deadline > now else None
        self.transport.write(job.data)

    def _timeout(self) -> None:
        self.timer = None
        self._fail(f"no answer within {self.client.timeout_s * 1000:g} ms")

    def _fail(self, why: str) -> None:
        if self.job is not None:
            self._finish(None, why)
        self.close()

    def _finish(self, answer: CandidateAnswer | None, why: str) -> None:
        job, self.job = self.job, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if job is not None:
            self.client.finished(job, answer if answer is not None else why, False)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class CandidateClient:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        *,
        connections: int,
        queue_size: int,
        timeout_s: float,
    ) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.max_connections = connections
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.waiting: deque[_Job] = deque()
        self.idle_conns: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.connecting = 0
        self.in_flight = 0  # sent, not yet answered
        self.closed = False
        #: seconds spent reading answers and in their callbacks (the owner resets it)
        self.spent = 0.0

    def outstanding(self) -> int:
        return len(self.waiting) + self.in_flight

    def send(self, data: bytes, done: Done) -> bool:
        """Queue one pre-rendered request; False (and nothing else happens) when the queue is full."""
        if self.closed or self.outstanding() >= self.queue_size:
            return False
        now = self.loop.time()
        job = _Job(data, done, now + self.timeout_s)
        if self.idle_conns:
            self._start(self.idle_conns.pop(), job, now)
            return True
        self.waiting.append(job)
        if len(self.conns) + self.connecting < self.max_connections:
            self._connect()
        return True

    def _start(self, conn: _Conn, job: _Job, now: float) -> None:
        self.in_flight += 1
        conn.send(job, now)

    def _connect(self) -> None:
        self.connecting += 1
        task = self.loop.create_task(self._open())
        task.add_done_callback(_ignore_result)

    async def _open(self) -> None:
        try:
            _, proto = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Conn(self), self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as e:
            self.connecting -= 1
            # the copy that asked for this connection fails; later ones try again
            if self.waiting:
                job = self.waiting.popleft()
                self._deliver(job, f"cannot connect to the candidate: {e}"[:200], False)
            if self.waiting and not self.closed and len(self.conns) + self.connecting < self.max_connections:
                self._connect()
            return
        self.connecting -= 1
        if self.closed:
            proto.close()
            return
        self.conns.add(proto)
        self.idle(proto)

    def idle(self, conn: _Conn) -> None:
        """A connection is free: give it the next copy still within its deadline."""
        now = self.loop.time()
        while self.waiting:
            job = self.waiting.popleft()
            if job.deadline <= now:
                self._deliver(job, f"waited over {self.timeout_s * 1000:g} ms for a connection", False)
                continue
            self._start(conn, job, now)
            return
        self.idle_conns.append(conn)

    def lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle_conns:
            self.idle_conns.remove(conn)
        if self.waiting and not self.closed and len(self.conns) + self.connecting < self.max_connections:
            self._connect()

    def finished(self, job: _Job, result: CandidateAnswer | str, dropped: bool) -> None:
        self.in_flight -= 1
        self._deliver(job, result, dropped)

    def _deliver(self, job: _Job, result: CandidateAnswer | str, dropped: bool) -> None:
        try:
            job.done(result, dropped)
        except Exception:  # a bug in the comparison must never reach the loop or the live path
            log.exception("mirror: handling a candidate answer failed")

    def close(self) -> None:
        """Stop: copies not yet answered are reported dropped, connections close."""
        if self.closed:
            return
        self.closed = True
        waiting, self.waiting = self.waiting, deque()
        for job in waiting:
            self._deliver(job, "the mirror stopped", True)
        for conn in list(self.conns):
            sent, conn.job = conn.job, None
            if conn.timer is not None:
                conn.timer.cancel()
            if sent is not None:
                self.finished(sent, "the mirror stopped", True)
            conn.close()
        self.idle_conns.clear()


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("mirror: connecting failed: %s", task.exception())
