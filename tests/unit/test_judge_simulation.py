"""A statistical regression test: a few hundred simulated canaries through the judge and the rollback rule
(the fast subset of `python -m bench.judge`; bench/RESULTS-judge.md holds the full run). The margins are
wide enough not to flake: the full run measures 0 A/A rollbacks in 1,000 and 100% detection for these."""

from __future__ import annotations

import pytest
from bench.judge.configs import DEFAULTS, EVERYTHING
from bench.judge.simulate import Config, run_canary
from bench.judge.traffic import Change

pytestmark = pytest.mark.slow


def _rolled_back(config: Config, change: Change, rate: float, seeds: range) -> tuple[int, int]:
    outcomes = [run_canary(config, change, rate, seed) for seed in seeds]
    return sum(o.rolled_back_at is not None for o in outcomes), sum(o.paused_at is not None for o in outcomes)


@pytest.mark.parametrize("config", [DEFAULTS, EVERYTHING], ids=["defaults", "everything"])
def test_identical_canaries_are_not_rolled_back(config: Config) -> None:
    rolled, paused = _rolled_back(config, Change("A/A"), 20.0, range(150))
    assert rolled <= 4, f"{rolled} of 150 A/A canaries rolled back (guarantee: at most 1%)"
    assert paused == 0


@pytest.mark.parametrize(
    ("change", "rate"),
    [(Change("errors 5x", errors=5.0), 20.0), (Change("p99 +50%", latency=1.5), 100.0)],
    ids=["errors-5x", "p99+50%"],
)
def test_bad_canaries_are_rolled_back(change: Change, rate: float) -> None:
    rolled, _ = _rolled_back(EVERYTHING, change, rate, range(10**6, 10**6 + 40))
    assert rolled >= 36, f"{rolled} of 40 canaries with {change.name} rolled back"
