"""Table tests of the judge: boundaries, tiny samples, equal arms, real differences, noise."""

from __future__ import annotations

import math
from typing import Any

import pytest

from modeldeploy.operator.analysis.evidence import exceeds
from modeldeploy.operator.analysis.judge import combine, judge, provider_error
from modeldeploy.operator.analysis.samples import RawArm, RawWindow
from modeldeploy.operator.api.analysis import Analysis
from modeldeploy.operator.api.status import CheckResult
from modeldeploy.runtime import contract

INF = math.inf
LATENCY_BOUNDS = (*contract.REQUEST_DURATION_BUCKETS, INF)
SCORE_BOUNDS = (*contract.PREDICTION_SCORE_BUCKETS, INF)


def latency(counts_ms: dict[float, int]) -> tuple[tuple[float, float], ...]:
    """Cumulative duration buckets from {value in ms: how many requests took that long}."""
    return tuple((le, float(sum(c for ms, c in counts_ms.items() if ms / 1000 <= le))) for le in LATENCY_BOUNDS)


def arm(
    n: int = 1000,
    errors: int = 0,
    client_errors: int = 0,
    ms: dict[float, int] | None = None,
    classes: dict[str, float] | None = None,
    scores: dict[float, int] | None = None,
    rejected: int = 0,
) -> RawArm:
    codes = {"200": float(n - errors - client_errors)}
    if errors:
        codes["500"] = float(errors)
    if client_errors:
        codes["400"] = float(client_errors)
    score_buckets = (
        tuple((le, float(sum(c for s, c in scores.items() if s <= le))) for le in SCORE_BOUNDS) if scores else ()
    )
    return RawArm(
        requests_by_code=codes,
        duration_buckets=latency(ms if ms is not None else {2.0: n}),
        class_counts=classes or {},
        score_buckets=score_buckets,
        rejections_by_reason={"shape": float(rejected)} if rejected else {},
    )


PROMETHEUS = {"prometheus": {"address": "http://prometheus:9090"}}


def spec(**fields: Any) -> Analysis:
    if "metrics" in fields:
        fields.setdefault("provider", PROMETHEUS)
    return Analysis.model_validate({"minRequests": 100, **fields})


def run(analysis: Analysis, canary: RawArm, stable: RawArm | None = None, **window: Any) -> dict[str, CheckResult]:
    j = judge(analysis, RawWindow(stable=stable or arm(2000), canary=canary, window_seconds=30, **window))
    checks = {c.metric: c for c in j.checks}
    assert j.verdict == combine(j.checks)
    return checks


def verdict(analysis: Analysis, canary: RawArm, stable: RawArm | None = None, **window: Any) -> str:
    return judge(analysis, RawWindow(stable=stable or arm(2000), canary=canary, window_seconds=30, **window)).verdict


# ------------------------------------------------------------------------------------ evidence


@pytest.mark.parametrize(
    ("canary_n", "stable_n", "expected"),
    [
        (99, 2000, "Inconclusive"),  # one request short in the canary
        (2000, 99, "Inconclusive"),  # ... or in stable
        (100, 100, "Pass"),  # exactly minRequests in both: judged
        (0, 0, "Inconclusive"),  # no data never passes
    ],
)
def test_min_requests_boundary(canary_n: int, stable_n: int, expected: str) -> None:
    analysis = spec(slo={"errorRatePercent": 1})
    assert verdict(analysis, arm(canary_n), arm(stable_n)) == expected


def test_too_few_requests_does_not_judge_even_a_terrible_canary() -> None:
    analysis = spec(slo={"errorRatePercent": 1})
    j = judge(analysis, RawWindow(stable=arm(2000), canary=arm(50, errors=50), window_seconds=30))
    assert j.verdict == "Inconclusive"
    assert {c.verdict for c in j.checks} == {"Inconclusive"}
    assert "too few requests to judge (canary has 50; minRequests 100" in j.message
    assert "canary n=50" in j.message
    assert "stable n=2000" in j.message
    assert "over 30s" in j.message


def test_no_checks_configured_passes_on_enough_evidence() -> None:
    assert verdict(spec(), arm(100)) == "Pass"


