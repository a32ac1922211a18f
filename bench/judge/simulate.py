"""Canaries simulated tick by tick through the project's own judge and rollback rule.

Each canary: a rollout of spans (a step restarts the analysis' span, as the operator does), every
`interval` the counters since the span began go to `analysis.judge.judge` (with the rollout's phase
count, as the engine passes it), the verdict to `analysis.engine.count`, and the planner's own
`should_roll_back` and `should_hold_inconclusive` decide. The outcome: the tick it rolled back or
paused at, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeldeploy.operator.analysis.engine import count
from modeldeploy.operator.analysis.judge import judge
from modeldeploy.operator.analysis.samples import RawWindow
from modeldeploy.operator.api.analysis import Analysis
from modeldeploy.operator.api.status import AnalysisStatus
from modeldeploy.operator.rollout import should_hold_inconclusive, should_roll_back

from .traffic import INTERVAL_S, SLOW_SHARE, Change, Counters, add_tick, raw_arm


@dataclass(frozen=True)
class Config:
    """An analysis and the rollout shape it judges."""

    name: str
    analysis: Analysis
    spans: tuple[int, ...]
    """Ticks in each span (a span per step that holds the canary at a weight)."""
    phases: int
    """What the engine passes the judge: the rollout's steps + 1."""

    @property
    def ticks(self) -> int:
        return sum(self.spans)


@dataclass(frozen=True)
class Outcome:
    rolled_back_at: int | None
    paused_at: int | None


def run_canary(config: Config, change: Change, rate: float, seed: int) -> Outcome:
    """One canary: `rate` requests/s to the canary, 3-9x that to stable."""
    rng = np.random.default_rng(seed)
    stable_rate = rate * int(rng.integers(3, 10))
    stable, canary = Counters(), Counters()
    tick = 0
    for span in config.spans:
        began = tick
        status: AnalysisStatus | None = None
        start_s, start_c = stable.copy(), canary.copy()
        for _ in range(span):
            slow = bool(rng.random() < SLOW_SHARE)
            add_tick(rng, stable, stable_rate, slow, None)
            add_tick(rng, canary, rate, slow, change if tick >= change.start else None)
            tick += 1
            window = RawWindow(
                stable=raw_arm(stable, start_s),
                canary=raw_arm(canary, start_c),
                window_seconds=INTERVAL_S * (tick - began),
            )
            verdict = judge(config.analysis, window, phases=config.phases).verdict
            status = count(status, verdict)
            if should_roll_back(status, config.analysis):
                return Outcome(tick, None)
            if should_hold_inconclusive(status, config.analysis):
                return Outcome(None, tick)
    return Outcome(None, None)
