"""Raw counts -> per-arm measurements, and the pods provider's parsing and counter differencing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.operator.analysis.measure import arm_measurement, client_errors, server_errors, total_requests
from modeldeploy.operator.analysis.providers.pods import Snapshot, difference, parse_metrics
from modeldeploy.operator.analysis.samples import RawArm

INF = math.inf
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_arm_measurement() -> None:
    raw = RawArm(
        requests_by_code={"200": 950.0, "400": 30.0, "503": 15.0, "500": 5.0},
        duration_buckets=((0.001, 500.0), (0.01, 990.0), (0.1, 1000.0), (INF, 1000.0)),
        rejections_by_reason={"shape": 20.0, "datatype": 10.0},
    )
    m = arm_measurement(raw)
    assert (m.requests, m.errors, m.client_errors) == (1000, 20, 30)
    assert m.error_rate_percent == 2.0
    assert m.input_rejection_percent == 3.0
    assert m.latency_p50_ms == pytest.approx(1.0)
    assert m.latency_p99_ms == pytest.approx(10.0)


def test_empty_arm_has_no_rates() -> None:
    m = arm_measurement(RawArm())
    assert m.requests == 0
    assert m.error_rate_percent is None
    assert m.latency_p99_ms is None


def test_requests_fall_back_to_the_histogram_count() -> None:
    raw = RawArm(duration_buckets=((0.1, 7.0), (INF, 9.0)))
    assert total_requests(raw) == 9
    assert server_errors(raw) == client_errors(raw) == 0


PAGE = """\
# HELP modeldeploy_requests_total Inference requests by HTTP status code
# TYPE modeldeploy_requests_total counter
modeldeploy_requests_total{model="m",version="1",revision="r1",track="stable",code="200"} 90.0
modeldeploy_requests_total{model="m",version="1",revision="r1",track="stable",code="500"} 10.0
modeldeploy_requests_total{model="other",version="1",revision="r1",track="stable",code="200"} 999.0
# HELP modeldeploy_request_duration_seconds latency
# TYPE modeldeploy_request_duration_seconds histogram
modeldeploy_request_duration_seconds_bucket{model="m",version="1",revision="r1",track="stable",le="0.001"} 40.0
modeldeploy_request_duration_seconds_bucket{model="m",version="1",revision="r1",track="stable",le="+Inf"} 100.0
modeldeploy_request_duration_seconds_count{model="m",version="1",revision="r1",track="stable"} 100.0
modeldeploy_request_duration_seconds_sum{model="m",version="1",revision="r1",track="stable"} 0.5
# HELP modeldeploy_prediction_class_total classes
# TYPE modeldeploy_prediction_class_total counter
modeldeploy_prediction_class_total{model="m",version="1",revision="r1",track="stable",class="0"} 60.0
modeldeploy_prediction_class_total{model="m",version="1",revision="r1",track="stable",class="2"} 30.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
"""


def test_parse_metrics_keeps_this_model_and_revision_only() -> None:
    counters, started = parse_metrics(PAGE, "m", "r1")
    assert started == 1.7e9
    assert counters[("modeldeploy_requests_total", "200")] == 90
    assert counters[("modeldeploy_requests_total", "500")] == 10
    assert counters[("modeldeploy_request_duration_seconds_bucket", "+Inf")] == 100
    assert counters[("modeldeploy_prediction_class_total", "2")] == 30
    assert not any(name.endswith(("_sum", "_count")) for name, _ in counters)
    assert parse_metrics(PAGE, "m", "other-revision")[0] == {}


def _snap(seconds: float, started: float | None = 1.0, **counts: float) -> Snapshot:
    return Snapshot(T0 + timedelta(seconds=seconds), {("c", k): v for k, v in counts.items()}, started)


def test_difference_between_snapshots() -> None:
    assert difference(_snap(5, ok=150, err=3), _snap(0, ok=100)) == {("c", "ok"): 50, ("c", "err"): 3}


def test_difference_without_baseline_is_everything() -> None:
    assert difference(_snap(5, ok=150), None) == {("c", "ok"): 150}


@pytest.mark.parametrize(
    ("current", "baseline"),
    [
        (_snap(5, started=2.0, ok=7), _snap(0, started=1.0, ok=5)),  # the process restarted (grew past 5 again)
        (_snap(5, started=None, ok=4), _snap(0, started=None, ok=100)),  # a counter went down
    ],
)
def test_counter_reset_counts_from_zero(current: Snapshot, baseline: Snapshot) -> None:
    assert difference(current, baseline) == current.counters
