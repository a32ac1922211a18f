"""The statistics the judge decides with. Pure: standard library only.

- Proportions (error rate, input rejections): Wilson score bounds, and for the canary-minus-stable
  difference Newcombe's hybrid score interval (his method 10), which stays sound with zero or few
  events, where the Wald two-proportion z-test degenerates (zero variance when both arms have no
  errors). Every bound is one-sided at the stated confidence: the question is always "is the
  canary worse?", never "is it different?".
- Quantiles of a histogram: `histogram_quantile` as PromQL computes it (linear interpolation inside
  the bucket). Confidence bounds on a quantile come from order statistics: the k-th smallest of n
  observations lies below the true q-quantile with probability P(Binomial(n, q) >= k), so a rank
  chosen from the binomial distribution gives a distribution-free bound; its value is read from the
  histogram with the same interpolation as histogram_quantile, so the bound is only as fine as
  the buckets. With few observations no rank qualifies and the bound is absent (0 or infinity):
  100 requests cannot bound a p99 from above at 95%.
- Distributions (class mix, score histogram): the Jensen-Shannon distance (base 2, in 0..1) as
  the effect size, and the G-test of homogeneity (a likelihood-ratio chi-square test; G equals
  2 N ln 2 times the weighted JS divergence) to tell a real shift from sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

_NORMAL = NormalDist()

Bucket = tuple[float, float]
"""(upper bound `le`, cumulative count), as a Prometheus histogram exposes it."""


def z_one_sided(confidence: float) -> float:
    """The standard normal quantile z with P(Z <= z) = confidence."""
    return _NORMAL.inv_cdf(confidence)


# --------------------------------------------------------------------------------------- proportions


def wilson_interval(events: float, n: float, confidence: float) -> tuple[float, float]:
    """One-sided Wilson score bounds (lower, upper) of a proportion, each holding at `confidence`."""
    if n <= 0:
        return 0.0, 1.0
    z = z_one_sided(confidence)
    p = min(max(events / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_lower_bound(events_a: float, n_a: float, events_b: float, n_b: float, confidence: float) -> float:
    """One-sided lower confidence bound of p_a - p_b (Newcombe's hybrid score interval)."""
    pa = events_a / n_a if n_a > 0 else 0.0
    pb = events_b / n_b if n_b > 0 else 0.0
    lower_a, _ = wilson_interval(events_a, n_a, confidence)
    _, upper_b = wilson_interval(events_b, n_b, confidence)
    return pa - pb - math.sqrt((pa - lower_a) ** 2 + (upper_b - pb) ** 2)


# ------------------------------------------------------------------------------------------ binomial


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p); exact for moderate n, normal approximation beyond."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    var = n * p * (1 - p)
    if var > 400:
        # continuity-corrected normal approximation; its error is far below a percent here
        return _NORMAL.cdf((k + 0.5 - n * p) / math.sqrt(var))
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    mean, spread = n * p, 40 * math.sqrt(var) + 2  # terms beyond 40 sigma are far below float precision

    def term(i: int) -> float:
        return math.exp(log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)

    if k < mean:
        total = sum(term(i) for i in range(max(0, math.floor(mean - spread)), k + 1))
        return min(total, 1.0)
    upper = sum(term(i) for i in range(k + 1, min(n, math.ceil(mean + spread)) + 1))
    return max(0.0, 1.0 - upper)


def quantile_rank_bounds(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """Ranks (1-based) of order statistics bounding the q-quantile of n observations.

    The lower rank l is the largest with P(X_(l) <= quantile) = P(Binomial(n, q) >= l) >= confidence;
    the upper rank u is the smallest with P(X_(u) >= quantile) = P(Binomial(n, q) <= u - 1) >= confidence.
    None where no rank qualifies (too few observations).
    """
    if n <= 0:
        return None, None
    alpha = 1 - confidence
    # lower: largest l with P(B <= l - 1) <= alpha
    lo: int | None = None
    low_k, high_k = 0, n  # search k = l - 1 in [0, n-1] with cdf(k) <= alpha, the largest such
    if binomial_cdf(0, n, q) <= alpha:
        while high_k - low_k > 1:
            mid = (low_k + high_k) // 2
            if binomial_cdf(mid, n, q) <= alpha:
                low_k = mid
            else:
                high_k = mid
        lo = low_k + 1
    # upper: smallest u with P(B <= u - 1) >= confidence, u <= n
    hi: int | None = None
    if binomial_cdf(n - 1, n, q) >= confidence:
        low_k, high_k = -1, n - 1  # smallest k = u - 1 with cdf(k) >= confidence
        while high_k - low_k > 1:
            mid = (low_k + high_k) // 2
            if binomial_cdf(mid, n, q) >= confidence:
                high_k = mid
            else:
                low_k = mid
        hi = high_k + 1
    return lo, hi


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


def quantile_bounds(q: float, buckets: Sequence[Bucket], confidence: float) -> tuple[float, float]:
    """One-sided confidence bounds (lower, upper) of the q-quantile, each at `confidence`.

    Absent bounds are 0 and infinity (too few observations for the order-statistic argument).
    """
    n = round(histogram_total(buckets))
    lo_rank, hi_rank = quantile_rank_bounds(n, q, confidence)
    lo = value_at_rank(lo_rank, buckets) if lo_rank is not None else None
    hi = value_at_rank(hi_rank, buckets) if hi_rank is not None else None
    return (lo if lo is not None else 0.0), (hi if hi is not None else math.inf)


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


def g_test(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, int, float]:
    """G-test of homogeneity of two count vectors: (G statistic, degrees of freedom, p-value)."""
    xs, ys = _aligned(a, b)
    cols = [(x, y) for x, y in zip(xs, ys, strict=True) if x + y > 0]
    sa, sb = sum(x for x, _ in cols), sum(y for _, y in cols)
    total = sa + sb
    df = len(cols) - 1
    if df < 1 or sa <= 0 or sb <= 0:
        return 0.0, max(df, 0), 1.0
    g = 0.0
    for x, y in cols:
        for observed, row in ((x, sa), (y, sb)):
            if observed > 0:
                expected = row * (x + y) / total
                g += 2 * observed * math.log(observed / expected)
    g = max(g, 0.0)
    return g, df, chi2_sf(g, df)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square with df degrees of freedom."""
    if x <= 0:
        return 1.0
    return _gamma_q(df / 2, x / 2)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
