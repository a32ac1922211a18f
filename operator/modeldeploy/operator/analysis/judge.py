"""The judge: spec + both arms' numbers -> checks and a verdict, with the numbers. Pure.

Rules, in order:

1. Fewer than `minRequests` requests in either arm: every check is Inconclusive (too little evidence
   is never a pass, and never a failure either).
2. Each configured check gives Pass, Fail or Inconclusive. The checks that can be fooled by sampling
   noise share one three-way rule, at `compareToStable.confidence` (0.95 when unset):
   - Fail when the canary is worse than the limit with that confidence (a one-sided bound beyond it);
   - Inconclusive when the point estimate is beyond the limit but the bound is not (more data needed);
   - Pass when the point estimate is within the limit; a value exactly at the limit passes.
   The checks: absolute SLO (`latencyP99Ms`: order-statistic lower bound of the canary's p99;
   `errorRatePercent`: Wilson lower bound of its error rate), `compareToStable` (`latencyRatio`: the
   canary's p99 lower bound over stable's p99 upper bound, each at (1+confidence)/2 so that both
   hold together at `confidence`; `errorRateDelta`: Newcombe's lower bound of the difference of
   error rates, in percentage points), behaviour (`classMixDistance`, `scoreDistance`: the
   Jensen-Shannon distance is the effect size, the G-test of homogeneity at `confidence` decides
   whether an excess is real; `inputRejectionPercent`: Wilson lower bound), and custom metrics
   (plain min/max on the number the query returned; no number is Inconclusive).
3. Any Fail -> Fail; otherwise any Inconclusive -> Inconclusive; otherwise Pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..api.base import format_duration
from ..api.spec import Analysis
from ..api.status import ArmMeasurement, CheckResult, Verdict
from .measure import arm_measurement, latency_ms, rejections, server_errors, total_requests
from .samples import RawArm, RawWindow
from .stats import (
    bucket_counts,
    difference_lower_bound,
    g_test,
    js_distance,
    quantile_bounds,
    wilson_interval,
)

DEFAULT_CONFIDENCE = 0.95
P99 = 0.99

Comparator = Literal["<=", ">=", "<", ">"]


@dataclass(frozen=True)
class Judgement:
    """The verdict of one tick with everything that explains it."""

    verdict: Verdict
    checks: tuple[CheckResult, ...]
    arms: dict[str, ArmMeasurement]
    message: str


def exceeds(value: float, limit: float) -> bool:
    """value > limit, ignoring floating-point noise: a value at the limit (0.1 computed as 0.10000000000000002)
    is within it."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class _Context:
    analysis: Analysis
    stable: RawArm
    canary: RawArm
    n_stable: float
    n_canary: float
    window: str
    confidence: float

    @property
    def samples(self) -> str:
        return f"canary n={self.n_canary:.0f}, stable n={self.n_stable:.0f}, window {self.window}"


def _three_way(
    ctx: _Context,
    metric: str,
    *,
    value: float | None,
    bound: float | None,
    threshold: float,
    what: str,
    bound_what: str = "its lower bound",
    unit: str = "",
) -> CheckResult:
    """Fail when `bound` (the one-sided confidence bound) exceeds the threshold; Inconclusive when only
    the point estimate does; Pass otherwise."""
    conf = f"{ctx.confidence:.0%}"
    if value is None:
        return CheckResult(
            metric=metric,
            verdict="Inconclusive",
            threshold=threshold,
            message=f"{what}: no data ({ctx.samples})",
        )
    if bound is not None and exceeds(bound, threshold):
        verdict: Verdict = "Fail"
        text = (
            f"{what} {_num(value, unit)} > limit {_num(threshold, unit)}; "
            f"{bound_what} {_num(bound, unit)} exceeds it at {conf} confidence ({ctx.samples})"
        )
    elif exceeds(value, threshold):
        verdict = "Inconclusive"
        text = (
            f"{what} {_num(value, unit)} > limit {_num(threshold, unit)} but not significant at {conf} "
            f"({bound_what} {_num(bound, unit)}; {ctx.samples})"
        )
    else:
        verdict = "Pass"
        text = f"{what} {_num(value, unit)} <= limit {_num(threshold, unit)} ({ctx.samples})"
    return CheckResult(
        metric=metric, verdict=verdict, value=_round(value), threshold=threshold, comparator="<=", message=text
    )


def _canary_share(ctx: _Context, metric: str, count: float, threshold_percent: float, what: str) -> CheckResult:
    """A share of the canary's requests (errors, rejections) against a limit in percent, judged on
    the Wilson lower bound of the share."""
    lower, _ = wilson_interval(count, ctx.n_canary, ctx.confidence)
    return _three_way(
        ctx,
        metric,
        value=100 * count / ctx.n_canary,
        bound=100 * lower,
        threshold=threshold_percent,
        what=what,
        unit="%",
    )


def _round(x: float | None) -> float | None:
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return round(x, 4)


# ------------------------------------------------------------------------------------- the checks


