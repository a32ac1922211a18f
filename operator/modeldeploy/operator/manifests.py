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

import re
from typing import Any
from urllib.parse import urlparse

from modeldeploy.runtime import contract

from .api.resources import ModelDeployment
from .api.spec import GatewayAPIRouting
from .revision import runtime_image

FIELD_MANAGER = "modeldeploy"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_REVISION = "modeldeploy.io/revision"
LABEL_MODEL = "modeldeploy.io/model"
LABEL_MODEL_VERSION = "modeldeploy.io/model-version"
LABEL_SERVING = "modeldeploy.io/serving"
APP_NAME = "modeldeploy-runtime"
ANNOTATION_SHA256 = "modeldeploy.io/sha256"
ANNOTATION_MODEL_URI = "modeldeploy.io/model-uri"
ANNOTATION_LINEAGE = {
    "dataset_version": "modeldeploy.io/dataset-version",
    "code_commit": "modeldeploy.io/code-commit",
    "training_run": "modeldeploy.io/training-run",
}
CONTAINER = "runtime"
PORT = contract.DEFAULT_PORT
PORT_NAME = contract.DEFAULT_CONTAINER_PORT_NAME
RUNTIME_UID = 65532
CACHE_DIR = "/tmp/modeldeploy-cache"  # noqa: S108 - an emptyDir mounted at /tmp, the only writable path


def deployment_name(name: str, revision: str) -> str:
    return f"{name}-{revision}"


def stable_service_name(name: str) -> str:
    return f"{name}-stable"


def canary_service_name(name: str) -> str:
    return f"{name}-canary"


def service_account_name(name: str) -> str:
    return f"{name}-runtime"


def endpoint(name: str, namespace: str) -> str:
    """The model's stable endpoint inside the cluster."""
    return f"http://{name}.{namespace}.svc:{PORT}"


def label_value(text: str) -> str:
    """`text` made a valid label value: at most 63 of [A-Za-z0-9_.-], starting and ending alphanumeric."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def instance_labels(md: ModelDeployment) -> dict[str, str]:
    """Labels every child carries; `app.kubernetes.io/instance` selects all of one ModelDeployment's objects."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: md.metadata.name,
        LABEL_MANAGED_BY: FIELD_MANAGER,
        LABEL_PART_OF: "modeldeploy",
    }


def instance_selector(name: str) -> dict[str, str]:
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name}


def revision_selector(name: str, revision: str) -> dict[str, str]:
    return {**instance_selector(name), LABEL_REVISION: revision}


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": md.api_version,
        "kind": md.kind,
        "name": md.metadata.name,
        "uid": md.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(md: ModelDeployment, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": {**instance_labels(md), **(labels or {})},
        "ownerReferences": [owner_reference(md)],
    }


