"""Where measurements come from: a small protocol, implemented by Prometheus and by the pods themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ...api.spec import Analysis
from ..samples import RawWindow
from ..target import AnalysisTarget


class ProviderError(Exception):
    """The provider could not measure (unreachable, timed out, answered nonsense): never a Fail."""


class Provider(Protocol):
    """Measures both arms of a target over the analysis window ending now."""

    async def measure(self, analysis: Analysis, target: AnalysisTarget, now: datetime) -> RawWindow: ...


__all__ = ["Provider", "ProviderError"]
