"""Dynamic batching: concurrent requests whose tensors stack on axis 0 run as one session.run.

Requests that arrive in the same event-loop turn run together (natural batching: no added
latency when the server is idle); the batch waits up to `max_delay` for more only while other
requests are still being received. Requests are grouped by what makes them stackable (input
names, dtypes and every dimension but the first); each group runs as one batch of at most
`max_batch_size` rows and the outputs are split back by row counts. A request that cannot be
stacked, or a batch whose outputs do not keep the batch dimension, runs alone. If a batch fails,
its requests run one by one, so that one request's failure is never another's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.model import Model, ModelRunError

Feed = dict[str, np.ndarray[Any, Any]]
Outputs = list[np.ndarray[Any, Any]]
Done = Callable[[Outputs | ModelRunError], None]


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
    """Collects requests for one event-loop turn (longer, up to `max_delay`, while more requests are
    being received), then runs them. Everything happens in loop callbacks: no tasks, no futures,
    no thread hand-off; at concurrency 1 the cost over inline inference is one loop turn."""

    def __init__(
        self,
        model: Model,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_delay_s: float,
        receiving: Callable[[], int],
        on_outputs: Callable[[Outputs], None],
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._receiving = receiving  # how many requests are being received right now
        self._on_outputs = on_outputs  # prediction metrics, once per batch
        self._queue: list[_Item] = []
        self._rows = 0
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def submit(self, feed: Feed, done: Done) -> None:
        """Queue one request; `done` is called with its outputs or its ModelRunError."""
        sk = _stack_key(feed)
        if sk is None or sk[1] >= self.max_batch_size:
            key, rows = None, 0 if sk is None else sk[1]
        else:
            key, rows = sk
        self._queue.append(_Item(feed, done, key, rows))
        self._rows += rows
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        q = self._queue
        if not q:
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
        self._run_all(q)

    def _run_all(self, items: list[_Item]) -> None:
        groups: dict[Any, list[_Item]] = {}
        for it in items:
            if it.key is None:
                self._run_group([it])
                continue
            g = groups.setdefault(it.key, [])
            if sum(x.rows for x in g) + it.rows > self.max_batch_size:
                self._run_group(g)
                g.clear()
            g.append(it)
        for g in groups.values():
            if g:
                self._run_group(g)

    def _run_group(self, group: list[_Item]) -> None:
        now = time.perf_counter()
        for it in group:
            self.metrics.queue_duration.observe(now - it.t_enqueued)
        if len(group) == 1:
            self._run_one(group[0])
            return
        names = list(group[0].feed)
        feed = {n: np.concatenate([it.feed[n] for it in group], axis=0) for n in names}
        total = sum(it.rows for it in group)
        try:
            outs = self.model.run(feed)
        except ModelRunError:
            for it in group:  # find out whose input fails; the others still get answers
                self._run_one(it)
            return
        if any(o.ndim == 0 or o.shape[0] != total for o in outs):
            for it in group:
                self._run_one(it)
            return
        self.metrics.batch_size.observe(total)
        self._on_outputs(outs)
        start = 0
        for it in group:
            end = start + it.rows
            it.done([o[start:end] for o in outs])
            start = end

    def _run_one(self, it: _Item) -> None:
        try:
            outs = self.model.run(it.feed)
        except ModelRunError as e:
            it.done(e)
            return
        self.metrics.batch_size.observe(max(it.rows, 1))
        self._on_outputs(outs)
        it.done(outs)