# ------------------------------------------------------------------------------------ absolute SLO


P99_EXACTLY_50MS = {1.0: 980, 50.0: 10, 60.0: 10}  # rank 990 is the top of the (40, 50] ms bucket: 50 ms


@pytest.mark.parametrize(
    ("canary", "expected"),
    [
        (arm(1000, ms={2.0: 1000}), "Pass"),
        (arm(1000, ms=P99_EXACTLY_50MS), "Pass"),  # exactly at the limit passes
        (arm(1000, ms={90.0: 1000}), "Fail"),  # every request slow
        (arm(1000, ms={1.0: 970, 90.0: 30}), "Fail"),  # 3% slow: p99 clearly above, and significant
        (arm(100, ms={1.0: 98, 90.0: 2}), "Pass"),  # p99 above, but 2 of 100 is not evidence: passes, says so
    ],
)
def test_latency_slo(canary: RawArm, expected: str) -> None:
    checks = run(spec(slo={"latencyP99Ms": 50}), canary)
    assert checks["latencyP99Ms"].verdict == expected
    assert checks["latencyP99Ms"].threshold == 50


def test_latency_slo_value_at_limit_is_reported() -> None:
    check = run(spec(slo={"latencyP99Ms": 50}), arm(1000, ms=P99_EXACTLY_50MS))["latencyP99Ms"]
    assert check.value == pytest.approx(50.0)
    assert check.comparator == "<="


@pytest.mark.parametrize(
    ("canary", "expected"),
    [
        (arm(1000, errors=0), "Pass"),
        (arm(1000, errors=10), "Pass"),  # exactly 1%
        (arm(1000, errors=30), "Fail"),
        (arm(100, errors=2), "Pass"),  # 2% of 100: above the limit, not significant (the message says so)
        (arm(1000, client_errors=500), "Pass"),  # 4xx are the client's fault, not errors
    ],
)
def test_error_rate_slo(canary: RawArm, expected: str) -> None:
    assert run(spec(slo={"errorRatePercent": 1}), canary)["errorRatePercent"].verdict == expected


def test_zero_error_budget_fails_on_a_few_errors() -> None:
    assert run(spec(slo={"errorRatePercent": 0}), arm(1000, errors=3))["errorRatePercent"].verdict == "Fail"


# ------------------------------------------------------------------------------------ compare to stable


@pytest.mark.parametrize(
    ("canary", "stable", "expected"),
    [
        (arm(2000, errors=20), arm(2000, errors=20), "Pass"),  # equal arms
        (arm(2000, errors=100), arm(2000, errors=20), "Fail"),  # 5% vs 1%, large samples
        (arm(200, errors=3), arm(200, errors=1), "Pass"),  # 1 pp above, but noise at n=200
        (arm(1000, errors=15), arm(1000, errors=10), "Pass"),  # exactly 0.5 pp
        (arm(1000, errors=0), arm(1000, errors=50), "Pass"),  # canary better than stable
    ],
)
def test_error_rate_delta(canary: RawArm, stable: RawArm, expected: str) -> None:
    check = run(spec(compareToStable={"maxErrorRateDelta": 0.5}), canary, stable)["errorRateDelta"]
    assert check.verdict == expected


def test_error_rate_delta_same_rates_small_samples_do_not_fail() -> None:
    """Documented: with the same true rate, small samples pass or are Inconclusive, never Fail."""
    analysis = spec(compareToStable={"maxErrorRateDelta": 0.5})
    outcomes = {run(analysis, arm(100, errors=e), arm(100, errors=1))["errorRateDelta"].verdict for e in range(4)}
    assert "Fail" not in outcomes


