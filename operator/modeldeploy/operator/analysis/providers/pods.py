"""The pods provider: scrape each arm's pods' /metrics and difference the counters from the span's start.

For clusters without Prometheus. Each tick scrapes every ready pod of both arms (concurrently, with
a bounded timeout) and measures each pod from its baseline, the counters it had at the first tick of
the span (`AnalysisTarget.since`, when the step began), to now; the arm sums its pods. Baselines are
kept per ModelDeployment and pod, so two ModelDeployments never share or prune each other's. So:

- the first tick of a span only takes a baseline (its verdict is Inconclusive), except for pods
  that started inside the span (`process_start_time_seconds`): their counters already are the span,
  counted from zero;
- a counter reset (the process restarted, or any counter went down) counts from zero again, as
  Prometheus's increase() does;
- a pod that did not answer is left out of this tick and said so; an arm with no pod answering is
  a provider error (Inconclusive).

Snapshots live in memory only: after an operator restart the next tick takes a baseline again.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.runtime import contract

from ...api.analysis import Analysis
from ...api.base import parse_duration
from ..samples import RawArm, RawWindow
from ..stats import Bucket
from ..target import AnalysisTarget, Arm
from . import ProviderError

DEFAULT_SCRAPE_TIMEOUT_S = 2.0
PROCESS_START = "process_start_time_seconds"

# sample name -> the label that distinguishes its series (besides the base labels)
_WANTED = {
    contract.METRIC_REQUESTS_TOTAL: contract.LABEL_CODE,
    f"{contract.METRIC_REQUEST_DURATION}_bucket": "le",
    contract.METRIC_PREDICTION_CLASS_TOTAL: contract.LABEL_CLASS,
    f"{contract.METRIC_PREDICTION_SCORE}_bucket": "le",
    contract.METRIC_INPUT_REJECTIONS_TOTAL: contract.LABEL_REASON,
}

Key = tuple[str, str]
"""(sample name, value of its distinguishing label)."""


@dataclass(frozen=True)
class Snapshot:
    """One pod's counters at one time."""

    time: datetime
    counters: dict[Key, float]
    started: float | None
    """process_start_time_seconds (Unix time), when exported."""


@dataclass(frozen=True)
class _Baseline:
    since: datetime | None
    """The span this baseline belongs to (`AnalysisTarget.since`)."""
    snapshot: Snapshot
    last_seen: datetime


FORGET_AFTER = timedelta(hours=1)
"""A pod's baseline is dropped when no tick measured it for this long."""


def parse_metrics(
    text: str, model: str, revision: str, candidate: str | None = None
) -> tuple[dict[Key, float], float | None]:
    """The counters the analysis reads from one /metrics page, for this model and revision (and, with a
    `candidate`, the copies this revision mirrored to it)."""
    counters: dict[Key, float] = {}
    started: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == PROCESS_START:
                started = float(sample.value)
                continue
            label = _WANTED.get(sample.name)
            labels = sample.labels
            if sample.name == contract.METRIC_MIRROR_REQUESTS_TOTAL:
                if candidate is None or labels.get(contract.LABEL_CANDIDATE) != candidate:
                    continue
                label = contract.LABEL_OUTCOME
            if label is None:
                continue
            if labels.get(contract.LABEL_MODEL, model) != model:
                continue
            if labels.get(contract.LABEL_REVISION, revision) != revision:
                continue
            key = (sample.name, labels.get(label, ""))
            counters[key] = counters.get(key, 0.0) + float(sample.value)
    return counters, started


def difference(current: Snapshot, baseline: Snapshot | None) -> dict[Key, float]:
    """Counts between the baseline and now; everything since the start after a reset (or without baseline)."""
    if baseline is None:
        return dict(current.counters)
    restarted = (
        current.started is not None and baseline.started is not None and abs(current.started - baseline.started) > 1e-3
    )
    went_down = any(current.counters.get(k, 0.0) < v for k, v in baseline.counters.items())
    if restarted or went_down:
        return dict(current.counters)
    return {k: v - baseline.counters.get(k, 0.0) for k, v in current.counters.items()}


def _arm_from(counts: dict[Key, float], pods: int) -> RawArm:
    grouped: dict[str, dict[str, float]] = defaultdict(dict)
    for (name, value), count in counts.items():
        grouped[name][value] = grouped[name].get(value, 0.0) + count

    def buckets(name: str) -> tuple[Bucket, ...]:
        per_le = grouped.get(name, {})
        return tuple(sorted((math.inf if le == "+Inf" else float(le), c) for le, c in per_le.items()))

    return RawArm(
        requests_by_code=dict(grouped.get(contract.METRIC_REQUESTS_TOTAL, {})),
        duration_buckets=buckets(f"{contract.METRIC_REQUEST_DURATION}_bucket"),
        class_counts=dict(grouped.get(contract.METRIC_PREDICTION_CLASS_TOTAL, {})),
        score_buckets=buckets(f"{contract.METRIC_PREDICTION_SCORE}_bucket"),
        rejections_by_reason=dict(grouped.get(contract.METRIC_INPUT_REJECTIONS_TOTAL, {})),
        pods=pods,
        mirrored=dict(grouped.get(contract.METRIC_MIRROR_REQUESTS_TOTAL, {})),
    )


