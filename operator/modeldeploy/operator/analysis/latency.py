"""Latency checks from the request-duration histogram: what its buckets can tell, and no more. Pure.

**Against an SLO** (`slo.latencyP99Ms`, canary only). A histogram knows how many requests took longer
than each bucket edge, nothing in between. "p99 <= L" means at most 1% of requests above L. So, with
`lo` the largest edge at or below L and `hi` the smallest at or above it:

- Fail when the share of requests above `hi` is above 1% at the check's level (the confidence
  sequence of that share lies above 1%): then p99 > hi >= L for certain;
- Pass when at most 1% of requests are above `lo` (p99 <= lo <= L), or when L is itself an edge and
  the share above it is not significantly above 1%;
- otherwise Inconclusive: the p99 lies inside the bucket (lo, hi] that holds L, and the message names
  both edges and asks for one at L (the runtime's `--latency-buckets`). Interpolating inside the
  bucket would invent the answer: with L = 40 ms in (25, 50], every request at 30 ms would fail and
  1.5% at 49 ms would pass, however many requests were seen.

**Against stable** (`compareToStable.maxLatencyRatio`). The canary's p99 is bounded from below by an
order statistic and stable's from above (`sequential.rank_bounds`, each at half the check's level),
each read from its histogram with PromQL's interpolation. Fail when lower(canary) > ratio x
upper(stable). A canary with the same latency as stable fails only if a confidence sequence errs or
the buckets are coarser than the ratio (edges more than `ratio` apart); with edges at most g apart,
a canary whose p99 is at most ratio / g^2 times stable's fails with probability at most the level.
"""

from __future__ import annotations

import math

from ..api.status import CheckResult
from .evidence import Evidence, exceeds, num, result, too_few
from .measure import latency_ms
from .sequential import exceeds_limit, proportion_bounds, rank_bounds
from .stats import Bucket, histogram_total, normalise_buckets, value_at_rank

P99 = 0.99
TAIL = 1 - P99


def _above(buckets: list[Bucket], edge: float) -> float:
    """Observations above `edge` (which must be one of the buckets' edges)."""
    total = buckets[-1][1]
    below = next((count for le, count in buckets if math.isclose(le, edge, rel_tol=1e-9)), total)
    return max(total - below, 0.0)


def _edges_around(buckets: list[Bucket], limit: float) -> tuple[float | None, float | None]:
    finite = [le for le, _ in buckets if not math.isinf(le)]
    at = [e for e in finite if math.isclose(e, limit, rel_tol=1e-9)]
    if at:
        return at[0], at[0]
    below = [e for e in finite if e < limit]
    above = [e for e in finite if e > limit]
    return (max(below) if below else None), (min(above) if above else None)


def p99_slo(ev: Evidence, limit_ms: float) -> CheckResult:
    """The canary's p99 against `slo.latencyP99Ms`, from the shares of requests above the nearby edges."""
    metric, what = "latencyP99Ms", "canary p99 latency"
    early = too_few(ev, metric, limit_ms, what, need_stable=False)
    if early is not None:
        return early
    buckets = normalise_buckets(ev.canary.duration_buckets)
    n = histogram_total(buckets)
    if n <= 0:
        return result(metric, "Inconclusive", f"{what}: no latency histogram ({ev.samples})", threshold=limit_ms)
    p99 = latency_ms(P99, ev.canary)
    lo, hi = _edges_around(buckets, limit_ms / 1000)

    def share(edge: float) -> str:
        count = _above(buckets, edge)
        lower, upper = proportion_bounds(count, n, ev.alpha)
        return (
            f"{num(100 * count / n, '%')} of {n:.0f} above {num(edge * 1000, ' ms')} "
            f"(confidence sequence {num(100 * lower, '%')}..{num(100 * upper, '%')})"
        )

    allowed = f"a p99 within {num(limit_ms, ' ms')} allows {num(100 * TAIL, '%')} above it"
    if hi is not None and exceeds_limit(_above(buckets, hi), n, TAIL, ev.alpha):
        edge = "the limit" if lo == hi else f"the bucket edge {num(hi * 1000, ' ms')} above the limit"
        return result(
            metric,
            "Fail",
            f"{what} > limit {num(limit_ms, ' ms')}: {share(hi)}, {edge}; {allowed}; beyond it at"
            f" {ev.confidence_text} ({ev.samples})",
            value=p99,
            threshold=limit_ms,
        )
    if lo is not None and _above(buckets, lo) <= TAIL * n:
        return result(
            metric,
            "Pass",
            f"{what} within limit {num(limit_ms, ' ms')}: {share(lo)} ({ev.samples})",
            value=p99,
            threshold=limit_ms,
        )
    if lo is not None and lo == hi:
        return result(
            metric,
            "Pass",
            f"{what} above limit {num(limit_ms, ' ms')} but not significantly: {share(lo)}; {allowed} ({ev.samples})",
            value=p99,
            threshold=limit_ms,
        )
    low_text = share(lo) if lo is not None else "no bucket edge below it"
    high_text = share(hi) if hi is not None else "no finite bucket edge above it"
    return result(
        metric,
        "Inconclusive",
        f"{what}: the limit {num(limit_ms, ' ms')} lies inside a latency bucket and the p99 is in it: {low_text};"
        f" {high_text}. The histogram cannot tell which side of the limit the p99 is; add a bucket edge at"
        f" {num(limit_ms, ' ms')} (the runtime's --latency-buckets) ({ev.samples})",
        value=p99,
        threshold=limit_ms,
    )


