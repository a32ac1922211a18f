"""What a provider returns: raw per-arm numbers over one window. Pure data, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .stats import Bucket


@dataclass(frozen=True)
class RawArm:
    """Counts one arm accumulated over the window, summed over its pods."""

    requests_by_code: dict[str, float] = field(default_factory=dict)
    """Requests answered, by HTTP status code ("200", "400", "500", ...)."""
    duration_buckets: tuple[Bucket, ...] = ()
    """Request-duration histogram: (upper bound in seconds, cumulative count), +Inf last."""
    class_counts: dict[str, float] = field(default_factory=dict)
    """Predicted classes (argmax index as a string) and how often each was predicted."""
    score_buckets: tuple[Bucket, ...] = ()
    """Prediction-score histogram: (upper bound, cumulative count), +Inf last."""
    rejections_by_reason: dict[str, float] = field(default_factory=dict)
    """Requests rejected as bad input, by reason."""
    pods: int | None = None
    """Pods measured (pods provider only)."""
    mirrored: dict[str, float] = field(default_factory=dict)
    """During a shadow step (stable's arm): copies mirrored to the canary by outcome (`agreed`,
    `disagreed`, `candidate_error`, `dropped`)."""


@dataclass(frozen=True)
class RawWindow:
    """Both arms over the same window, and what was asked to get them."""

    stable: RawArm
    canary: RawArm
    window_seconds: float
    """Length of the window actually measured."""
    custom: dict[str, float | None] = field(default_factory=dict)
    """Custom metric values by name; None where the query returned no number."""
    queries: dict[str, str] = field(default_factory=dict)
    """Queries sent (or pods scraped), by name, for the decision record."""
    notes: tuple[str, ...] = ()
    """Things a person should know about this measurement (a pod that did not answer, a baseline taken)."""


MAX_COUNT = 2.0**53
"""Beyond this a float counter no longer counts by ones: such a sample is corrupt, not traffic."""


def _arm_problems(name: str, arm: RawArm) -> list[str]:
    out: list[str] = []
    series: list[tuple[str, float]] = [
        *((f"requests code {k}", v) for k, v in arm.requests_by_code.items()),
        *((f"latency bucket le={le}", v) for le, v in arm.duration_buckets),
        *((f"class {k}", v) for k, v in arm.class_counts.items()),
        *((f"score bucket le={le}", v) for le, v in arm.score_buckets),
        *((f"rejections {k}", v) for k, v in arm.rejections_by_reason.items()),
        *((f"mirrored copies {k}", v) for k, v in arm.mirrored.items()),
    ]
    for what, value in series:
        if math.isnan(value) or math.isinf(value):
            out.append(f"{name} {what} is {value}")
        elif value < 0:
            out.append(f"{name} {what} is negative ({value:g}): a counter went down (a reset the provider missed)")
        elif value > MAX_COUNT:
            out.append(f"{name} {what} is {value:g}, more than a counter counts exactly (2^53)")
    for label, buckets in (("latency", arm.duration_buckets), ("score", arm.score_buckets)):
        if buckets and not any(math.isinf(le) for le, _ in buckets):
            out.append(f"{name} {label} histogram has no +Inf bucket")
        if any(math.isnan(le) for le, _ in buckets):
            out.append(f"{name} {label} histogram has a NaN bucket edge")
    return out


def problems(window: RawWindow) -> list[str]:
    """What makes a measurement unusable (NaN, infinities, negative or impossibly large counts, a histogram
    without +Inf):
    the judge answers Inconclusive naming each, never raises."""
    out = [*_arm_problems("stable", window.stable), *_arm_problems("canary", window.canary)]
    if math.isnan(window.window_seconds) or math.isinf(window.window_seconds) or window.window_seconds < 0:
        out.append(f"the span measured is {window.window_seconds}")
    return out
