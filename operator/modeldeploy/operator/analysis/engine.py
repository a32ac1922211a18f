"""The Analyser: one per operator process; runs one analysis tick for one ModelDeployment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from ..api.base import parse_duration
from ..api.spec import Analysis
from ..api.status import AnalysisStatus
from .target import AnalysisTarget


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rfc3339(now: datetime) -> str:
    """`now` as the API's RFC 3339 form, in UTC, to the second."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analysis_due(previous: AnalysisStatus | None, analysis: Analysis, now: datetime) -> bool:
    """True when no tick ran yet, or at least `analysis.interval` has passed since the last one."""
    if previous is None or previous.last_run_at is None:
        return True
    try:
        last = _parse_time(previous.last_run_at)
    except ValueError:
        return True
    return now - last >= timedelta(seconds=parse_duration(analysis.interval))


class Analyser:
    """Runs analysis ticks; holds the HTTP client and the pods provider's counter snapshots."""

    def __init__(self, *, http: httpx.AsyncClient | None = None) -> None:
        self._own_http = http is None
        self._http = http or httpx.AsyncClient()

    async def tick(
        self, analysis: Analysis, target: AnalysisTarget, previous: AnalysisStatus | None, now: datetime
    ) -> AnalysisStatus:
        """Measure both arms, judge the canary, and return this tick's decision record."""
        prev = previous or AnalysisStatus()
        return AnalysisStatus(
            last_run_at=rfc3339(now),
            verdict="Inconclusive",
            consecutive_failures=prev.consecutive_failures,
            consecutive_inconclusive=prev.consecutive_inconclusive + 1,
            passes=prev.passes,
            window=analysis.window,
            message=f"Inconclusive: the analysis of {target.namespace}/{target.name} is not implemented yet.",
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this Analyser created it."""
        if self._own_http:
            await self._http.aclose()
