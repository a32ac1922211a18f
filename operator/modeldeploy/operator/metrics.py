"""The operator's own Prometheus metrics (served on `--metrics-port`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on `port` in a background thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)


CONDITION_STATUSES = ("True", "False", "Unknown")


def set_conditions(namespace: str, name: str, conditions: Iterable[tuple[str, str]]) -> None:
    """Set the condition gauge from (type, status) pairs: 1 for the current status, 0 for the others."""
    for ctype, current in conditions:
        for status in CONDITION_STATUSES:
            CONDITION.labels(namespace, name, ctype, status).set(1 if status == current else 0)


PER_OBJECT = (
    (CANARY_WEIGHT, ("kind",)),
    (CONDITION, ("type", "status")),
    (ROLLOUTS, ("result",)),
    (ANALYSIS_VERDICTS, ("verdict",)),
    (ROLLBACKS, ("reason",)),
    (INFO, ("owner", "tier")),
)
"""Every metric labelled (namespace, name, ...) with its other labels, in order: `forget` drops them all."""


def forget(namespace: str, name: str) -> None:
    """Drop every series of a deleted ModelDeployment, whatever its other labels' values."""
    for metric, others in PER_OBJECT:
        found = {
            tuple(sample.labels[k] for k in others)
            for family in metric.collect()
            for sample in family.samples
            if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name
        }
        for values in found:
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name, *values)


def set_info(namespace: str, name: str, owner: str, tier: int) -> None:
    """The object's info series, the only one for it (a changed owner or tier replaces the old series)."""
    for family in INFO.collect():
        for sample in family.samples:
            labels = sample.labels
            mine = labels.get("namespace") == namespace and labels.get("name") == name
            if mine and (labels.get("owner"), labels.get("tier")) != (owner, str(tier)):
                with contextlib.suppress(KeyError):
                    INFO.remove(namespace, name, labels["owner"], labels["tier"])
    INFO.labels(namespace, name, owner, str(tier)).set(1)
