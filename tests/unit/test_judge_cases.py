"""The judge on the cases that fool simpler judges (Kayenta's four among them) and on the causes the
judge's issue listed: each with the right decision and a message that says why."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.operator.analysis.judge import Judgement, check_level, judge
from modeldeploy.operator.analysis.samples import RawArm, RawWindow
from modeldeploy.operator.api.analysis import Analysis
from modeldeploy.runtime import contract

INF = math.inf
EDGES = (*contract.REQUEST_DURATION_BUCKETS, INF)


def latency(per_ms: dict[float, float]) -> tuple[tuple[float, float], ...]:
    return tuple((le, sum(c for ms, c in per_ms.items() if ms / 1000 <= le)) for le in EDGES)


def arm(n: float, *, errors: float = 0, client: float = 0, ms: dict[float, float] | None = None) -> RawArm:
    return RawArm(
        requests_by_code={"200": n - errors - client, "500": errors, "400": client},
        duration_buckets=latency(ms if ms is not None else {5.0: n}),
    )


def run(analysis: Analysis, canary: RawArm, stable: RawArm) -> Judgement:
    return judge(analysis, RawWindow(stable=stable, canary=canary, window_seconds=300), phases=3)


def checks(j: Judgement) -> dict[str, str]:
    return {c.metric: c.verdict for c in j.checks}


DEFAULTS = Analysis()


def test_defaults_judge_errors_client_errors_and_latency_against_stable() -> None:
    j = run(DEFAULTS, arm(10_000), arm(30_000))
    assert checks(j) == {"errorRateDelta": "Pass", "clientErrorRateDelta": "Pass", "latencyRatio": "Pass"}
    assert check_level(DEFAULTS, 3) == (1 - 0.99) / 9


def test_kayenta_variance_blow_up_at_the_same_median() -> None:
    """Same median, a tail 4x longer: the p99 comparison fails it (a median-based comparison would not)."""
    stable = arm(30_000, ms={5.0: 29_400, 10.0: 600})
    canary = arm(10_000, ms={5.0: 9_700, 40.0: 300})
    j = run(DEFAULTS, canary, stable)
    assert checks(j)["latencyRatio"] == "Fail"
    assert "p99 latency ratio canary/stable" in j.message


def test_kayenta_sparse_errors_against_a_zero_baseline() -> None:
    """Stable has no errors. 3 canary errors in 10,000 are noise and within 0.1 points: Pass. 60 are a
    real 0.6-point excess: Fail. Neither is an infinite ratio."""
    assert checks(run(DEFAULTS, arm(10_000, errors=3), arm(30_000)))["errorRateDelta"] == "Pass"
    j = run(DEFAULTS, arm(10_000, errors=60), arm(30_000))
    assert checks(j)["errorRateDelta"] == "Fail"
    assert "canary 60 of 10000 (0.6%), stable 0 of 30000 (0%)" in j.message


def test_kayenta_no_baseline_data() -> None:
    """No stable data: comparisons cannot decide (Inconclusive, never Pass), but a canary-only SLO does:
    a canary answering 20% errors fails."""
    slo = Analysis.model_validate({"slo": {"errorRatePercent": 1}})
    j = run(slo, arm(2_000, errors=400), arm(0))
    assert checks(j)["errorRatePercent"] == "Fail"
    assert checks(j)["errorRateDelta"] == "Inconclusive"
    assert j.verdict == "Fail"
    quiet = run(DEFAULTS, arm(2_000), arm(0))
    assert quiet.verdict == "Inconclusive"
    assert "stable has 0" in quiet.message


def test_kayenta_values_a_hundred_times_larger() -> None:
    """A canary 100x slower, and counts in the billions: decided, no overflow."""
    j = run(DEFAULTS, arm(1e9, ms={400.0: 1e9}), arm(3e9, ms={4.0: 3e9}))
    assert checks(j)["latencyRatio"] == "Fail"


def test_a_canary_answering_4xx_to_everything_fails_by_default() -> None:
    j = run(DEFAULTS, arm(10_000, client=10_000), arm(30_000, client=300))
    assert checks(j)["clientErrorRateDelta"] == "Fail"
    assert j.verdict == "Fail"


def test_latency_slo_inside_a_bucket_is_an_honest_inconclusive() -> None:
    """Limit 45 ms inside the (40, 50] bucket, p99 in that bucket: the message names both edges."""
    analysis = Analysis.model_validate({"slo": {"latencyP99Ms": 45}, "compareToStable": {}})
    canary = arm(10_000, ms={5.0: 9_850, 45.0: 150})
    j = run(analysis, canary, arm(30_000))
    assert checks(j) == {"latencyP99Ms": "Inconclusive"}
    assert "above 40 ms" in j.message and "above 50 ms" in j.message
    assert "add a bucket edge at 45 ms" in j.message


def test_latency_slo_decides_from_the_share_above_the_edge() -> None:
    """The issue's example, with an edge at the limit: 2% at 41 ms fails a 40 ms SLO (1% allowed), and
    every request at 30 ms passes."""
    analysis = Analysis.model_validate({"slo": {"latencyP99Ms": 40}, "compareToStable": {}})
    assert checks(run(analysis, arm(10_000, ms={5.0: 9_800, 41.0: 200}), arm(30_000)))["latencyP99Ms"] == "Fail"
    assert checks(run(analysis, arm(10_000, ms={30.0: 10_000}), arm(30_000)))["latencyP99Ms"] == "Pass"


def test_a_value_over_the_limit_that_is_not_significant_passes_and_says_so() -> None:
    analysis = Analysis.model_validate({"slo": {"errorRatePercent": 1}, "compareToStable": {}})
    j = run(analysis, arm(500, errors=7), arm(30_000))
    assert j.verdict == "Pass"
    assert "above limit 1% but not significantly" in j.checks[0].message


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e12),
    st.sampled_from([2.0**53 + 2, 1e300, 1.7e308]),
)


@given(value=finite_or_not, where=st.sampled_from(["code", "bucket", "inf-bucket"]))
def test_any_sample_gives_a_verdict_never_an_exception(value: float, where: str) -> None:
    canary = arm(10_000, errors=50)
    if where == "code":
        canary = RawArm(requests_by_code={"200": value, "500": 5.0}, duration_buckets=canary.duration_buckets)
    else:
        buckets = list(canary.duration_buckets)
        i = len(buckets) - 1 if where == "inf-bucket" else 20
        buckets[i] = (buckets[i][0], value)
        canary = RawArm(requests_by_code=canary.requests_by_code, duration_buckets=tuple(buckets))
    everything = Analysis.model_validate(
        {"slo": {"latencyP99Ms": 40, "errorRatePercent": 1}, "behaviour": {"maxInputRejectionPercent": 1}}
    )
    j = run(everything, canary, arm(30_000))
    assert j.verdict in {"Pass", "Fail", "Inconclusive"}
    if math.isnan(value) or math.isinf(value) or value < 0 or value > 2.0**53:
        assert j.verdict == "Inconclusive"
        assert "unusable measurement" in j.message