@pytest.mark.parametrize(
    ("canary", "stable", "expected"),
    [
        (arm(5000, ms={2.0: 5000}), arm(5000, ms={2.0: 5000}), "Pass"),  # equal arms
        (arm(5000, ms={30.0: 5000}), arm(5000, ms={2.0: 5000}), "Fail"),  # 10x slower, large samples
        (arm(100, ms={1.0: 98, 30.0: 2}), arm(100, ms={2.0: 100}), "Inconclusive"),  # 100 cannot bound stable's p99
        (arm(5000, ms={1.0: 5000}), arm(5000, ms={30.0: 5000}), "Pass"),  # canary faster
    ],
)
def test_latency_ratio(canary: RawArm, stable: RawArm, expected: str) -> None:
    check = run(spec(compareToStable={"maxLatencyRatio": 1.2}), canary, stable)["latencyRatio"]
    assert check.verdict == expected


def test_confidence_changes_the_decision() -> None:
    # 25 vs 10 errors in 2000: a difference of 0.75 pp against a limit of 0 pp
    canary, stable = arm(2000, errors=25), arm(2000, errors=10)
    loose = spec(confidence=0.9, compareToStable={"maxErrorRateDelta": 0})
    strict = spec(confidence=0.999, compareToStable={"maxErrorRateDelta": 0})
    assert run(loose, canary, stable)["errorRateDelta"].verdict == "Fail"
    strict_check = run(strict, canary, stable)["errorRateDelta"]
    assert strict_check.verdict == "Pass"
    assert "not significantly" in strict_check.message


# ------------------------------------------------------------------------------------ behaviour


MIX = {"0": 500.0, "1": 300.0, "2": 200.0}


@pytest.mark.parametrize(
    ("canary_mix", "stable_mix", "expected"),
    [
        (MIX, {k: 2 * v for k, v in MIX.items()}, "Pass"),  # same mix, different volume
        ({"0": 800.0, "1": 150.0, "2": 50.0}, MIX, "Fail"),  # a real shift
        ({"0": 12.0, "1": 8.0}, {"0": 8.0, "1": 12.0}, "Pass"),  # looks shifted, 20 rows each: noise
        ({}, MIX, "Inconclusive"),  # no predictions recorded
    ],
)
def test_class_mix(canary_mix: dict[str, float], stable_mix: dict[str, float], expected: str) -> None:
    analysis = spec(behaviour={"maxClassMixDistance": 0.1})
    check = run(analysis, arm(1000, classes=canary_mix), arm(2000, classes=stable_mix))["classMixDistance"]
    assert check.verdict == expected


def test_class_mix_message_carries_the_numbers() -> None:
    analysis = spec(behaviour={"maxClassMixDistance": 0.1})
    shifted = {"0": 800.0, "1": 150.0, "2": 50.0}
    check = run(analysis, arm(1000, classes=shifted), arm(2000, classes=MIX))["classMixDistance"]
    assert check.value is not None
    assert check.value > 0.1
    assert "canary 1000 predictions, stable 1000; canary n=1000, stable n=2000, over 30s" in check.message
    assert "e-value" in check.message


@pytest.mark.parametrize(
    ("canary_scores", "expected"),
    [
        ({0.12: 500, 0.62: 500}, "Pass"),
        ({0.92: 1000}, "Fail"),
    ],
)
def test_score_distance(canary_scores: dict[float, int], expected: str) -> None:
    analysis = spec(behaviour={"maxScoreDistance": 0.2})
    stable = arm(2000, scores={0.12: 1000, 0.62: 1000})
    assert run(analysis, arm(1000, scores=canary_scores), stable)["scoreDistance"].verdict == expected


@pytest.mark.parametrize(
    ("rejected", "expected"),
    [(0, "Pass"), (20, "Pass"), (100, "Fail")],  # 20 of 1000 is exactly 2%
)
def test_input_rejections(rejected: int, expected: str) -> None:
    analysis = spec(behaviour={"maxInputRejectionPercent": 2})
    assert run(analysis, arm(1000, rejected=rejected))["inputRejectionPercent"].verdict == expected


# ------------------------------------------------------------------------------------ custom metrics


