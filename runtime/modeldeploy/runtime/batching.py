"""Scheduling session.run: dynamic batching, and inference off the event loop for heavy models.

Requests that arrive in the same event-loop turn run together (natural batching: no added
latency when the server is idle; with a single client connection, nothing waits at all); the
batch waits up to `max_delay` for more only while other
requests are still being received. Requests are grouped by what makes them stackable (input
names, dtypes and every dimension but the first); each group runs as one batch of at most
`max_batch_size` rows and the outputs are split back by row counts. A request that cannot be
stacked, or a batch whose outputs do not keep the batch dimension, runs alone. If a batch fails,
its requests run one by one, so that one request's failure is never another's. With
`max_batch_size` 1 nothing is stacked: the scheduler only serializes runs.

`threaded`: session.run happens on one worker thread, so the event loop keeps answering health
probes and parsing the next requests while a heavy model computes (ONNX Runtime releases the
GIL). One batch runs at a time; what arrives meanwhile forms the next batch. Answers are always
delivered on the event loop thread. Inline (the default for light models) skips the thread
hand-off, which costs more than a small model's inference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.model import Model, ModelRunError

Feed = dict[str, np.ndarray[Any, Any]]
Outputs = list[np.ndarray[Any, Any]]
Result = Outputs | ModelRunError
Done = Callable[[Result], None]


class _Item:
    __slots__ = ("done", "feed", "key", "rows", "t_enqueued")

    def __init__(self, feed: Feed, done: Done, key: Any, rows: int) -> None:
        self.feed = feed
        self.done = done
        self.key = key
        self.rows = rows
        self.t_enqueued = time.perf_counter()


def _stack_key(feed: Feed) -> tuple[Any, int] | None:
    """(key, rows) when the request can be stacked with others of the same key, else None."""
    rows = -1
    parts = []
    for name, arr in feed.items():
        if arr.ndim == 0:
            return None
        if rows < 0:
            rows = arr.shape[0]
        elif arr.shape[0] != rows:
            return None
        parts.append((name, arr.dtype.str, arr.shape[1:]))
    if rows <= 0:
        return None
    parts.sort()
    return tuple(parts), rows


class Batcher:
    def __init__(
        self,
        model: Model,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_delay_s: float,
        receiving: Callable[[], int],
        on_outputs: Callable[[Outputs], None],
        connections: Callable[[], int] = lambda: 2,
        threaded: bool = False,
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay_s = max_delay_s if self.max_batch_size > 1 else 0.0
        self.threaded = threaded
        self._receiving = receiving  # how many requests are being received right now
        self._connections = connections  # how many client connections are open
        self._on_outputs = on_outputs  # prediction metrics, once per batch
        self._queue: list[_Item] = []
        self._rows = 0
        self._scheduled = False
        self._busy = False  # a batch is running on the worker thread
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inference") if threaded else None

    def submit(self, feed: Feed, done: Done) -> None:
        """Queue one request; `done` is called, on the loop thread, with its outputs or its ModelRunError."""
        sk = _stack_key(feed) if self.max_batch_size > 1 else None
        if sk is None or sk[1] >= self.max_batch_size:
            key, rows = None, 0 if sk is None else sk[1]
        else:
            key, rows = sk
        item = _Item(feed, done, key, rows)
        if self._executor is None and not self._queue and self._connections() <= 1:
            # one connection can carry one request at a time: nothing could join a batch, so
            # skip the loop turn that collects one
            self._deliver(self._execute([item]))
            return
        self._queue.append(item)
        self._rows += rows
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        q = self._queue
        if not q or self._busy:
            self._scheduled = False
            return
        if (
            self._receiving() > 0
            and self._rows < self.max_batch_size
            and time.perf_counter() - q[0].t_enqueued < self.max_delay_s
        ):
            # more requests are arriving: look again on the next loop turn (after I/O is polled)
            self._loop.call_soon(self._flush)
            return
        self._scheduled = False
        self._queue = []
        self._rows = 0
        if self._executor is None:
            self._deliver(self._execute(q))
            return
        self._busy = True
        fut = self._loop.run_in_executor(self._executor, self._execute, q)
        fut.add_done_callback(self._worker_done)

    def _worker_done(self, fut: asyncio.Future[list[tuple[_Item, Result]]]) -> None:
        self._busy = False
        self._deliver(fut.result())
        if self._queue:
            self._schedule()

    @staticmethod
    def _deliver(results: list[tuple[_Item, Result]]) -> None:
        for it, res in results:
            it.done(res)

    @property
    def busy(self) -> bool:
        """A session.run is still going on the worker thread."""
        return self._busy

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- compute (any thread)

    def _execute(self, items: list[_Item]) -> list[tuple[_Item, Result]]:
        out: list[tuple[_Item, Result]] = []
        groups: dict[Any, list[_Item]] = {}
        for it in items:
            if it.key is None:
                self._run_group([it], out)
                continue
            g = groups.setdefault(it.key, [])
            if sum(x.rows for x in g) + it.rows > self.max_batch_size:
                self._run_group(g, out)
                g.clear()
            g.append(it)
        for g in groups.values():
            if g:
                self._run_group(g, out)
        return out

    def _run_group(self, group: list[_Item], out: list[tuple[_Item, Result]]) -> None:
        now = time.perf_counter()
        for it in group:
            self.metrics.queue_duration.observe(now - it.t_enqueued)
        if len(group) == 1:
            out.append((group[0], self._run_one(group[0])))
            return
        names = list(group[0].feed)
        feed = {n: np.concatenate([it.feed[n] for it in group], axis=0) for n in names}
        total = sum(it.rows for it in group)
        try:
            outs = self.model.run(feed)
        except ModelRunError:
            outs = None  # find out whose input fails; the others still get answers
        if outs is None or any(o.ndim == 0 or o.shape[0] != total for o in outs):
            out.extend((it, self._run_one(it)) for it in group)
            return
        self.metrics.batch_size.observe(total)
        self._on_outputs(outs)
        start = 0
        for it in group:
            end = start + it.rows
            out.append((it, [o[start:end] for o in outs]))
            start = end

    def _run_one(self, it: _Item) -> Result:
        try:
            outs = self.model.run(it.feed)
        except ModelRunError as e:
            return e
        first = outs[0] if outs else None
        rows = it.rows or (first.shape[0] if first is not None and first.ndim and self.model.batchable else 1)
        self.metrics.batch_size.observe(rows)
        self._on_outputs(outs)
        return outs
