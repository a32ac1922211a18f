"""The statistics behind the judge: checked against known values and against simulation."""

from __future__ import annotations

import math
import random

import pytest

from modeldeploy.operator.analysis.stats import (
    binomial_cdf,
    bucket_counts,
    chi2_sf,
    difference_lower_bound,
    g_test,
    histogram_quantile,
    js_distance,
    normalise_buckets,
    quantile_bounds,
    quantile_rank_bounds,
    value_at_rank,
    wilson_interval,
    z_one_sided,
)

INF = math.inf


def test_z_one_sided() -> None:
    assert z_one_sided(0.95) == pytest.approx(1.6449, abs=1e-4)
    assert z_one_sided(0.975) == pytest.approx(1.96, abs=1e-3)


@pytest.mark.parametrize(
    ("events", "n", "lower", "upper"),
    [
        # reference values: Wilson score interval, one-sided bounds at 95% (z = 1.645)
        (0, 100, 0.0, 0.02634),
        (5, 100, 0.02455, 0.09916),
        (50, 100, 0.41885, 0.58115),
        (100, 100, 0.97366, 1.0),
    ],
)
def test_wilson_interval(events: int, n: int, lower: float, upper: float) -> None:
    lo, hi = wilson_interval(events, n, 0.95)
    assert lo == pytest.approx(lower, abs=2e-4)
    assert hi == pytest.approx(upper, abs=2e-4)


def test_wilson_interval_without_observations_is_uninformative() -> None:
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


def test_difference_bound_zero_events_in_both_arms_is_negative() -> None:
    # no errors anywhere: the difference is bounded below by a negative number, never "significant"
    assert difference_lower_bound(0, 200, 0, 200, 0.95) < 0


def test_difference_bound_large_true_difference_is_positive() -> None:
    assert difference_lower_bound(50, 1000, 5, 1000, 0.95) > 0.03


def test_difference_bound_covers_truth_at_stated_rate() -> None:
    """Simulated coverage: the 95% lower bound lies below the true difference ~95% of the time or more."""
    rng = random.Random(7)
    p_a, p_b, n = 0.03, 0.01, 400
    misses = 0
    runs = 2000
    for _ in range(runs):
        a = sum(rng.random() < p_a for _ in range(n))
        b = sum(rng.random() < p_b for _ in range(n))
        if difference_lower_bound(a, n, b, n, 0.95) > p_a - p_b:
            misses += 1
    assert misses / runs < 0.07


@pytest.mark.parametrize(
    ("k", "n", "p", "expected"),
    [
        (0, 10, 0.5, 1 / 1024),
        (5, 10, 0.5, 0.623046875),
        (96, 100, 0.99, 0.01837),
        (9, 10, 0.99, 1 - 0.99**10),
        (-1, 10, 0.5, 0.0),
        (10, 10, 0.5, 1.0),
    ],
)
def test_binomial_cdf_exact(k: int, n: int, p: float, expected: float) -> None:
    assert binomial_cdf(k, n, p) == pytest.approx(expected, abs=1e-4)


def test_binomial_cdf_normal_branch_agrees_with_exact_sum_nearby() -> None:
    # n*p*(1-p) = 2500 takes the normal branch; compare with the mean (cdf ~ 0.5)
    assert binomial_cdf(5000, 10000, 0.5) == pytest.approx(0.504, abs=2e-3)


@pytest.mark.parametrize(
    ("n", "lower", "upper"),
    [
        (100, 97, None),  # 100 requests cannot bound a p99 from above at 97.5%
        (1000, 983, 997),
        (10000, 9880, 9920),
    ],
)
def test_quantile_rank_bounds_for_p99(n: int, lower: int, upper: int | None) -> None:
    assert quantile_rank_bounds(n, 0.99, 0.975) == (lower, upper)


def test_quantile_rank_bounds_without_observations() -> None:
    assert quantile_rank_bounds(0, 0.99, 0.95) == (None, None)


