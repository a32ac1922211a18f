"""The operator's own Prometheus metrics (served on `--metrics-port`)."""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_SECONDS = Histogram(
    "modeldeploy_operator_reconcile_duration_seconds",
    "Time of one reconcile of a ModelDeployment (read, analyse, plan, apply, write status).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "modeldeploy_operator_reconcile_errors_total",
    "Reconciles that raised, by the kind of error.",
    ["error"],
    registry=REGISTRY,
)
ROLLOUTS = Counter(
    "modeldeploy_operator_rollouts_total",
    "Finished rollouts by result: Promoted, Deployed, or the rollback reason (AnalysisFailed, Aborted, ...).",
    ["namespace", "name", "result"],
    registry=REGISTRY,
)
CANARY_WEIGHT = Gauge(
    "modeldeploy_operator_canary_weight_percent",
    "The canary's share of traffic: requested by the current step, and effective (from Ready pods).",
    ["namespace", "name", "kind"],
    registry=REGISTRY,
)
ROLLBACK_SECONDS = Histogram(
    "modeldeploy_operator_rollback_duration_seconds",
    "From the start of the reconcile that decided a rollback to the canary's pods out of the endpoint.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ANALYSIS_VERDICTS = Counter(
    "modeldeploy_operator_analysis_verdicts_total",
    "Analysis checks by verdict: Pass, Fail or Inconclusive.",
    ["namespace", "name", "verdict"],
    registry=REGISTRY,
)
ROLLBACKS = Counter(
    "modeldeploy_operator_rollbacks_total",
    "Canaries taken off traffic, by reason: AnalysisFailed, Aborted, DigestMismatch, CanaryFailed.",
    ["namespace", "name", "reason"],
    registry=REGISTRY,
)
ROLLBACK_FROM_FIRST_FAILURE = Histogram(
    "modeldeploy_operator_rollback_seconds",
    "From the first failing analysis check of the failure streak that rolled a canary back (its"
    " status.analysis.firstFailureAt) to the apply and relabel that set the canary's weight to zero.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    registry=REGISTRY,
)
CONDITION = Gauge(
    "modeldeploy_operator_condition",
    "1 for the current status (True, False, Unknown) of each condition of a ModelDeployment, 0 for the others.",
    ["namespace", "name", "type", "status"],
    registry=REGISTRY,
)
MANAGED = Gauge(
    "modeldeploy_operator_modeldeployments",
    "ModelDeployments this operator reconciles.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "modeldeploy_operator_api_requests_total",
    "Requests the operator's client sent to the API server (kopf's watches not included), by verb and resource.",
    ["verb", "resource"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "modeldeploy_operator_event_loop_lag_seconds",
    "How late a 250 ms timer fired on the operator's event loop: time the loop spent busy elsewhere.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
LEADER = Gauge(
    "modeldeploy_operator_leader",
    "1 while this replica holds the leader Lease (or runs without leader election), else 0.",
    registry=REGISTRY,
)
INFO = Gauge(
    "modeldeploy_modeldeployment_info",
    "1 for each ModelDeployment, labelled with its owner and tier (join on namespace and name).",
    ["namespace", "name", "owner", "tier"],
    registry=REGISTRY,
)


class GCPauses(Collector):
    """`modeldeploy_operator_gc_pause_seconds`: how long each cyclic garbage collection stopped the process,
    by generation (a full collection walks every object, so its pause grows with the heap and shows as
    event-loop lag). Counted in plain lists from a `gc.callbacks` hook, which may run inside any allocation,
    even one made while a prometheus-client lock is held: taking a lock there could deadlock."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

    def __init__(self) -> None:
        self.counts = [[0] * (len(self.BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self.started = 0.0

    def hook(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took, gen = time.perf_counter() - self.started, info["generation"]
        self.sums[gen] += took
        self.counts[gen][bisect.bisect_left(self.BUCKETS, took)] += 1

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "modeldeploy_operator_gc_pause_seconds",
            "How long each cyclic garbage collection paused the operator, by generation.",
            labels=["generation"],
        )
        for gen in range(3):
            cumulative = list(itertools.accumulate(self.counts[gen]))
            buckets = [(str(b), c) for b, c in zip(self.BUCKETS, cumulative, strict=False)]
            family.add_metric([str(gen)], [*buckets, ("+Inf", cumulative[-1])], self.sums[gen])
        yield family


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on `port` in a background thread, and start counting GC pauses."""
    pauses = GCPauses()
    gc.callbacks.append(pauses.hook)
    REGISTRY.register(pauses)
    start_http_server(port, addr=addr, registry=REGISTRY)


CONDITION_STATUSES = ("True", "False", "Unknown")

PerObject = Counter | Gauge
Labelled = tuple[PerObject, tuple[str, ...]]

_series: dict[tuple[str, str], set[Labelled]] = {}
"""Every series of each ModelDeployment, by (namespace, name): what `forget` drops and `set_info` replaces
without scanning the registry (a scan per pass is quadratic in the number of objects: at 1,000 objects it
held the event loop for tens of milliseconds per pass)."""


def series(metric: PerObject, namespace: str, name: str, *others: str) -> Any:
    """`metric.labels(namespace, name, *others)`, remembered for `forget`."""
    _series.setdefault((namespace, name), set()).add((metric, others))
    return metric.labels(namespace, name, *others)


def set_conditions(namespace: str, name: str, conditions: Iterable[tuple[str, str]]) -> None:
    """Set the condition gauge from (type, status) pairs: 1 for the current status, 0 for the others."""
    for ctype, current in conditions:
        for status in CONDITION_STATUSES:
            series(CONDITION, namespace, name, ctype, status).set(1 if status == current else 0)


def forget(namespace: str, name: str) -> None:
    """Drop every series of a deleted ModelDeployment, whatever its other labels' values."""
    for metric, others in _series.pop((namespace, name), set()):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, name, *others)


def set_info(namespace: str, name: str, owner: str, tier: int) -> None:
    """The object's info series, the only one for it (a changed owner or tier replaces the old series)."""
    mine = _series.setdefault((namespace, name), set())
    for old in [s for s in mine if s[0] is INFO and s[1] != (owner, str(tier))]:
        mine.discard(old)
        with contextlib.suppress(KeyError):
            INFO.remove(namespace, name, *old[1])
    series(INFO, namespace, name, owner, str(tier)).set(1)
