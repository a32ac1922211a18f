"""A bounded load generator for the stories: steady requests, one new connection each, every answer kept.

Each request opens a new TCP connection (no keep-alive), so a kube-proxy-like balancer spreads
them by replica ratio. At most `concurrency` requests are in flight; the generator paces to `rate`
requests per second and never queues more. Every answer is recorded with its time, status code
and the `model_version` the server answered with, so a story can tell which version served when,
and count failed client requests in any interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from modeldeploy.runtime import contract

INPUT = "input"
FEATURES = 4


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    started: float
    """time.monotonic() when it was sent."""
    finished: float
    wall: float
    """time.time() when it was sent (to line up with timestamps in status)."""
    code: int
    """HTTP status, or 0 when the transport failed (refused, reset, timed out)."""
    version: str | None
    """model_version in the answer, when it was a 200."""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass
class LoadStats:
    """Everything the generator saw."""

    answers: list[Answer] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent in [start, end] (monotonic seconds)."""
        return [a for a in self.answers if start <= a.started <= end]

    def failed(self, start: float = 0.0, end: float = float("inf")) -> list[Answer]:
        return [a for a in self.between(start, end) if not a.ok]

    def versions(self, start: float = 0.0, end: float = float("inf")) -> Counter[str]:
        return Counter(a.version or f"code {a.code}" for a in self.between(start, end))

    def last_answer_from(self, version: str) -> Answer | None:
        """The last request (by send time) that this version answered."""
        mine = [a for a in self.answers if a.version == version]
        return max(mine, key=lambda a: a.started) if mine else None

    def failed_after_wall(self, wall: float) -> list[Answer]:
        """Failed requests sent at or after this wall-clock time."""
        return [a for a in self.answers if a.wall >= wall and not a.ok]

    def summary(self) -> str:
        total = len(self.answers)
        failed = len(self.failed())
        by_version = ", ".join(f"{v}: {n}" for v, n in sorted(self.versions().items()))
        return f"{total} requests, {failed} failed ({by_version})"


def infer_body(rng: random.Random, rows: int = 1) -> dict[str, object]:
    data = [rng.gauss(0.0, 1.0) for _ in range(rows * FEATURES)]
    return {"inputs": [{"name": INPUT, "datatype": "FP32", "shape": [rows, FEATURES], "data": data}]}


class LoadGenerator:
    """Sends `rate` requests per second to `base_url`'s model until stopped."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        rate: float = 50.0,
        concurrency: int = 16,
        timeout_s: float = 10.0,
        seed: int = 0,
    ) -> None:
        self.url = base_url.rstrip("/") + contract.infer_path(model)
        self.rate = rate
        self.stats = LoadStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = random.Random(seed)
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    async def _one(self, client: httpx.AsyncClient, body: dict[str, object]) -> None:
        started, wall = time.monotonic(), time.time()
        try:
            response = await client.post(self.url, json=body)
            version = None
            if response.status_code == 200:
                version = str(response.json().get("model_version"))
            answer = Answer(started, time.monotonic(), wall, response.status_code, version)
        except (httpx.HTTPError, ValueError) as err:
            answer = Answer(started, time.monotonic(), wall, 0, None, f"{type(err).__name__}: {err}")
        finally:
            self._slots.release()
        self.stats.answers.append(answer)

    async def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=self._timeout) as client:
            period = 1.0 / self.rate
            next_at = time.monotonic()
            while not self._stopping.is_set():
                await self._slots.acquire()
                task = asyncio.create_task(self._one(client, infer_body(self._rng)))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                next_at += period
                delay = next_at - time.monotonic()
                if delay < -1.0:  # fell behind (slots were full): do not burst to catch up
                    next_at = time.monotonic()
                elif delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)  # pacing, not a test wait
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)

    def start(self) -> LoadGenerator:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> LoadStats:
        self._stopping.set()
        if self._task is not None:
            await self._task
        return self.stats

    async def send(self, count: int) -> LoadStats:
        """Send exactly `count` requests (bounded by the concurrency) and wait for every answer."""
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=self._timeout) as client:
            tasks = []
            for _ in range(count):
                await self._slots.acquire()
                tasks.append(asyncio.create_task(self._one(client, infer_body(self._rng))))
            await asyncio.gather(*tasks)
        return self.stats


class BackgroundLoad:
    """A LoadGenerator on its own thread and event loop, for synchronous tests and scripts.

    Start it from the thread that is inside the cluster's network namespace: the new thread
    inherits the namespace.
    """

    def __init__(self, base_url: str, model: str, **options: Any) -> None:
        self._args = (base_url, model)
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generator: LoadGenerator | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="load", daemon=True)
        self.stats = LoadStats()

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._generator = LoadGenerator(*self._args, **self._options)
            self.stats = self._generator.stats
            self._generator.start()
            self._ready.set()
            assert self._generator._task is not None
            await self._generator._task

        asyncio.run(run())

    def start(self) -> BackgroundLoad:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def stop(self) -> LoadStats:
        if self._loop is not None and self._generator is not None:
            self._loop.call_soon_threadsafe(self._generator._stopping.set)
        self._thread.join(timeout=30)
        return self.stats