BUCKETS = [(0.1, 10.0), (0.2, 50.0), (0.5, 90.0), (INF, 100.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.0, 0.0),
        (0.05, 0.05),  # inside the first bucket, interpolated from 0
        (0.5, 0.2),  # exactly at a bucket boundary
        (0.3, 0.15),
        (0.9, 0.5),
        (0.95, 0.5),  # in the +Inf bucket: the largest finite bound, as PromQL answers
        (-0.1, -INF),
        (1.5, INF),
    ],
)
def test_histogram_quantile_matches_promql(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [
        [],
        [(INF, 10.0)],  # fewer than two buckets
        [(0.1, 1.0), (0.2, 2.0)],  # no +Inf bucket
        [(0.1, 0.0), (INF, 0.0)],  # no observations
    ],
)
def test_histogram_quantile_nan_cases_are_none(buckets: list[tuple[float, float]]) -> None:
    assert histogram_quantile(0.5, buckets) is None


def test_histogram_quantile_nan_q_is_none() -> None:
    assert histogram_quantile(math.nan, BUCKETS) is None


def test_buckets_are_sorted_and_made_monotonic() -> None:
    wobbly = [(INF, 100.0), (0.2, 50.0), (0.1, 52.0)]
    assert normalise_buckets(wobbly) == [(0.1, 52.0), (0.2, 52.0), (INF, 100.0)]
    assert bucket_counts(wobbly) == [52.0, 0.0, 48.0]


def test_value_at_rank_interpolates_inside_the_bucket() -> None:
    assert value_at_rank(30, BUCKETS) == pytest.approx(0.15)


def test_quantile_bounds_bracket_the_estimate() -> None:
    rng = random.Random(3)
    bounds = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, INF)
    values = [rng.expovariate(1 / 0.004) for _ in range(5000)]
    buckets = [(le, float(sum(v <= le for v in values))) for le in bounds]
    point = histogram_quantile(0.99, buckets)
    lo, hi = quantile_bounds(0.99, buckets, 0.95)
    assert point is not None
    assert lo <= point <= hi


def test_quantile_bounds_absent_with_tiny_samples() -> None:
    # three observations: the largest lies below the p99 with 97% probability, but nothing bounds it above
    lo, hi = quantile_bounds(0.99, [(0.1, 3.0), (INF, 3.0)], 0.95)
    assert lo == pytest.approx(0.1)
    assert hi == INF
    # and the median of three has no 95% lower bound (P(all three above it) = 12.5%)
    assert quantile_bounds(0.5, [(0.1, 3.0), (INF, 3.0)], 0.95)[0] == 0.0


@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [(3.841, 1, 0.05), (5.991, 2, 0.05), (11.07, 5, 0.05), (0.0, 3, 1.0), (1.0, 1, 0.3173), (100.0, 50, 3.45e-5)],
)
def test_chi2_sf(x: float, df: int, expected: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(expected, rel=2e-3, abs=1e-4)


def test_js_distance_bounds() -> None:
    assert js_distance({"a": 10, "b": 10}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    assert js_distance({"a": 10}, {"b": 10}) == pytest.approx(1.0)
    assert js_distance({"a": 0}, {"a": 5}) is None
    mid = js_distance({"a": 80, "b": 20}, {"a": 20, "b": 80})
    assert mid is not None
    assert 0.0 < mid < 1.0


def test_g_test_same_mix_is_not_significant_and_a_shift_is() -> None:
    _, df, p_same = g_test({"0": 500, "1": 300, "2": 200}, {"0": 1000, "1": 600, "2": 400})
    assert df == 2
    assert p_same == pytest.approx(1.0)
    _, _, p_shift = g_test({"0": 700, "1": 200, "2": 100}, {"0": 1000, "1": 600, "2": 400})
    assert p_shift < 1e-6


def test_g_test_degenerate_inputs() -> None:
    assert g_test({"0": 5}, {"0": 9}) == (0.0, 0, 1.0)  # one category: nothing to compare
    assert g_test({}, {"0": 9, "1": 3})[2] == 1.0
