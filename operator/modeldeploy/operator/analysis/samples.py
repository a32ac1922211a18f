"""What a provider returns: raw per-arm numbers over one window. Pure data, no I/O."""

from __future__ import annotations

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
