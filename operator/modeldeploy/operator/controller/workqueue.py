"""One asyncio task per ModelDeployment: run a pass, then sleep until the pass's requeue, a wake-up, or
the periodic resync, whichever is first; back off exponentially while passes raise.

A pass that finds its object gone raises `ObjectGone`: the loop ends itself and forgets the object's
metrics, so a missed DELETED event leaks nothing. The loop's identical-apply cache is emptied once
older than `APPLY_RESYNC_S`, so drift that no watch reported is repaired within about that long (a child
deleted, or edited by another field manager, is reported by its watch and re-applied at once). Both
periods are jittered by 10%, so a thousand objects created together do not resync together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import metrics

log = logging.getLogger("modeldeploy.operator")

RESYNC_S = 300.0
"""Reconcile at least this often even when nothing happens (one GET, no write, when nothing changed)."""
APPLY_RESYNC_S = 3600.0
"""Re-apply every child at least this often, unchanged or not: a safety net under the children's watches."""
JITTER = 0.1


def jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)


MIN_INTERVAL_S = 0.05
"""Coalesce bursts of wake-ups."""
MAX_BACKOFF_S = 30.0
MAX_CONCURRENT_PASSES = 8
"""Passes running at once, over all objects; more wait their turn in arrival order (a fair queue), so a
burst of changes cannot starve the others and the API server sees a bounded load."""
Key = tuple[str, str]


class ObjectGone(Exception):  # noqa: N818 - a signal, not a failure
    """The ModelDeployment no longer exists: its loop ends."""


@dataclass
class ContractRetry:
    """Back-off of the model contract read of one canary revision (`CONTRACT_BACKOFF`)."""

    revision: str
    failures: int = 0
    next_at: float = 0.0
    """time.monotonic() before which the read is not tried again."""
    last: Any = None
    """The last (unknown) reading, handed to the planner again while waiting, so its status does not flap."""


@dataclass
class Loop:
    """What one object's loop keeps between passes (memory only: lost on restart, rebuilt by the next pass)."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    seen: tuple[Any, ...] | None = None
    applied: dict[str, str] = field(default_factory=dict)
    """Child path -> JSON of what we last applied (skip identical applies; dropped when the child is
    deleted, and on every resync)."""
    applied_since: float = field(default_factory=time.monotonic)
    """When `applied` was last emptied: it is emptied again once older than `APPLY_RESYNC_S` (jittered)."""
    apply_resync_s: float = field(default_factory=lambda: jittered(APPLY_RESYNC_S))
    contract: ContractRetry | None = None


Pass = Callable[[str, str, Loop], Awaitable[float | None]]


class WorkQueue:
    """The loops of one operator process, keyed by (namespace, name)."""

    def __init__(self, run_pass: Pass, *, leading: bool = True, concurrency: int = MAX_CONCURRENT_PASSES) -> None:
        self.run_pass = run_pass
        self.loops: dict[Key, Loop] = {}
        self.leading = leading
        """Loops run only while this replica leads (always, without leader election)."""
        self.known: dict[Key, tuple[Any, ...] | None] = {}
        """Every object the watch has shown, leading or not: a new leader starts their loops at once."""
        self._slots = asyncio.Semaphore(concurrency)

    def lead(self) -> None:
        """This replica leads from now on: a loop for every object known (each resumes from its status)."""
        if self.leading:
            return
        self.leading = True
        for key, seen in list(self.known.items()):
            self.touch(key, seen)

    async def follow(self) -> None:
        """This replica no longer leads: every loop stops (the objects stay known)."""
        self.leading = False
        for key in list(self.loops):
            loop = self.loops.pop(key)
            if loop.task is not None:
                loop.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop.task
        metrics.MANAGED.set(0)

    def touch(self, key: Key, seen: tuple[Any, ...] | None = None) -> None:
        """Make sure the object's loop runs, and wake it (unless `seen` says nothing we read changed)."""
        self.known[key] = seen
        if not self.leading:
            return
        loop = self.loops.get(key)
        if loop is None:
            loop = self.loops[key] = Loop()
            loop.seen = seen
            loop.task = asyncio.create_task(self._run(key, loop), name=f"reconcile {key[0]}/{key[1]}")
            metrics.MANAGED.set(len(self.loops))
            return
        if seen is not None and seen == loop.seen:
            return
        if seen is not None:
            loop.seen = seen
        loop.wake.set()

    def wake(self, key: Key, dropped_child: str | None = None) -> None:
        """Wake the loop of `key` if it runs; `dropped_child` (a child's API path) leaves its apply cache."""
        loop = self.loops.get(key)
        if loop is None:
            return
        if dropped_child is not None:
            loop.applied.pop(dropped_child, None)
        loop.wake.set()

    def wake_all(self) -> None:
        for loop in self.loops.values():
            loop.wake.set()

    def _drop(self, key: Key, loop: Loop | None) -> None:
        if loop is not None and self.loops.get(key) is loop:
            del self.loops[key]
        metrics.MANAGED.set(len(self.loops))
        metrics.forget(*key)

    async def forget(self, key: Key) -> None:
        self.known.pop(key, None)
        loop = self.loops.get(key)
        self._drop(key, loop)
        if loop is not None and loop.task is not None and loop.task is not asyncio.current_task():
            loop.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop.task

    async def stop(self) -> None:
        for key in list(self.loops):
            await self.forget(key)

    async def _run(self, key: Key, loop: Loop) -> None:
        backoff = 1.0
        while True:
            loop.wake.clear()
            started = time.monotonic()
            if started - loop.applied_since >= loop.apply_resync_s:
                loop.applied.clear()  # the periodic resync re-applies every child once
                loop.applied_since = started
            try:
                async with self._slots:
                    requeue = await self.run_pass(key[0], key[1], loop)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except ObjectGone:
                log.info("%s/%s is gone; its loop ends", *key)
                self.known.pop(key, None)
                self._drop(key, loop)
                return
            except Exception as e:
                metrics.RECONCILE_ERRORS.labels(type(e).__name__).inc()
                log.exception("reconcile of %s/%s failed; retrying in %gs", key[0], key[1], backoff)
                requeue, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            resync = jittered(RESYNC_S)
            timeout = resync if requeue is None else min(max(requeue, MIN_INTERVAL_S), resync)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), timeout)
            await asyncio.sleep(MIN_INTERVAL_S)
