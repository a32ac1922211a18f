"""Histograms and distributions as the runtime exports them. Pure: standard library only.

- Quantiles of a histogram: `histogram_quantile` as PromQL computes it (linear interpolation inside
  the bucket), and `value_at_rank`, the value of the observation of a given rank read the same way.
  Confidence bounds come from `sequential.rank_bounds`.
- Distributions (class mix, score histogram): the Jensen-Shannon distance (base 2, in 0..1), the
  effect size of the behaviour checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Bucket = tuple[float, float]
"""(upper bound `le`, cumulative count), as a Prometheus histogram exposes it."""


# ---------------------------------------------------------------------------------------- histograms


def normalise_buckets(buckets: Iterable[Bucket]) -> list[Bucket]:
    """Sorted by bound, counts made monotonic (as PromQL does: increase() can wobble), duplicates merged."""
    merged: dict[float, float] = {}
    for le, count in buckets:
        merged[le] = merged.get(le, 0.0) + count
    out: list[Bucket] = []
    running = 0.0
    for le in sorted(merged):
        running = max(running, merged[le])
        out.append((le, running))
    return out


def histogram_total(buckets: Sequence[Bucket]) -> float:
    """Observations in a histogram: the +Inf bucket's count (0 when absent)."""
    norm = normalise_buckets(buckets)
    return norm[-1][1] if norm and math.isinf(norm[-1][0]) else 0.0


def value_at_rank(rank: float, buckets: Sequence[Bucket]) -> float | None:
    """The value of the observation of this rank, interpolated inside its bucket like histogram_quantile."""
    norm = normalise_buckets(buckets)
    if len(norm) < 2 or not math.isinf(norm[-1][0]):
        return None
    total = norm[-1][1]
    if total <= 0:
        return None
    rank = min(max(rank, 0.0), total)
    index = next(i for i, (_, count) in enumerate(norm) if count >= rank)
    if index == len(norm) - 1:
        return norm[-2][0]
    upper, count = norm[index]
    if index == 0 and upper <= 0:
        return upper
    start = 0.0 if index == 0 else norm[index - 1][0]
    below = 0.0 if index == 0 else norm[index - 1][1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return start + (upper - start) * (rank - below) / in_bucket


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float | None:
    """PromQL's histogram_quantile(q, ...) over cumulative buckets; None where PromQL gives NaN."""
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return value_at_rank(q * histogram_total(buckets), buckets)


def bucket_counts(buckets: Sequence[Bucket]) -> list[float]:
    """Per-bucket (non-cumulative) counts of a cumulative histogram."""
    norm = normalise_buckets(buckets)
    out, below = [], 0.0
    for _, count in norm:
        out.append(count - below)
        below = count
    return out


# ----------------------------------------------------------------------------------- distributions


def _aligned(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[float], list[float]]:
    keys = sorted(set(a) | set(b))
    return [max(a.get(k, 0.0), 0.0) for k in keys], [max(b.get(k, 0.0), 0.0) for k in keys]


def js_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Jensen-Shannon distance (square root of the base-2 divergence, 0..1) of two count vectors."""
    xs, ys = _aligned(a, b)
    sa, sb = sum(xs), sum(ys)
    if sa <= 0 or sb <= 0:
        return None
    divergence = 0.0
    for x, y in zip(xs, ys, strict=True):
        p, r = x / sa, y / sb
        m = (p + r) / 2
        if p > 0:
            divergence += 0.5 * p * math.log2(p / m)
        if r > 0:
            divergence += 0.5 * r * math.log2(r / m)
    return math.sqrt(min(max(divergence, 0.0), 1.0))
