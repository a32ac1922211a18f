"""The children of a ModelDeployment, as plain Kubernetes objects (pure: no I/O).

Names are deterministic: per revision a Deployment `<name>-<revision>`; a Service `<name>` (the
model's endpoint), Services `<name>-stable` and `<name>-canary` (one per track, selecting by
revision), a ServiceAccount `<name>-runtime`, and optionally a HorizontalPodAutoscaler `<name>`
(on the stable revision) and a PodDisruptionBudget `<name>`.

The track (stable/canary) is never in a pod template: promotion only changes which revision the
track Services and the status name, so it restarts nothing. The endpoint Service selects every
pod of the instance labelled `modeldeploy.io/serving=true`; every pod template carries that label,
and the operator relabels the pods of a revision that must stop taking traffic (a rolled-back
canary, an old stable kept warm for its scale-down delay) to `false`, which takes them out of the
endpoint at once without restarting them. The label is fail-open: while the operator is down,
new pods of every revision serve.

Under `trafficRouting.gatewayAPI` the split is an HTTPRoute's backendRef weights (see
`http_route`), so the endpoint Service selects the stable revision only: a client that calls it
directly, bypassing the Gateway, never lands on the canary.
"""

from __future__ import annotations

from .names import (
    ANNOTATION_LINEAGE,
    ANNOTATION_MODEL_URI,
    ANNOTATION_SHA256,
    APP_NAME,
    CACHE_DIR,
    CONTAINER,
    FIELD_MANAGER,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_MODEL_VERSION,
    LABEL_NAME,
    LABEL_OWNER,
    LABEL_PART_OF,
    LABEL_REVISION,
    LABEL_SERVING,
    PORT,
    PORT_NAME,
    RUNTIME_UID,
    canary_service_name,
    deployment_name,
    endpoint,
    instance_labels,
    instance_selector,
    label_value,
    object_meta,
    owner_reference,
    revision_selector,
    service_account_name,
    stable_service_name,
)
from .network import (
    GATEWAY_GROUP,
    HTTPROUTE_API_VERSION,
    HTTPROUTE_PLURAL,
    ROUTE_WEIGHT_TOTAL,
    gateway_routing,
    http_route,
    route_path_prefix,
    route_weights,
    services,
)
from .workload import (
    autoscaler,
    autoscaler_name,
    deployment,
    disruption_budget,
    revision_annotations,
    revision_labels,
    service_account,
)

__all__ = [
    "ANNOTATION_LINEAGE",
    "ANNOTATION_MODEL_URI",
    "ANNOTATION_SHA256",
    "APP_NAME",
    "CACHE_DIR",
    "CONTAINER",
    "FIELD_MANAGER",
    "GATEWAY_GROUP",
    "HTTPROUTE_API_VERSION",
    "HTTPROUTE_PLURAL",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_MODEL",
    "LABEL_MODEL_VERSION",
    "LABEL_NAME",
    "LABEL_OWNER",
    "LABEL_PART_OF",
    "LABEL_REVISION",
    "LABEL_SERVING",
    "PORT",
    "PORT_NAME",
    "ROUTE_WEIGHT_TOTAL",
    "RUNTIME_UID",
    "autoscaler",
    "autoscaler_name",
    "canary_service_name",
    "deployment",
    "deployment_name",
    "disruption_budget",
    "endpoint",
    "gateway_routing",
    "http_route",
    "instance_labels",
    "instance_selector",
    "label_value",
    "object_meta",
    "owner_reference",
    "revision_annotations",
    "revision_labels",
    "revision_selector",
    "route_path_prefix",
    "route_weights",
    "service_account",
    "service_account_name",
    "services",
    "stable_service_name",
]
