"""What pauses the event loop, measured and kept short.

`watch_lag` measures it: how late a 250 ms timer fires (`modeldeploy_operator_event_loop_lag_seconds`).

`tend_collector` keeps the cyclic garbage collector's full collections short. A full collection walks
every tracked object, and at 1,000 ModelDeployments the operator holds about 300,000 (kopf's memories
of each watched object, the indices, the metric series): measured with bench/scale.py, each full
collection took 0.2-0.3 s of CPU, and while a thousand objects were created one ran every 8-13 s,
which was all of the event loop's lag over 50 ms. So the survivors of each full collection are frozen
(`gc.freeze`: moved where the collector no longer walks them), and the next one walks only what
survived since. A frozen object freed by its reference count is freed as always; only cyclic garbage
among frozen objects waits, until the periodic thaw (`THAW_S`): unfreeze, one full collection
(one long pause, counted in `modeldeploy_operator_gc_pause_seconds`), freeze again.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from .. import metrics

LAG_PROBE_S = 0.25
THAW_S = 900.0
"""Collect cyclic garbage among frozen objects this often: what such garbage can hold is bounded by
what the operator frees in this long."""


async def watch_lag() -> None:
    """Observe how late a 250 ms timer fires, forever: the time the event loop was busy elsewhere."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - start - LAG_PROBE_S))


async def tend_collector(thaw_s: float = THAW_S) -> None:
    """Freeze what survives each full collection; thaw and collect everything every `thaw_s`, forever.
    Cancelled, it leaves nothing frozen."""
    loop = asyncio.get_running_loop()

    def after(phase: str, info: dict[str, Any]) -> None:
        # runs inside the collector, in whichever thread allocated: only schedule the freeze
        if phase == "stop" and info["generation"] == 2:
            loop.call_soon_threadsafe(gc.freeze)

    gc.freeze()  # what startup made: modules, classes, the operator's own state
    gc.callbacks.append(after)
    try:
        while True:
            await asyncio.sleep(thaw_s)
            gc.unfreeze()
            gc.collect()  # its callback freezes the survivors again
    finally:
        gc.callbacks.remove(after)
        gc.unfreeze()