def _slo_checks(ctx: _Context) -> list[CheckResult]:
    slo = ctx.analysis.slo
    out: list[CheckResult] = []
    if slo is None:
        return out
    if slo.latency_p99_ms is not None:
        p99 = latency_ms(P99, ctx.canary)
        lower, _ = quantile_bounds(P99, ctx.canary.duration_buckets, ctx.confidence)
        out.append(
            _three_way(
                ctx,
                "latencyP99Ms",
                value=p99,
                bound=lower * 1000,
                threshold=slo.latency_p99_ms,
                what="canary p99 latency",
                unit=" ms",
            )
        )
    if slo.error_rate_percent is not None:
        errors = server_errors(ctx.canary)
        out.append(
            _canary_share(
                ctx, "errorRatePercent", errors, slo.error_rate_percent, f"canary error rate ({errors:.0f} errors)"
            )
        )
    return out


def _compare_checks(ctx: _Context) -> list[CheckResult]:
    cmp = ctx.analysis.compare_to_stable
    out: list[CheckResult] = []
    if cmp is None:
        return out
    if cmp.max_latency_ratio is not None:
        p99_c, p99_s = latency_ms(P99, ctx.canary), latency_ms(P99, ctx.stable)
        each = (1 + ctx.confidence) / 2
        lower_c, _ = quantile_bounds(P99, ctx.canary.duration_buckets, each)
        _, upper_s = quantile_bounds(P99, ctx.stable.duration_buckets, each)
        ratio = None if p99_c is None or not p99_s else p99_c / p99_s
        bound = lower_c / upper_s if upper_s > 0 and not math.isinf(upper_s) else 0.0
        what = f"p99 latency ratio canary/stable ({_num(p99_c, ' ms')} / {_num(p99_s, ' ms')})"
        out.append(
            _three_way(ctx, "latencyRatio", value=ratio, bound=bound, threshold=cmp.max_latency_ratio, what=what)
        )
    if cmp.max_error_rate_delta is not None:
        e_c, e_s = server_errors(ctx.canary), server_errors(ctx.stable)
        delta = 100 * (e_c / ctx.n_canary - e_s / ctx.n_stable)
        lower = 100 * difference_lower_bound(e_c, ctx.n_canary, e_s, ctx.n_stable, ctx.confidence)
        what = (
            f"error rate canary - stable ({_num(100 * e_c / ctx.n_canary, '%')} - "
            f"{_num(100 * e_s / ctx.n_stable, '%')})"
        )
        out.append(
            _three_way(
                ctx,
                "errorRateDelta",
                value=delta,
                bound=lower,
                threshold=cmp.max_error_rate_delta,
                what=what,
                unit=" pp",
            )
        )
    return out


def _distance_check(
    ctx: _Context,
    metric: str,
    *,
    what: str,
    canary: Mapping[str, float],
    stable: Mapping[str, float],
    threshold: float,
) -> CheckResult:
    distance = js_distance(canary, stable)
    conf = f"{ctx.confidence:.0%}"
    if distance is None:
        return CheckResult(
            metric=metric,
            verdict="Inconclusive",
            threshold=threshold,
            message=f"{what}: no predictions recorded in one arm ({ctx.samples})",
        )
    g, df, p = g_test(canary, stable)
    n_text = f"canary {sum(canary.values()):.0f} predictions, stable {sum(stable.values()):.0f}; {ctx.samples}"
    if exceeds(distance, threshold) and p < 1 - ctx.confidence:
        verdict: Verdict = "Fail"
        text = (
            f"{what} JS distance {_num(distance)} > limit {_num(threshold)}, a real shift at {conf} "
            f"(G={_num(g)}, df={df}, p={_num(p)}; {n_text})"
        )
    elif exceeds(distance, threshold):
        verdict = "Inconclusive"
        text = (
            f"{what} JS distance {_num(distance)} > limit {_num(threshold)} but not significant at {conf} "
            f"(G={_num(g)}, df={df}, p={_num(p)}; {n_text})"
        )
    else:
        verdict = "Pass"
        text = f"{what} JS distance {_num(distance)} <= limit {_num(threshold)} ({n_text})"
    return CheckResult(
        metric=metric, verdict=verdict, value=_round(distance), threshold=threshold, comparator="<=", message=text
    )


def _behaviour_checks(ctx: _Context) -> list[CheckResult]:
    beh = ctx.analysis.behaviour
    out: list[CheckResult] = []
    if beh is None:
        return out
    if beh.max_class_mix_distance is not None:
        out.append(
            _distance_check(
                ctx,
                "classMixDistance",
                what="class mix",
                canary=ctx.canary.class_counts,
                stable=ctx.stable.class_counts,
                threshold=beh.max_class_mix_distance,
            )
        )
    if beh.max_score_distance is not None:

        def as_counts(arm: RawArm) -> dict[str, float]:
            return {str(i): c for i, c in enumerate(bucket_counts(arm.score_buckets))}

        out.append(
            _distance_check(
                ctx,
                "scoreDistance",
                what="prediction score distribution",
                canary=as_counts(ctx.canary),
                stable=as_counts(ctx.stable),
                threshold=beh.max_score_distance,
            )
        )
    if beh.max_input_rejection_percent is not None:
        rejected = rejections(ctx.canary)
        out.append(
            _canary_share(
                ctx,
                "inputRejectionPercent",
                rejected,
                beh.max_input_rejection_percent,
                f"canary input rejections ({rejected:.0f})",
            )
        )
    return out


