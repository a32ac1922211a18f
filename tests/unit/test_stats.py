"""Histogram and distribution helpers: checked against known values (PromQL's histogram_quantile)."""

from __future__ import annotations

import math

import pytest

from modeldeploy.operator.analysis.stats import (
    bucket_counts,
    histogram_quantile,
    js_distance,
    normalise_buckets,
    value_at_rank,
)

INF = math.inf
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


def test_js_distance_bounds() -> None:
    assert js_distance({"a": 10, "b": 10}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    assert js_distance({"a": 10}, {"b": 10}) == pytest.approx(1.0)
    assert js_distance({"a": 0}, {"a": 5}) is None
    mid = js_distance({"a": 80, "b": 20}, {"a": 20, "b": 80})
    assert mid is not None
    assert 0.0 < mid < 1.0