def p99_ratio(ev: Evidence, limit: float) -> CheckResult:
    """The canary's p99 over stable's against `compareToStable.maxLatencyRatio`."""
    metric, what = "latencyRatio", "p99 latency ratio canary/stable"
    early = too_few(ev, metric, limit, what, need_stable=True)
    if early is not None:
        return early
    p99_c, p99_s = latency_ms(P99, ev.canary), latency_ms(P99, ev.stable)
    if p99_c is None or p99_s is None:
        return result(
            metric, "Inconclusive", f"{what}: no latency histogram in one arm ({ev.samples})", threshold=limit
        )
    ratio = p99_c / p99_s if p99_s > 0 else math.inf
    half = ev.alpha / 2
    low_rank, _ = rank_bounds(round(histogram_total(ev.canary.duration_buckets)), P99, half)
    _, high_rank = rank_bounds(round(histogram_total(ev.stable.duration_buckets)), P99, half)
    low_c = value_at_rank(low_rank, ev.canary.duration_buckets) if low_rank is not None else None
    high_s = value_at_rank(high_rank, ev.stable.duration_buckets) if high_rank is not None else None
    bounds = (
        f"canary p99 {num(p99_c, ' ms')} (at least {num(None if low_c is None else low_c * 1000, ' ms')}), "
        f"stable p99 {num(p99_s, ' ms')} (at most {num(None if high_s is None else high_s * 1000, ' ms')}); "
        f"{ev.samples}"
    )
    if low_c is not None and high_s is not None and high_s > 0 and exceeds(low_c, limit * high_s):
        return result(
            metric,
            "Fail",
            f"{what} {num(ratio)} > limit {num(limit)}; its lower bound {num(low_c / high_s)} exceeds it at"
            f" {ev.confidence_text} ({bounds})",
            value=ratio,
            threshold=limit,
        )
    if exceeds(ratio, limit) and (low_c is None or high_s is None):
        return result(
            metric,
            "Inconclusive",
            f"{what} {num(ratio)} > limit {num(limit)}, but too few requests to bound the p99s at"
            f" {ev.confidence_text} ({bounds})",
            value=ratio,
            threshold=limit,
        )
    text = "above limit {} but not significantly" if exceeds(ratio, limit) else "within limit {}"
    message = f"{what} {num(ratio)} {text.format(num(limit))} ({bounds})"
    return result(metric, "Pass", message, value=ratio, threshold=limit)


def latency_checks(ev: Evidence) -> list[CheckResult]:
    """Every configured latency check."""
    out: list[CheckResult] = []
    slo = ev.analysis.slo
    if slo is not None and slo.latency_p99_ms is not None:
        out.append(p99_slo(ev, slo.latency_p99_ms))
    ratio = ev.analysis.comparison.max_latency_ratio
    if ratio is not None:
        out.append(p99_ratio(ev, ratio))
    return out
