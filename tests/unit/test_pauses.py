"""The garbage collector's policy (controller/pauses.py): survivors of a full collection frozen, cyclic
garbage among them collected at the thaw, nothing left frozen once the task ends."""

from __future__ import annotations

import asyncio
import gc
import weakref

from modeldeploy.operator import metrics
from modeldeploy.operator.controller import pauses

from .test_controller import poll


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_survivors_of_a_full_collection_are_frozen_and_thawed_when_the_task_ends() -> None:
    async def main() -> None:
        task = asyncio.create_task(pauses.tend_collector(thaw_s=3600))
        await poll(lambda: gc.get_freeze_count() > 0, "the startup freeze")
        at_start = gc.get_freeze_count()
        survivors = [Node() for _ in range(100)]
        gc.collect()  # a full collection: its survivors are frozen soon after
        await poll(lambda: gc.get_freeze_count() >= at_start + len(survivors), "the freeze after it")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert gc.get_freeze_count() == 0

    asyncio.run(main())


def test_cyclic_garbage_among_frozen_objects_is_collected_at_the_thaw() -> None:
    async def main() -> None:
        node = Node()
        gone = weakref.ref(node)
        task = asyncio.create_task(pauses.tend_collector(thaw_s=0.2))
        await poll(lambda: gc.get_freeze_count() > 0, "the startup freeze")
        del node  # now cyclic garbage, frozen: no ordinary collection frees it
        gc.collect(1)
        assert gone() is not None
        await poll(lambda: gone() is None, "the thaw's full collection")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert gc.get_freeze_count() == 0

    asyncio.run(main())


def test_the_lag_probe_observes_how_late_its_timer_fired() -> None:
    def count() -> float:
        return metrics.REGISTRY.get_sample_value("modeldeploy_operator_event_loop_lag_seconds_count") or 0.0

    async def main() -> None:
        before = count()
        task = asyncio.create_task(pauses.watch_lag())
        await poll(lambda: count() > before, "one observation")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
