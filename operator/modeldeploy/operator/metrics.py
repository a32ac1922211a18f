"""The operator's own Prometheus metrics (served on `--metrics-port`)."""

from __future__ import annotations

import contextlib

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
MANAGED = Gauge(
    "modeldeploy_operator_modeldeployments",
    "ModelDeployments this operator reconciles.",
    registry=REGISTRY,
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on `port` in a background thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted ModelDeployment's weight series."""
    for kind in ("requested", "effective"):
        with contextlib.suppress(KeyError):
            CANARY_WEIGHT.remove(namespace, name, kind)
