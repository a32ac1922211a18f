"""The Prometheus provider: instant queries over the HTTP API through httpx, with bounded timeouts."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx

from ...api.analysis import Analysis, PrometheusProvider
from ...api.base import parse_duration
from .. import promql
from ..samples import RawArm, RawWindow
from ..stats import Bucket
from ..target import AnalysisTarget
from . import ProviderError, span_seconds

QUERY_PATH = "/api/v1/query"


def _le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


class PrometheusMetrics:
    """Reads both arms from Prometheus with one instant query per signal (both arms in each)."""

    def __init__(self, http: httpx.AsyncClient, config: PrometheusProvider) -> None:
        self._http = http
        self._url = config.address.rstrip("/") + QUERY_PATH
        seconds = parse_duration(config.timeout)
        self._timeout = httpx.Timeout(seconds, connect=min(seconds, 2.0))
        self._query_timeout = f"{max(1, round(seconds * 1000))}ms"  # PromQL durations take no decimals

    async def query(self, text: str) -> dict[str, Any]:
        """Run one instant query; its `data` object, or ProviderError."""
        try:
            response = await self._http.get(
                self._url, params={"query": text, "timeout": self._query_timeout}, timeout=self._timeout
            )
        except httpx.TimeoutException as err:
            raise ProviderError(f"Prometheus at {self._url} timed out: {type(err).__name__}") from err
        except httpx.HTTPError as err:
            raise ProviderError(f"Prometheus at {self._url} unreachable: {type(err).__name__}: {err}") from err
        try:
            body = response.json()
        except ValueError as err:
            raise ProviderError(
                f"Prometheus answered HTTP {response.status_code} with a body that is not JSON"
            ) from err
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise ProviderError(f"Prometheus answered HTTP {response.status_code}: {error or 'no data'}")
        data: dict[str, Any] = body["data"]
        return data

    async def _vector(self, text: str) -> list[tuple[dict[str, str], float]]:
        data = await self.query(text)
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise ProviderError(f"Prometheus answered a {data.get('resultType')!r}, expected a vector: {text}")
        out = []
        try:
            for item in data["result"]:
                value = float(item["value"][1])
                if not math.isnan(value):
                    out.append(({str(k): str(v) for k, v in item["metric"].items()}, value))
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ProviderError(f"Prometheus answered a malformed vector for {text}") from err
        return out

    async def _scalar(self, text: str) -> tuple[float | None, str | None]:
        """A custom query's number, or None and why."""
        try:
            data = await self.query(text)
        except ProviderError as err:
            return None, str(err)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "scalar" and isinstance(result, list):
                return float(result[1]), None
            if kind == "vector" and isinstance(result, list):
                if len(result) == 1:
                    return float(result[0]["value"][1]), None
                return None, f"returned {len(result)} series, expected one"
        except (KeyError, IndexError, TypeError, ValueError):
            return None, "returned a malformed answer"
        return None, f"returned a {kind!r}, expected a scalar or one series"

    async def measure(self, analysis: Analysis, target: AnalysisTarget, now: datetime) -> RawWindow:
        window = span_seconds(analysis, target, now)
        selector = promql.Selector(target.namespace, target.model)
        stable, canary = target.stable.revision, target.canary.revision
        queries = promql.arm_queries(selector, stable, canary, window)
        if target.shadow is not None:
            queries[promql.QUERY_MIRRORED] = promql.mirror_query(selector, stable, canary, window)
        names = list(queries)
        results = await asyncio.gather(*(self._vector(queries[n]) for n in names))
        by_name = dict(zip(names, results, strict=True))

        def grouped(name: str, label: str) -> dict[str, dict[str, float]]:
            out: dict[str, dict[str, float]] = defaultdict(dict)
            for labels, value in by_name[name]:
                rev, key = labels.get("revision"), labels.get(label)
                if rev is not None and key is not None:
                    out[rev][key] = out[rev].get(key, 0.0) + value
            return out

        def buckets(per_le: dict[str, float]) -> tuple[Bucket, ...]:
            return tuple(sorted((_le(le), v) for le, v in per_le.items()))

        codes = grouped(promql.QUERY_REQUESTS, "code")
        latency = grouped(promql.QUERY_LATENCY, "le")
        classes = grouped(promql.QUERY_CLASSES, "class")
        scores = grouped(promql.QUERY_SCORES, "le")
        rejections = grouped(promql.QUERY_REJECTIONS, "reason")
        mirrored = grouped(promql.QUERY_MIRRORED, "outcome") if promql.QUERY_MIRRORED in by_name else {}

        def arm(revision: str) -> RawArm:
            return RawArm(
                requests_by_code=codes.get(revision, {}),
                duration_buckets=buckets(latency.get(revision, {})),
                class_counts=classes.get(revision, {}),
                score_buckets=buckets(scores.get(revision, {})),
                rejections_by_reason=rejections.get(revision, {}),
                mirrored=mirrored.get(revision, {}) if revision == stable else {},
            )

        custom: dict[str, float | None] = {}
        notes: list[str] = []
        all_queries = dict(queries)
        if analysis.metrics:
            custom_window = parse_duration(analysis.window)
            texts = {
                m.name: promql.expand_custom(m.query, selector, stable, canary, custom_window) for m in analysis.metrics
            }
            answers = await asyncio.gather(*(self._scalar(t) for t in texts.values()))
            for (name, text), (value, why) in zip(texts.items(), answers, strict=True):
                all_queries[promql.CUSTOM_PREFIX + name] = text
                custom[name] = value
                if why:
                    notes.append(f"custom metric {name}: {why}")
        return RawWindow(
            stable=arm(stable),
            canary=arm(canary),
            window_seconds=window,
            custom=custom,
            queries=all_queries,
            notes=tuple(notes),
        )
