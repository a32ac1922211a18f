"""The simulated traffic the judge sees: two arms' per-tick counts, as a provider reads them.

Per tick (one analysis interval) and arm: requests ~ Poisson(rate x interval); 5xx and 4xx ~ Binomial
of the arm's rates; input rejections inside the 4xx; latency from a log-normal (skewed, median and
sigma below) bucketed into the runtime's own histogram edges; predicted classes ~ Multinomial; scores
~ Beta bucketed into the runtime's score edges. Shared slow periods: a tick is slow with probability
SLOW_SHARE, and then both arms' latency is multiplied by SLOW_FACTOR and both error rates by
SLOW_ERRORS. Stable gets 3 to 9 times the canary's traffic (drawn per canary).

A change (`Change`) alters the canary from tick `start` on: its 5xx rate multiplied, its latency
multiplied, or one class's share moved by some points (taken from the most common class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from modeldeploy.operator.analysis.samples import RawArm
from modeldeploy.runtime.contract import PREDICTION_SCORE_BUCKETS, REQUEST_DURATION_BUCKETS

INTERVAL_S = 30.0
ERROR_RATE = 0.005
"""Stable's 5xx share."""
CLIENT_ERROR_RATE = 0.01
"""Stable's 4xx share (input rejections included)."""
REJECTION_SHARE = 0.3
"""Share of 4xx that are input rejections."""
LATENCY_MEDIAN_S = 0.010
LATENCY_SIGMA = 0.5
"""log-normal: median 10 ms, p99 = 10 ms x exp(0.5 x 2.326) = 32 ms."""
SLOW_SHARE = 0.05
SLOW_FACTOR = 1.3
SLOW_ERRORS = 3.0
CLASSES = (0.6, 0.3, 0.1)
SCORE_BETA = (2.0, 5.0)

_EDGES = np.array(REQUEST_DURATION_BUCKETS)
_SCORE_EDGES = np.array(PREDICTION_SCORE_BUCKETS[:-1])  # the last finite edge (1.0) holds everything left


@dataclass(frozen=True)
class Change:
    """What differs in the canary, from tick `start` on (A/A: nothing)."""

    name: str
    errors: float = 1.0
    latency: float = 1.0
    class_points: float = 0.0
    start: int = 0


@dataclass
class Counters:
    """One arm's cumulative counters, as the runtime exports them."""

    ok: float = 0.0
    errors: float = 0.0
    client_errors: float = 0.0
    rejections: float = 0.0
    latency: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(_EDGES) + 1))
    classes: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(CLASSES)))
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(_SCORE_EDGES) + 1))

    def copy(self) -> Counters:
        return Counters(
            self.ok,
            self.errors,
            self.client_errors,
            self.rejections,
            self.latency.copy(),
            self.classes.copy(),
            self.scores.copy(),
        )


def _bucket_probabilities(median: float) -> npt.NDArray[np.float64]:
    z = (np.log(_EDGES) - math.log(median)) / LATENCY_SIGMA
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def _score_probabilities() -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(0)
    draws = rng.beta(*SCORE_BETA, size=400_000)
    counts = np.bincount(np.searchsorted(_SCORE_EDGES, draws), minlength=len(_SCORE_EDGES) + 1)
    out: npt.NDArray[np.float64] = counts / counts.sum()
    return out


_NORMAL = _bucket_probabilities(LATENCY_MEDIAN_S)
_CACHE: dict[float, npt.NDArray[np.float64]] = {1.0: _NORMAL}
_SCORES = _score_probabilities()


def _latency_probabilities(factor: float) -> npt.NDArray[np.float64]:
    key = round(factor, 6)
    if key not in _CACHE:
        _CACHE[key] = _bucket_probabilities(LATENCY_MEDIAN_S * factor)
    return _CACHE[key]


def _class_probabilities(points: float) -> npt.NDArray[np.float64]:
    p = np.array(CLASSES)
    if points:
        p[0] -= points / 100
        p[1:] += points / 100 / (len(p) - 1)
    return p


def add_tick(rng: np.random.Generator, counters: Counters, rate: float, slow: bool, change: Change | None) -> None:
    """One interval of one arm's traffic added to its counters (`change` when it applies to this tick)."""
    n = int(rng.poisson(rate * INTERVAL_S))
    if n == 0:
        return
    err_rate = ERROR_RATE * (SLOW_ERRORS if slow else 1.0) * (change.errors if change else 1.0)
    err = int(rng.binomial(n, min(err_rate, 1.0)))
    client = int(rng.binomial(n - err, CLIENT_ERROR_RATE))
    counters.errors += err
    counters.client_errors += client
    counters.rejections += int(rng.binomial(client, REJECTION_SHARE))
    counters.ok += n - err - client
    factor = (SLOW_FACTOR if slow else 1.0) * (change.latency if change else 1.0)
    counters.latency += rng.multinomial(n, _latency_probabilities(factor))
    answered = n - err - client
    counters.classes += rng.multinomial(answered, _class_probabilities(change.class_points if change else 0.0))
    counters.scores += rng.multinomial(answered, _SCORES)


def raw_arm(now: Counters, start: Counters) -> RawArm:
    """What a provider reports for the span between two readings of the counters."""
    cumulative = np.cumsum(now.latency - start.latency)
    duration = (
        *((float(le), float(c)) for le, c in zip(_EDGES, cumulative[:-1], strict=True)),
        (math.inf, float(cumulative[-1])),
    )
    score_cum = np.cumsum(now.scores - start.scores)
    scores = (
        *((float(le), float(c)) for le, c in zip(_SCORE_EDGES, score_cum[:-1], strict=True)),
        (math.inf, float(score_cum[-1])),
    )
    client = now.client_errors - start.client_errors
    return RawArm(
        requests_by_code={
            "200": now.ok - start.ok,
            "500": now.errors - start.errors,
            "400": client,
        },
        duration_buckets=duration,
        class_counts={str(i): float(c) for i, c in enumerate(now.classes - start.classes)},
        score_buckets=scores,
        rejections_by_reason={"shape": now.rejections - start.rejections},
    )
