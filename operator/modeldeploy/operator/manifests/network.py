"""The traffic's side: the endpoint and track Services, and the HTTPRoute under gatewayAPI routing (pure)."""

from __future__ import annotations

from typing import Any

from ..api.resources import ModelDeployment
from ..api.spec import GatewayAPIRouting
from .names import (
    LABEL_REVISION,
    LABEL_SERVING,
    PORT,
    PORT_NAME,
    canary_service_name,
    instance_selector,
    object_meta,
    revision_selector,
    stable_service_name,
)


def _service(md: ModelDeployment, name: str, selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(md, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def gateway_routing(md: ModelDeployment) -> GatewayAPIRouting | None:
    """The spec's `trafficRouting.gatewayAPI`, or None under replica-ratio routing."""
    routing = md.spec.rollout.traffic_routing
    return routing.gateway_api if routing is not None else None


def services(md: ModelDeployment, stable_revision: str, canary_revision: str | None) -> list[dict[str, Any]]:
    """The endpoint Service and one Service per track.

    `<name>-canary` selects the stable revision while there is no canary, so it always answers.
    Under gatewayAPI routing the endpoint Service selects only the stable revision's serving pods
    (the HTTPRoute splits traffic; the canary runs at full size beside stable).
    """
    name = md.metadata.name
    endpoint_selector = {**instance_selector(name), LABEL_SERVING: "true"}
    if gateway_routing(md) is not None:
        endpoint_selector[LABEL_REVISION] = stable_revision
    return [
        _service(md, name, endpoint_selector, {}),
        _service(
            md,
            stable_service_name(name),
            revision_selector(name, stable_revision),
            {"modeldeploy.io/track": "stable"},
        ),
        _service(
            md,
            canary_service_name(name),
            revision_selector(name, canary_revision or stable_revision),
            {"modeldeploy.io/track": "canary"},
        ),
    ]


GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_API_VERSION = f"{GATEWAY_GROUP}/v1"
HTTPROUTE_PLURAL = "httproutes"
ROUTE_WEIGHT_TOTAL = 100
"""backendRef weights are percentages: stable gets 100 - w, the canary w (Gateway API allows up to 10^6)."""


def route_path_prefix(md: ModelDeployment) -> str:
    """The Open Inference Protocol's per-model paths (`/v2/models/<name>[/versions/<v>]/infer`, `/ready`,
    metadata): what the route matches, so several models can share one Gateway and hostname."""
    return f"/v2/models/{md.spec.model.name}"


def http_route(md: ModelDeployment, canary_weight: int) -> dict[str, Any] | None:
    """The HTTPRoute `spec.rollout.trafficRouting.gatewayAPI.httpRoute`, sending `canary_weight`% of the
    model's requests to `<name>-canary` and the rest to `<name>-stable`; None under replica-ratio routing.

    The operator owns the route (Flagger's pattern, not the Argo Rollouts plugin's edit of a
    user-owned route): it creates it, sets an owner reference so it goes with the ModelDeployment,
    and server-side applies it on every reconcile with its field manager, forcing conflicts. So
    nothing in Git carries weights that a GitOps tool must be told to ignore, a rollback's zero
    canary weight is one apply with no read-modify-write race against another writer, and an edit
    of the weights by hand is undone at the next reconcile. Server-side apply claims only the
    fields sent here (`parentRefs` when `gateway` is set, and `rules`): another field manager may
    own `spec.hostnames`, and `parentRefs` when `gateway` is unset (a mesh's Service parent, say).
    What this gives up: the rule's matches and filters are the operator's (one rule matching
    `route_path_prefix`), not the user's.
    """
    routing = gateway_routing(md)
    if routing is None:
        return None
    name = md.metadata.name
    canary_weight = max(0, min(ROUTE_WEIGHT_TOTAL, canary_weight))

    def backend(service: str, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": service, "port": PORT, "weight": weight}

    spec: dict[str, Any] = {
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": route_path_prefix(md)}}],
                "backendRefs": [
                    backend(stable_service_name(name), ROUTE_WEIGHT_TOTAL - canary_weight),
                    backend(canary_service_name(name), canary_weight),
                ],
            }
        ]
    }
    if routing.gateway is not None:
        parent: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": routing.gateway.name}
        if routing.gateway.namespace:
            parent["namespace"] = routing.gateway.namespace
        spec["parentRefs"] = [parent]
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": object_meta(md, routing.http_route),
        "spec": spec,
    }


def route_weights(route: dict[str, Any]) -> dict[str, int]:
    """Service name -> weight of an HTTPRoute's first rule (what `http_route` wrote, read back)."""
    rules = (route.get("spec") or {}).get("rules") or [{}]
    return {str(b.get("name")): int(b.get("weight", 1)) for b in rules[0].get("backendRefs") or []}
