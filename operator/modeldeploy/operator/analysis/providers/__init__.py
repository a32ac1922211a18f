"""Where measurements come from: a small protocol, implemented by Prometheus and by the pods themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ...api.analysis import Analysis
from ...api.base import parse_duration
from ..samples import RawWindow
from ..target import AnalysisTarget


class ProviderError(Exception):
    """The provider could not measure (unreachable, timed out, answered nonsense): never a Fail."""


def span_seconds(analysis: Analysis, target: AnalysisTarget, now: datetime) -> float:
    """Seconds from the span's start (`target.since`) to now, at least 1; the analysis' `window` without a start."""
    if target.since is None:
        return parse_duration(analysis.window)
    return max((now - target.since).total_seconds(), 1.0)


class Provider(Protocol):
    """Measures both arms of a target over the span from `target.since` to now."""

    async def measure(self, analysis: Analysis, target: AnalysisTarget, now: datetime) -> RawWindow: ...


__all__ = ["Provider", "ProviderError", "span_seconds"]