class PodsMetrics:
    """Scrapes pods and keeps per-pod counter snapshots; one instance per operator process."""

    def __init__(self, http: httpx.AsyncClient, *, scrape_timeout_s: float = DEFAULT_SCRAPE_TIMEOUT_S) -> None:
        self._http = http
        self._timeout = httpx.Timeout(scrape_timeout_s, connect=min(scrape_timeout_s, 1.0))
        self._baselines: dict[tuple[str, str, str], _Baseline] = {}
        """(namespace, ModelDeployment, pod URL) -> the pod's counters when the span began."""

    async def _scrape(self, url: str) -> str:
        try:
            response = await self._http.get(url.rstrip("/") + contract.METRICS_PATH, timeout=self._timeout)
            response.raise_for_status()
        except httpx.HTTPError as err:
            raise ProviderError(f"{url}: {type(err).__name__}: {err}".rstrip(": ")) from err
        return response.text

    async def _arm(
        self, target: AnalysisTarget, arm: Arm, name: str, now: datetime, window: float
    ) -> tuple[RawArm, float, list[str]]:
        """The arm's counts since the span began, the span measured, and notes."""
        if not arm.pod_urls:
            raise ProviderError(f"no ready pods to scrape in the {name} arm (revision {arm.revision})")
        pages = await asyncio.gather(*(self._scrape(u) for u in arm.pod_urls), return_exceptions=True)
        notes: list[str] = []
        totals: dict[Key, float] = {}
        span = 0.0
        answered = measured = 0
        since = target.since
        began = since if since is not None else now - timedelta(seconds=window)
        for url, page in zip(arm.pod_urls, pages, strict=True):
            if isinstance(page, BaseException):
                notes.append(f"{name} pod {url} did not answer ({page})")
                continue
            try:
                candidate = target.canary.revision if target.shadow is not None and arm is target.stable else None
                counters, started = parse_metrics(page, target.model, arm.revision, candidate)
            except ValueError as err:
                notes.append(f"{name} pod {url} answered unparsable metrics ({err})")
                continue
            answered += 1
            current = Snapshot(now, counters, started)
            key = (target.namespace, target.name, url)
            known = self._baselines.get(key)
            if known is not None and known.since == since:
                baseline = known.snapshot
            elif started is not None and started >= began.timestamp():
                # started inside the span: its counters already are the span, counted from zero
                baseline = Snapshot(datetime.fromtimestamp(started, tz=now.tzinfo), {}, started)
            else:
                self._baselines[key] = _Baseline(since, current, now)
                notes.append(f"{name} pod {url}: baseline taken, counted from the next tick")
                continue
            self._baselines[key] = _Baseline(since, baseline, now)
            measured += 1
            span = max(span, (now - baseline.time).total_seconds())
            for k, value in difference(current, baseline if baseline.counters else None).items():
                totals[k] = totals.get(k, 0.0) + value
        if answered == 0:
            raise ProviderError(f"none of the {len(arm.pod_urls)} {name} pods answered: " + "; ".join(notes))
        return _arm_from(totals, measured), span, notes

    def _forget(self, target: AnalysisTarget, now: datetime) -> None:
        """Drop baselines of pods this ModelDeployment no longer has, and of anything unseen for an hour."""
        current = set(target.stable.pod_urls) | set(target.canary.pod_urls)
        for key, baseline in list(self._baselines.items()):
            mine = key[:2] == (target.namespace, target.name)
            if (mine and key[2] not in current) or now - baseline.last_seen > FORGET_AFTER:
                del self._baselines[key]

    async def measure(self, analysis: Analysis, target: AnalysisTarget, now: datetime) -> RawWindow:
        (stable, stable_span, stable_notes), (canary, canary_span, canary_notes) = await asyncio.gather(
            self._arm(target, target.stable, "stable", now, parse_duration(analysis.window)),
            self._arm(target, target.canary, "canary", now, parse_duration(analysis.window)),
        )
        self._forget(target, now)
        notes = [*stable_notes, *canary_notes]
        if analysis.metrics:
            notes.append("custom metrics need the Prometheus provider; not measured")
        queries = {
            "stable": "scrape " + ", ".join(u + contract.METRICS_PATH for u in target.stable.pod_urls),
            "canary": "scrape " + ", ".join(u + contract.METRICS_PATH for u in target.canary.pod_urls),
        }
        return RawWindow(
            stable=stable,
            canary=canary,
            window_seconds=max(stable_span, canary_span),
            custom={m.name: None for m in analysis.metrics},
            queries=queries,
            notes=tuple(notes),
        )