@pytest.mark.parametrize(
    ("value", "expected", "comparator"),
    [
        (0.5, "Pass", "<="),
        (0.9, "Pass", "<="),  # exactly at max
        (0.1, "Pass", "<="),  # exactly at min
        (0.1 + 0.2 - 0.2, "Pass", "<="),  # 0.10000000000000003: floating-point noise at the limit
        (0.95, "Fail", "<="),
        (0.05, "Fail", ">="),
        (None, "Inconclusive", "<="),
        (math.nan, "Inconclusive", "<="),
    ],
)
def test_custom_metric(value: float | None, expected: str, comparator: str) -> None:
    analysis = spec(metrics=[{"name": "agreement", "query": "vector(1)", "min": 0.1, "max": 0.9}])
    check = run(analysis, arm(1000), custom={"agreement": value})["agreement"]
    assert check.verdict == expected
    assert check.comparator == comparator


def test_custom_metric_min_only() -> None:
    analysis = spec(metrics=[{"name": "throughput", "query": "vector(1)", "min": 10}])
    check = run(analysis, arm(1000), custom={"throughput": 9.0})["throughput"]
    assert (check.verdict, check.comparator, check.threshold) == ("Fail", ">=", 10)


# ------------------------------------------------------------------------------------ verdicts


FULL = {
    "slo": {"latencyP99Ms": 50, "errorRatePercent": 1},
    "compareToStable": {"maxLatencyRatio": 1.5, "maxErrorRateDelta": 0.5},
    "behaviour": {"maxClassMixDistance": 0.1},
}


def test_equal_arms_pass_every_check() -> None:
    j = judge(spec(**FULL), RawWindow(stable=arm(2000, classes=MIX), canary=arm(2000, classes=MIX), window_seconds=30))
    assert j.verdict == "Pass"
    assert {c.verdict for c in j.checks} == {"Pass"}
    assert j.message.startswith("Pass: all 5 checks pass")
    assert "canary 2000 requests" in j.message


def test_fail_beats_inconclusive_and_the_message_names_the_failing_metric() -> None:
    canary = arm(1000, errors=100)  # no predictions recorded: the class mix is Inconclusive
    stable = arm(2000, classes={"0": 8.0, "1": 12.0})
    j = judge(spec(**FULL), RawWindow(stable=stable, canary=canary, window_seconds=42))
    assert j.verdict == "Fail"
    assert {c.verdict for c in j.checks} >= {"Fail", "Inconclusive"}
    assert j.message.startswith("Fail: canary error rate 10% > limit 1%")
    assert "canary n=1000, stable n=2000, over 42s" in j.message


def test_rollback_message_carries_numbers_for_latency() -> None:
    j = judge(spec(**FULL), RawWindow(stable=arm(2000), canary=arm(1000, ms={90.0: 1000}), window_seconds=30))
    assert j.verdict == "Fail"
    assert "canary p99 latency" in j.message
    assert "> limit 50 ms" in j.message
    assert j.arms["canary"].latency_p99_ms is not None
    assert j.arms["canary"].latency_p99_ms > 50


def test_arm_measurements() -> None:
    j = judge(spec(), RawWindow(stable=arm(2000), canary=arm(1000, errors=10, client_errors=5), window_seconds=30))
    canary = j.arms["canary"]
    assert (canary.requests, canary.errors, canary.client_errors) == (1000, 10, 5)
    assert canary.error_rate_percent == 1.0


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["Pass", "Pass"], "Pass"),
        (["Pass", "Inconclusive"], "Inconclusive"),
        (["Inconclusive", "Fail", "Pass"], "Fail"),
        ([], "Pass"),
    ],
)
def test_combine(verdicts: list[str], expected: str) -> None:
    checks = [CheckResult.model_validate({"metric": f"m{i}", "verdict": v}) for i, v in enumerate(verdicts)]
    assert combine(checks) == expected


def test_provider_error_is_inconclusive_never_fail() -> None:
    j = provider_error(spec(), "Prometheus at http://x:9090 unreachable: ConnectError", "30s")
    assert j.verdict == "Inconclusive"
    assert "unreachable" in j.message
    assert j.checks[0].metric == "provider"


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [(0.1, 0.1, False), (0.1 + 2e-17, 0.1, False), (0.1001, 0.1, True), (1e6 + 1e-4, 1e6, False), (2.0, 1.0, True)],
)
def test_exceeds_ignores_float_noise(value: float, limit: float, expected: bool) -> None:
    assert exceeds(value, limit) is expected