def _custom_checks(ctx: _Context, custom: Mapping[str, float | None]) -> list[CheckResult]:
    out: list[CheckResult] = []
    for metric in ctx.analysis.metrics:
        value = custom.get(metric.name)
        bounds = " and ".join(
            part
            for part in (
                f">= {_num(metric.min)}" if metric.min is not None else "",
                f"<= {_num(metric.max)}" if metric.max is not None else "",
            )
            if part
        )
        comparator: Comparator = "<=" if metric.max is not None else ">="
        threshold = metric.max if metric.max is not None else metric.min
        if value is None or math.isnan(value):
            out.append(
                CheckResult(
                    metric=metric.name,
                    verdict="Inconclusive",
                    threshold=threshold,
                    comparator=comparator,
                    message=f"{metric.name}: the query returned no number (window {ctx.window})",
                )
            )
            continue
        verdict: Verdict = "Pass"
        if metric.min is not None and exceeds(metric.min, value):
            verdict, comparator, threshold = "Fail", ">=", metric.min
        elif metric.max is not None and exceeds(value, metric.max):
            verdict, comparator, threshold = "Fail", "<=", metric.max
        word = "within" if verdict == "Pass" else "outside"
        out.append(
            CheckResult(
                metric=metric.name,
                verdict=verdict,
                value=_round(value),
                threshold=threshold,
                comparator=comparator,
                message=f"{metric.name} {_num(value)} {word} bounds {bounds} ({ctx.samples})",
            )
        )
    return out


# ---------------------------------------------------------------------------------------- verdict


def combine(checks: tuple[CheckResult, ...] | list[CheckResult]) -> Verdict:
    """Any Fail -> Fail; otherwise any Inconclusive -> Inconclusive; otherwise Pass."""
    verdicts = {c.verdict for c in checks}
    if "Fail" in verdicts:
        return "Fail"
    if "Inconclusive" in verdicts:
        return "Inconclusive"
    return "Pass"


def _arm_summary(name: str, arm: ArmMeasurement) -> str:
    return (
        f"{name} {arm.requests:.0f} requests, p99 {_num(arm.latency_p99_ms, ' ms')}, "
        f"errors {_num(arm.error_rate_percent, '%')}"
    )


def judge(analysis: Analysis, window: RawWindow) -> Judgement:
    """Judge the canary against the spec and against stable over one window."""
    arms = {"stable": arm_measurement(window.stable), "canary": arm_measurement(window.canary)}
    ctx = _Context(
        analysis=analysis,
        stable=window.stable,
        canary=window.canary,
        n_stable=total_requests(window.stable),
        n_canary=total_requests(window.canary),
        window=format_duration(window.window_seconds),
        confidence=analysis.compare_to_stable.confidence if analysis.compare_to_stable else DEFAULT_CONFIDENCE,
    )
    least = min(ctx.n_canary, ctx.n_stable)
    enough = least >= analysis.min_requests
    evidence = CheckResult(
        metric="minRequests",
        verdict="Pass" if enough else "Inconclusive",
        value=round(least, 1),
        threshold=analysis.min_requests,
        comparator=">=",
        message=(
            f"{'enough' if enough else 'too few'} requests for a verdict ({ctx.samples}; "
            f"minRequests {analysis.min_requests} per arm)"
        ),
    )
    if not enough:
        checks: tuple[CheckResult, ...] = (evidence,)
    else:
        checks = (
            evidence,
            *_slo_checks(ctx),
            *_compare_checks(ctx),
            *_behaviour_checks(ctx),
            *_custom_checks(ctx, window.custom),
        )
    verdict = combine(checks)
    both = f"{_arm_summary('canary', arms['canary'])}; {_arm_summary('stable', arms['stable'])}; window {ctx.window}"
    if verdict == "Pass":
        message = f"Pass: all {len(checks)} checks within limits ({both})."
    else:
        decisive = [c.message for c in checks if c.verdict == verdict]
        message = f"{verdict}: {'; '.join(decisive)}."
    return Judgement(verdict=verdict, checks=checks, arms=arms, message=message)


def provider_error(analysis: Analysis, error: str, window: str | None = None) -> Judgement:
    """The judgement when the provider could not measure: Inconclusive, with the error, never Fail."""
    check = CheckResult(
        metric="provider",
        verdict="Inconclusive",
        message=f"measurement failed: {error}",
    )
    where = f" (window {window})" if window else ""
    return Judgement(
        verdict="Inconclusive",
        checks=(check,),
        arms={},
        message=f"Inconclusive: could not measure{where}: {error}.",
    )