def _env(md: ModelDeployment, revision: str) -> list[dict[str, Any]]:
    spec = md.spec
    env: list[dict[str, Any]] = [
        {"name": contract.ENV_MODEL_NAME, "value": spec.model.name},
        {"name": contract.ENV_MODEL_VERSION, "value": spec.model.version},
        {"name": contract.ENV_REVISION, "value": revision},
        {"name": contract.ENV_MODEL_URI, "value": spec.model.uri},
        {"name": contract.ENV_MODEL_SHA256, "value": spec.model.sha256},
        {"name": contract.ENV_HOST, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": contract.ENV_PORT, "value": str(PORT)},
        {"name": contract.ENV_CACHE_DIR, "value": CACHE_DIR},
        {"name": contract.ENV_PVC_ROOT, "value": contract.DEFAULT_PVC_ROOT},
    ]
    serving = spec.serving
    if serving.threads is not None:
        env.append({"name": contract.ENV_INTRA_OP_THREADS, "value": str(serving.threads)})
    if serving.batching is not None:
        env.append({"name": contract.ENV_MAX_BATCH_SIZE, "value": str(serving.batching.max_batch_size)})
        env.append({"name": contract.ENV_MAX_DELAY_MS, "value": f"{serving.batching.max_delay_ms:g}"})
    if serving.prediction_metrics is not None:
        if serving.prediction_metrics.output:
            env.append({"name": contract.ENV_PREDICTION_OUTPUT, "value": serving.prediction_metrics.output})
        env.append({"name": contract.ENV_PREDICTION_KIND, "value": serving.prediction_metrics.kind})
    if serving.latency_buckets_ms:
        edges = ",".join(f"{e / 1000:.9g}" for e in serving.latency_buckets_ms)
        env.append({"name": contract.ENV_LATENCY_BUCKETS, "value": edges})
    return env


def _pvc_claim(uri: str) -> str | None:
    if not uri.startswith("pvc://"):
        return None
    return urlparse(uri).netloc or None


def revision_annotations(md: ModelDeployment) -> dict[str, str]:
    """Digest, URI and lineage, on the Deployment and on its pods."""
    model = md.spec.model
    out = {ANNOTATION_SHA256: model.sha256, ANNOTATION_MODEL_URI: model.uri}
    if model.lineage is not None:
        for field, key in ANNOTATION_LINEAGE.items():
            value = getattr(model.lineage, field)
            if value:
                out[key] = value
    return out


def revision_labels(md: ModelDeployment, revision: str) -> dict[str, str]:
    return {
        LABEL_REVISION: revision,
        LABEL_MODEL: label_value(md.spec.model.name),
        LABEL_MODEL_VERSION: label_value(md.spec.model.version),
    }


def deployment(md: ModelDeployment, revision: str, replicas: int | None) -> dict[str, Any]:
    """The Deployment `<name>-<revision>` running the runtime for the current spec's model.

    `replicas` None leaves the count to the HorizontalPodAutoscaler (the field is then not applied).
    """
    spec = md.spec
    name = md.metadata.name
    pod_labels = {**instance_labels(md), **revision_labels(md, revision), LABEL_SERVING: "true"}
    pod_annotations = {
        **revision_annotations(md),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": contract.METRICS_PATH,
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": runtime_image(spec),
        "imagePullPolicy": "IfNotPresent",
        "env": _env(md, revision),
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": contract.HEALTH_READY_PATH, "port": PORT_NAME},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": contract.HEALTH_LIVE_PATH, "port": PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    resources = spec.serving.resources
    if resources is not None and (resources.requests or resources.limits):
        container["resources"] = {k: v for k, v in resources.wire().items() if v}
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    claim = _pvc_claim(spec.model.uri)
    if claim:
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        container["volumeMounts"].append(
            {"name": "model", "mountPath": f"{contract.DEFAULT_PVC_ROOT}/{claim}", "readOnly": True}
        )
    if spec.model.credentials_secret_ref is not None:
        container["envFrom"] = [{"secretRef": {"name": spec.model.credentials_secret_ref.name}}]
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_metadata(md, deployment_name(name, revision), revision_labels(md, revision)),
            "annotations": revision_annotations(md),
        },
        "spec": {
            "selector": {"matchLabels": revision_selector(name, revision)},
            "revisionHistoryLimit": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": {
                    "serviceAccountName": service_account_name(name),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": int(contract.DEFAULT_GRACE_PERIOD_S) + 5,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUNTIME_UID,
                        "fsGroup": RUNTIME_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def _service(md: ModelDeployment, name: str, selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md, name, labels),
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


def service_account(md: ModelDeployment) -> dict[str, Any]:
    """The runtime's own identity: no API access, no token mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(md, service_account_name(md.metadata.name)),
        "automountServiceAccountToken": False,
    }


def autoscaler_name(name: str, track: str = "stable") -> str:
    """`<name>` for stable's HorizontalPodAutoscaler, `<name>-canary` for the canary's."""
    return name if track == "stable" else f"{name}-{track}"


def autoscaler(md: ModelDeployment, revision: str, track: str = "stable") -> dict[str, Any] | None:
    """An autoscaling/v2 HPA on a revision (`autoscaler_name`), when `serving.autoscaling` is set."""
    scaling = md.spec.serving.autoscaling
    if scaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(md, autoscaler_name(md.metadata.name, track)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(md.metadata.name, revision),
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization_percent},
                    },
                }
            ],
        },
    }


def disruption_budget(md: ModelDeployment) -> dict[str, Any] | None:
    """A policy/v1 PDB `<name>` over the serving pods, when `serving.podDisruptionBudget` is set."""
    pdb = md.spec.serving.pod_disruption_budget
    if pdb is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(md, md.metadata.name),
        "spec": {
            "maxUnavailable": pdb.max_unavailable,
            "selector": {"matchLabels": {**instance_selector(md.metadata.name), LABEL_SERVING: "true"}},
        },
    }


# ------------------------------------------------------------------------------ Gateway API route

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
        "metadata": _metadata(md, routing.http_route),
        "spec": spec,
    }


def route_weights(route: dict[str, Any]) -> dict[str, int]:
    """Service name -> weight of an HTTPRoute's first rule (what `http_route` wrote, read back)."""
    rules = (route.get("spec") or {}).get("rules") or [{}]
    return {str(b.get("name")): int(b.get("weight", 1)) for b in rules[0].get("backendRefs") or []}
