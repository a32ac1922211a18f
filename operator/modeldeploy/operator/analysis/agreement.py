"""The shadow's agreement check: on the same requests, how often the candidate's answer agrees with
stable's (pure).

Stable's pods answer a live request, mirror a copy to the candidate and compare both answers; the
check counts copies by outcome. A candidate error counts as a disagreement (its answer is not the
same); copies dropped (stable's mirror queue full) are not compared and do not count. The test is
a one-sample one: disagreements of n compared copies against the limit 100 - minAgreementPercent,
Fail when the proportion's confidence sequence lies above it (`sequential.exceeds_limit`, the same
test as an SLO error rate). Pairing is where the power comes from: both answers are to the same
input, so a candidate that answers 2% of inputs differently shows 2% disagreement at once, where
two independent arms would have to tell apart two noisy class mixes (bench/RESULTS-judge.md).

No compared copy is never a Pass: fewer than `minRequests` compared is Inconclusive.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..api.status import CheckResult
from .evidence import Evidence, num, result
from .sequential import exceeds_limit, proportion_bounds
from .target import ShadowGate

METRIC = "agreementPercent"


def compared(mirror: Mapping[str, float]) -> tuple[float, float]:
    """(copies compared, of which disagreed or failed on the candidate)."""
    agreed = mirror.get("agreed", 0.0)
    against = mirror.get("disagreed", 0.0) + mirror.get("candidate_error", 0.0)
    return agreed + against, against


def agreement_check(ev: Evidence, mirror: Mapping[str, float], gate: ShadowGate) -> CheckResult:
    n, against = compared(mirror)
    dropped = mirror.get("dropped", 0.0)
    minimum = gate.min_agreement_percent
    counts = (
        f"{n - against:.0f} of {n:.0f} mirrored requests agreed ({mirror.get('disagreed', 0.0):.0f} disagreed,"
        f" {mirror.get('candidate_error', 0.0):.0f} candidate errors, {dropped:.0f} copies dropped); over {ev.span}"
    )
    if n < ev.analysis.min_requests:
        return result(
            METRIC,
            "Inconclusive",
            f"shadow agreement: too few mirrored requests compared to judge ({counts}; minRequests"
            f" {ev.analysis.min_requests})",
            threshold=minimum,
            comparator=">=",
        )
    agreement = 100 * (n - against) / n
    if minimum is None:
        return result(
            METRIC, "Pass", f"shadow agreement {num(agreement, '%')}, no minimum set ({counts})", value=agreement
        )
    lower, upper = proportion_bounds(against, n, ev.alpha)
    interval = f"agreement confidence sequence {num(100 * (1 - upper), '%')}..{num(100 * (1 - lower), '%')}"
    if exceeds_limit(against, n, (100 - minimum) / 100, ev.alpha):
        return result(
            METRIC,
            "Fail",
            f"shadow agreement {num(agreement, '%')} < minAgreementPercent {num(minimum, '%')}, below it at"
            f" {ev.confidence_text} ({counts}; {interval})",
            value=agreement,
            threshold=minimum,
            comparator=">=",
        )
    below = agreement < minimum
    text = "below minAgreementPercent {} but not significantly" if below else "at least minAgreementPercent {}"
    return result(
        METRIC,
        "Pass",
        f"shadow agreement {num(agreement, '%')} {text.format(num(minimum, '%'))} ({counts}; {interval})",
        value=agreement,
        threshold=minimum,
        comparator=">=",
    )
