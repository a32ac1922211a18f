"""The judge: spec + both arms' counts since the step's analysis began -> checks and a verdict. Pure.

The guarantee: a canary no worse than stable (and within its SLOs) is rolled back with probability at
most 1 - `confidence` over its whole rollout, whatever the number of checks and ticks. How:

1. **Accumulate, never window.** Every tick judges both arms over the same span, everything since the
   current step's analysis began (a step restarts it, so the traffic split is constant inside a span
   and a slow period weighs the same in both arms). Overlapping windows made "failureLimit consecutive
   Fails" little better than one.
2. **Sequential tests** (`sequential`): each statistical check is valid at every look at once (a
   martingale and Ville's inequality), so 24 or 240 ticks cost nothing extra.
3. **One budget, split.** alpha = 1 - confidence is divided equally among the statistical checks
   configured (Bonferroni) and the rollout's phases (a step restarts the span, so a rollout of s steps
   has at most s + 1 spans). Custom metrics are plain bounds on a number, outside the budget.
4. **Verdicts.** Fail is significance *and* (for comparisons) an excess beyond the limit. Inconclusive
   means the data cannot decide: an arm below `minRequests`, a bad sample (NaN, infinity, a negative
   count), a latency limit inside a bucket, too few requests to bound a p99. Anything else passes,
   and a value above its limit that is not yet significant says so in its message. Canary-only checks
   (`slo`, input rejections) need no baseline and decide even when stable has no data.
5. **Combined:** any Fail -> Fail; otherwise any Inconclusive -> Inconclusive; otherwise Pass. The
   planner rolls back when `failureLimit` consecutive ticks Fail.

Detection (power) is measured, not promised here: `bench/judge/` drives this function tick by tick and
`bench/RESULTS-judge.md` holds its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..api.analysis import Analysis
from ..api.base import format_duration
from ..api.status import ArmMeasurement, CheckResult, Verdict
from .agreement import agreement_check
from .behaviour import behaviour_checks
from .evidence import Evidence, exceeds, num, result
from .latency import latency_checks
from .measure import arm_measurement, total_requests
from .rates import rate_checks
from .samples import RawWindow, problems
from .target import ShadowGate


@dataclass(frozen=True)
class Judgement:
    """The verdict of one tick with everything that explains it."""

    verdict: Verdict
    checks: tuple[CheckResult, ...]
    arms: dict[str, ArmMeasurement]
    message: str


def statistical_checks(analysis: Analysis, shadow: ShadowGate | None = None) -> int:
    """How many checks share the error budget: the configured SLO, comparison and behaviour limits, and a
    shadow's agreement minimum."""
    slo, cmp, beh = analysis.slo, analysis.comparison, analysis.behaviour
    limits = [
        *((slo.latency_p99_ms, slo.error_rate_percent) if slo else ()),
        cmp.max_latency_ratio,
        cmp.max_error_rate_delta,
        cmp.max_client_error_rate_delta,
        *((beh.max_class_mix_distance, beh.max_score_distance, beh.max_input_rejection_percent) if beh else ()),
    ]
    if shadow is not None:
        limits.append(shadow.min_agreement_percent)
    return sum(1 for limit in limits if limit is not None)


def check_level(analysis: Analysis, phases: int, shadow: ShadowGate | None = None) -> float:
    """The level each statistical check runs at: 1 - confidence over checks x phases."""
    return (1 - analysis.confidence) / (max(statistical_checks(analysis, shadow), 1) * max(phases, 1))


def _custom_checks(ev: Evidence, custom: Mapping[str, float | None]) -> list[CheckResult]:
    """Custom metrics: the number the query returned against its bounds (no statistics)."""
    out: list[CheckResult] = []
    for metric in ev.analysis.metrics:
        value = custom.get(metric.name)
        bounds = " and ".join(
            part
            for part in (
                f">= {num(metric.min)}" if metric.min is not None else "",
                f"<= {num(metric.max)}" if metric.max is not None else "",
            )
            if part
        )
        comparator = "<=" if metric.max is not None else ">="
        threshold = metric.max if metric.max is not None else metric.min
        if value is None or math.isnan(value) or math.isinf(value):
            why = "no number" if value is None else f"{value}, not a finite number"
            out.append(
                result(
                    metric.name,
                    "Inconclusive",
                    f"{metric.name}: the query returned {why} (over {ev.span})",
                    threshold=threshold,
                    comparator=comparator,
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
            result(
                metric.name,
                verdict,
                f"{metric.name} {num(value)} {word} bounds {bounds} ({ev.samples})",
                value=value,
                threshold=threshold,
                comparator=comparator,
            )
        )
    return out


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
        f"{name} {arm.requests:.0f} requests, p99 {num(arm.latency_p99_ms, ' ms')}, "
        f"errors {num(arm.error_rate_percent, '%')}"
    )


def _message(verdict: Verdict, checks: tuple[CheckResult, ...], arms: dict[str, ArmMeasurement], span: str) -> str:
    if verdict == "Pass":
        both = f"{_arm_summary('canary', arms['canary'])}; {_arm_summary('stable', arms['stable'])}; over {span}"
        return f"Pass: all {len(checks)} checks pass ({both})."
    decisive = [c.message for c in checks if c.verdict == verdict]
    return f"{verdict}: {'; '.join(decisive)}."


def judge(analysis: Analysis, window: RawWindow, *, phases: int = 1, shadow: ShadowGate | None = None) -> Judgement:
    """Judge the canary against the spec and against stable over the span `window` covers; `phases` is the
    number of spans the rollout's analysis may restart in (steps + 1); `shadow`, during a shadow step,
    adds the agreement check on the mirrored requests."""
    span = format_duration(window.window_seconds) if math.isfinite(window.window_seconds) else "?"
    bad = problems(window)
    if bad:
        check = result("samples", "Inconclusive", "unusable measurement: " + "; ".join(bad))
        return Judgement(
            "Inconclusive", (check,), {}, f"Inconclusive: unusable measurement over {span}: {'; '.join(bad)}."
        )
    arms = {"stable": arm_measurement(window.stable), "canary": arm_measurement(window.canary)}
    ev = Evidence(
        analysis=analysis,
        stable=window.stable,
        canary=window.canary,
        n_stable=total_requests(window.stable),
        n_canary=total_requests(window.canary),
        span=span,
        alpha=check_level(analysis, phases, shadow),
    )
    checks = (*rate_checks(ev), *latency_checks(ev), *behaviour_checks(ev), *_custom_checks(ev, window.custom))
    if shadow is not None:
        checks = (agreement_check(ev, window.stable.mirrored, shadow), *checks)
    if not checks:
        checks = (
            result(
                "checks",
                "Pass" if ev.canary_enough else "Inconclusive",
                f"no checks configured; {'enough' if ev.canary_enough else 'too few'} canary requests ({ev.samples};"
                f" minRequests {analysis.min_requests})",
                value=ev.n_canary,
                threshold=analysis.min_requests,
                comparator=">=",
            ),
        )
    verdict = combine(checks)
    return Judgement(verdict=verdict, checks=checks, arms=arms, message=_message(verdict, checks, arms, span))


def provider_error(analysis: Analysis, error: str, window: str | None = None) -> Judgement:
    """The judgement when the provider could not measure: Inconclusive, with the error, never Fail."""
    check = CheckResult(metric="provider", verdict="Inconclusive", message=f"measurement failed: {error}")
    where = f" (over {window})" if window else ""
    return Judgement(
        verdict="Inconclusive", checks=(check,), arms={}, message=f"Inconclusive: could not measure{where}: {error}."
    )
