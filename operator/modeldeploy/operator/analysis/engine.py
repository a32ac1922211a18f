"""The Analyser: one per operator process; runs one analysis tick for one ModelDeployment."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx

from ..api.analysis import Analysis
from ..api.base import format_duration, parse_duration
from ..api.status import AnalysisStatus, Verdict
from .judge import judge, provider_error
from .providers import Provider, ProviderError, span_seconds
from .providers.pods import PodsMetrics
from .providers.prometheus import PrometheusMetrics
from .target import AnalysisTarget

log = logging.getLogger("modeldeploy.operator.analysis")


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


def rfc3339_ms(now: datetime) -> str:
    """`now` in RFC 3339, in UTC, to the millisecond."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Analyser:
    """Runs analysis ticks; holds the HTTP client and the pods provider's counter snapshots.

    One per operator process. `tick` never raises: whatever goes wrong while measuring is an
    Inconclusive tick with the error in its message.
    """

    def __init__(self, *, http: httpx.AsyncClient | None = None) -> None:
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        self._pods = PodsMetrics(self._http)

    def provider(self, analysis: Analysis) -> Provider:
        """The provider the analysis names."""
        config = analysis.provider
        if config.prometheus is not None:
            return PrometheusMetrics(self._http, config.prometheus)
        return self._pods

    async def tick(
        self, analysis: Analysis, target: AnalysisTarget, previous: AnalysisStatus | None, now: datetime
    ) -> AnalysisStatus:
        """Measure both arms, judge the canary, and return this tick's decision record."""
        queries: dict[str, str] = {}
        notes: tuple[str, ...] = ()
        window = format_duration(span_seconds(analysis, target, now))
        try:
            raw = await self.provider(analysis).measure(analysis, target, now)
        except ProviderError as err:
            judgement = provider_error(analysis, str(err), window)
        except Exception as err:  # the reconcile must never die of a measurement
            log.exception("analysis of %s/%s failed", target.namespace, target.name)
            judgement = provider_error(analysis, f"internal error: {type(err).__name__}: {err}", window)
        else:
            queries, notes = raw.queries, raw.notes
            window = format_duration(raw.window_seconds)
            judgement = judge(analysis, raw, phases=target.phases, shadow=target.shadow)
        message = judgement.message
        if notes:
            message += " Note: " + "; ".join(notes) + "."
        status = count(previous, judgement.verdict, rfc3339_ms(now)).model_copy(
            update={
                "last_run_at": rfc3339(now),
                "window": window,
                "arms": judgement.arms,
                "checks": list(judgement.checks),
                "queries": queries,
                "message": message,
            }
        )
        log.info(
            "analysis %s/%s canary %s vs stable %s: %s",
            target.namespace,
            target.name,
            target.canary.revision,
            target.stable.revision,
            message,
        )
        return status

    async def aclose(self) -> None:
        """Close the HTTP client if this Analyser created it."""
        if self._own_http:
            await self._http.aclose()


def count(previous: AnalysisStatus | None, verdict: Verdict, at: str | None = None) -> AnalysisStatus:
    """The counters after a tick with this verdict, run at `at` (pure; the rules are in the package
    docstring). `firstFailureAt` is `at` for the first Fail of a run of failures, kept through
    further Fails and Inconclusive ticks, and cleared by a Pass."""
    prev = previous or AnalysisStatus()
    first_failure = prev.first_failure_at if prev.consecutive_failures > 0 else None
    passing_since = None
    if verdict == "Pass":
        failures, inconclusive, passes = 0, 0, prev.passes + 1
        first_failure = None
        passing_since = (prev.passing_since or at) if prev.verdict == "Pass" else at
    elif verdict == "Fail":
        failures, inconclusive, passes = prev.consecutive_failures + 1, 0, prev.passes
        first_failure = first_failure or at
    else:
        failures, inconclusive, passes = prev.consecutive_failures, prev.consecutive_inconclusive + 1, prev.passes
    return AnalysisStatus(
        verdict=verdict,
        consecutive_failures=failures,
        consecutive_inconclusive=inconclusive,
        passes=passes,
        first_failure_at=first_failure,
        passing_since=passing_since,
    )
