"""What every check reads: both arms' counts over one span, the error budget of one check, and how to
say a number. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api.analysis import Analysis
from ..api.status import CheckResult, Verdict
from .samples import RawArm


def exceeds(value: float, limit: float) -> bool:
    """value > limit, ignoring floating-point noise: a value at the limit (0.1 computed as 0.10000000000000002)
    is within it."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def num(x: float | None, unit: str = "") -> str:
    """A number for people: 4 significant digits, `n/a` for none."""
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
    return f"{text}{unit}"


def rounded(x: float | None) -> float | None:
    """A value for the status: 4 decimals; None for none, NaN or infinity."""
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return round(x, 4)


@dataclass(frozen=True)
class Evidence:
    """Both arms over the span, with the sample sizes and the error budget each check may spend."""

    analysis: Analysis
    stable: RawArm
    canary: RawArm
    n_stable: float
    n_canary: float
    span: str
    """The span measured, for people (`4m30s`)."""
    alpha: float
    """Level of each statistical check: 1 - confidence shared by the checks and the rollout's phases."""

    @property
    def samples(self) -> str:
        return f"canary n={self.n_canary:.0f}, stable n={self.n_stable:.0f}, over {self.span}"

    @property
    def confidence_text(self) -> str:
        return f"{self.analysis.confidence:.4g} confidence (level {self.alpha:.2g} for this check)"

    @property
    def canary_enough(self) -> bool:
        return self.n_canary >= self.analysis.min_requests


def result(
    metric: str,
    verdict: Verdict,
    message: str,
    *,
    value: float | None = None,
    threshold: float | None = None,
    comparator: str = "<=",
) -> CheckResult:
    """One check's record."""
    return CheckResult.model_validate(
        {
            "metric": metric,
            "verdict": verdict,
            "value": rounded(value),
            "threshold": threshold,
            "comparator": comparator,
            "message": message,
        }
    )


def too_few(ev: Evidence, metric: str, threshold: float | None, what: str, *, need_stable: bool) -> CheckResult | None:
    """Inconclusive when an arm this check reads has fewer than minRequests requests; None when it may judge."""
    low = [
        f"{arm} has {n:.0f}"
        for arm, n, needed in (("canary", ev.n_canary, True), ("stable", ev.n_stable, need_stable))
        if needed and n < ev.analysis.min_requests
    ]
    if not low:
        return None
    return result(
        metric,
        "Inconclusive",
        f"{what}: too few requests to judge ({', '.join(low)}; minRequests {ev.analysis.min_requests}"
        f" per arm; {ev.samples})",
        threshold=threshold,
    )
