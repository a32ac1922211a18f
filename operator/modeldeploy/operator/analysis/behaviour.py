"""Model-behaviour checks: has the canary's class mix or score distribution moved away from stable's? Pure.

Two things must both hold for a Fail:

- the shift is real: the universal-inference e-value against "both arms draw from one distribution"
  (`sequential.log_homogeneity_evalue`) reaches 1/level, valid at every look;
- it is larger than the limit: the Jensen-Shannon distance, corrected for its upward bias at small
  samples, exceeds `maxClassMixDistance` / `maxScoreDistance`. Two samples of one distribution over k
  categories have an expected plug-in divergence of about (k - 1)(1/n_c + 1/n_s) / (8 ln 2) (the
  chi-square approximation); it is subtracted before the square root. Without the correction two
  identical arms of 200 predictions each sit at a distance of about 0.14.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..api.status import CheckResult
from .evidence import Evidence, exceeds, num, result, too_few
from .sequential import log_homogeneity_evalue
from .stats import bucket_counts, js_distance


def corrected_js_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """The Jensen-Shannon distance (base 2) with the small-sample bias of its square removed; None without
    counts in one arm."""
    raw = js_distance(a, b)
    if raw is None:
        return None
    keys = {k for k in set(a) | set(b) if a.get(k, 0.0) + b.get(k, 0.0) > 0}
    na, nb = sum(max(v, 0.0) for v in a.values()), sum(max(v, 0.0) for v in b.values())
    bias = (len(keys) - 1) * (1 / na + 1 / nb) / (8 * math.log(2))
    return math.sqrt(max(raw * raw - bias, 0.0))


def distance_check(
    ev: Evidence, metric: str, what: str, *, canary: Mapping[str, float], stable: Mapping[str, float], limit: float
) -> CheckResult:
    """One distribution of the canary against stable's."""
    early = too_few(ev, metric, limit, what, need_stable=True)
    if early is not None:
        return early
    distance = corrected_js_distance(canary, stable)
    n_c, n_s = sum(canary.values()), sum(stable.values())
    if distance is None:
        return result(
            metric, "Inconclusive", f"{what}: no predictions recorded in one arm ({ev.samples})", threshold=limit
        )
    keys = sorted(set(canary) | set(stable))
    log_e = log_homogeneity_evalue([canary.get(k, 0.0) for k in keys], [stable.get(k, 0.0) for k in keys])
    real = log_e >= math.log(1 / ev.alpha)
    evidence = (
        f"e-value {num(math.exp(min(log_e, 700)))} against no shift, {'at or above' if real else 'below'} "
        f"{num(1 / ev.alpha)} ({ev.confidence_text}); canary {n_c:.0f} predictions, stable {n_s:.0f}; {ev.samples}"
    )
    beyond = exceeds(distance, limit)
    if real and beyond:
        return result(
            metric,
            "Fail",
            f"{what} JS distance {num(distance)} > limit {num(limit)}, and the shift is real ({evidence})",
            value=distance,
            threshold=limit,
        )
    if beyond:
        text = f"JS distance {num(distance)} above limit {num(limit)} but not significantly"
    elif real:
        text = f"a real but small shift: JS distance {num(distance)} within limit {num(limit)}"
    else:
        text = f"JS distance {num(distance)} within limit {num(limit)}"
    return result(metric, "Pass", f"{what}: {text} ({evidence})", value=distance, threshold=limit)


def behaviour_checks(ev: Evidence) -> list[CheckResult]:
    """Every configured distribution check."""
    beh = ev.analysis.behaviour
    out: list[CheckResult] = []
    if beh is None:
        return out
    if beh.max_class_mix_distance is not None:
        out.append(
            distance_check(
                ev,
                "classMixDistance",
                "class mix",
                canary=ev.canary.class_counts,
                stable=ev.stable.class_counts,
                limit=beh.max_class_mix_distance,
            )
        )
    if beh.max_score_distance is not None:

        def as_counts(buckets: tuple[tuple[float, float], ...]) -> dict[str, float]:
            return {str(i): c for i, c in enumerate(bucket_counts(buckets))}

        out.append(
            distance_check(
                ev,
                "scoreDistance",
                "prediction score distribution",
                canary=as_counts(ev.canary.score_buckets),
                stable=as_counts(ev.stable.score_buckets),
                limit=beh.max_score_distance,
            )
        )
    return out
