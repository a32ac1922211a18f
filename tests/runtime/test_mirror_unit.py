"""The mirror's sampling and loop budget, without a network: what is copied, what is dropped and counted."""

from __future__ import annotations

import asyncio

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.agreement import Rules
from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.mirror import Mirror
from modeldeploy.runtime.mirrormetrics import MirrorMetrics
from modeldeploy.runtime.podinfo import parse_mirror


def _mirror(percent: float) -> tuple[Mirror, MirrorMetrics]:
    loop = asyncio.new_event_loop()
    mm = MirrorMetrics(Metrics("m", "1", "r", "stable", "class"))
    m = Mirror(loop, "m", mm, Rules())
    settings, problem = parse_mirror(f'{{"url": "http://127.0.0.1:9", "percent": {percent}, "candidate": "c2"}}')
    assert problem is None
    m.configure(settings)
    return m, mm


def test_sampling_follows_percent_and_never_copies_a_copy() -> None:
    m, mm = _mirror(100)
    assert m.sample({})
    assert not m.sample({c.MIRROR_HEADER.encode(): b"1"})
    m0, _ = _mirror(0)
    assert not any(m0.sample({}) for _ in range(100))
    m30, _ = _mirror(30)
    hits = sum(m30.sample({}) for _ in range(5000))
    assert 1200 < hits < 1800  # 30% of 5000, far outside chance
    m.close()
    assert not m.sample({})
    assert mm.count("c2", c.MIRROR_DROPPED) == 0


def test_past_the_loop_budget_copies_are_dropped_and_counted() -> None:
    m, mm = _mirror(100)
    assert m.sample({})  # opens a budget window
    assert m.client is not None
    m.client.spent = m.share * c.MIRROR_BUDGET_WINDOW_S  # as if reading answers had used the window's budget
    assert not m.sample({})
    assert not m.sample({})
    assert mm.count("c2", c.MIRROR_DROPPED) == 2
    m._window_start -= c.MIRROR_BUDGET_WINDOW_S  # the next window starts with a fresh budget
    assert m.sample({})
    assert m.client.spent == 0.0
