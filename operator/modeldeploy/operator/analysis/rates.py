"""Checks on shares of requests: the canary's error and input-rejection rates against a limit, and its 5xx
and 4xx rates against stable's. Pure.

- Against a limit (`slo.errorRatePercent`, `behaviour.maxInputRejectionPercent`): Fail when the
  proportion's confidence sequence lies above the limit (`sequential.exceeds_limit`).
- Against stable (`compareToStable.maxErrorRateDelta`, `maxClientErrorRateDelta`): Fail when the
  conditional test says the canary's rate is above stable's (`sequential.canary_rate_above`: its
  share of both arms' events against its share of the requests) *and* the estimated excess is above
  the limit in points. The test makes the decision sound (no false alarm from noise, few events or a
  burst both arms share); the limit keeps a real but negligible excess from rolling back.

Otherwise Pass; a rate above its limit that is not significant yet passes with a message that says
so, and the test keeps accumulating evidence for the next look.
"""

from __future__ import annotations

from ..api.status import CheckResult
from .evidence import Evidence, exceeds, num, result, too_few
from .measure import client_errors, rejections, server_errors
from .sequential import canary_rate_above, exceeds_limit, null_share, proportion_bounds


def against_limit(ev: Evidence, metric: str, count: float, limit_percent: float, what: str) -> CheckResult:
    """A share of the canary's requests against a limit in percent; needs no baseline."""
    early = too_few(ev, metric, limit_percent, what, need_stable=False)
    if early is not None:
        return early
    n = ev.n_canary
    share = 100 * count / n
    lower, upper = proportion_bounds(count, n, ev.alpha)
    interval = f"confidence sequence {num(100 * lower, '%')}..{num(100 * upper, '%')}"
    numbers = f"{count:.0f} of {n:.0f} canary requests; {interval}; {ev.samples}"
    if exceeds_limit(count, n, limit_percent / 100, ev.alpha):
        return result(
            metric,
            "Fail",
            f"{what} {num(share, '%')} > limit {num(limit_percent, '%')}, beyond it at {ev.confidence_text}"
            f" ({numbers})",
            value=share,
            threshold=limit_percent,
        )
    above = exceeds(share, limit_percent)
    text = "above limit {} but not significantly" if above else "within limit {}"
    return result(
        metric,
        "Pass",
        f"{what} {num(share, '%')} {text.format(num(limit_percent, '%'))} ({numbers})",
        value=share,
        threshold=limit_percent,
    )


def against_stable(
    ev: Evidence, metric: str, *, canary_events: float, stable_events: float, limit_points: float, what: str
) -> CheckResult:
    """The canary's rate of some event against stable's, in percentage points."""
    early = too_few(ev, metric, limit_points, what, need_stable=True)
    if early is not None:
        return early
    rate_c, rate_s = 100 * canary_events / ev.n_canary, 100 * stable_events / ev.n_stable
    excess = rate_c - rate_s
    events = canary_events + stable_events
    expected = null_share(ev.n_canary, ev.n_stable)
    share = canary_events / events if events > 0 else 0.0
    numbers = (
        f"canary {canary_events:.0f} of {ev.n_canary:.0f} ({num(rate_c, '%')}), stable {stable_events:.0f} of "
        f"{ev.n_stable:.0f} ({num(rate_s, '%')}); the canary had {num(100 * share, '%')} of the {events:.0f} "
        f"events and {num(100 * expected, '%')} of the requests; over {ev.span}"
    )
    significant = canary_rate_above(canary_events, ev.n_canary, stable_events, ev.n_stable, alpha=ev.alpha)
    beyond = exceeds(excess, limit_points)
    if significant and beyond:
        return result(
            metric,
            "Fail",
            f"{what}: canary - stable = {num(excess, ' pp')} > limit {num(limit_points, ' pp')}, and the canary's"
            f" rate is above stable's at {ev.confidence_text} ({numbers})",
            value=excess,
            threshold=limit_points,
        )
    if beyond:
        text = f"{num(excess, ' pp')} above stable, over the limit {num(limit_points, ' pp')}, not significantly"
    elif significant:
        text = f"significantly above stable, by {num(excess, ' pp')}, within the limit {num(limit_points, ' pp')}"
    else:
        text = f"canary - stable = {num(excess, ' pp')} within the limit {num(limit_points, ' pp')}"
    return result(metric, "Pass", f"{what}: {text} ({numbers})", value=excess, threshold=limit_points)


def rate_checks(ev: Evidence) -> list[CheckResult]:
    """Every configured check on shares of requests, in the order of the spec."""
    a = ev.analysis
    out: list[CheckResult] = []
    if a.slo is not None and a.slo.error_rate_percent is not None:
        errors = server_errors(ev.canary)
        out.append(against_limit(ev, "errorRatePercent", errors, a.slo.error_rate_percent, "canary error rate"))
    cmp = a.comparison
    for metric, limit, events, what in (
        ("errorRateDelta", cmp.max_error_rate_delta, server_errors, "error rate (5xx)"),
        ("clientErrorRateDelta", cmp.max_client_error_rate_delta, client_errors, "client error rate (4xx)"),
    ):
        if limit is not None:
            out.append(
                against_stable(
                    ev,
                    metric,
                    canary_events=events(ev.canary),
                    stable_events=events(ev.stable),
                    limit_points=limit,
                    what=what,
                )
            )
    if a.behaviour is not None and a.behaviour.max_input_rejection_percent is not None:
        rejected = rejections(ev.canary)
        out.append(
            against_limit(
                ev,
                "inputRejectionPercent",
                rejected,
                a.behaviour.max_input_rejection_percent,
                "canary input rejections",
            )
        )
    return out
