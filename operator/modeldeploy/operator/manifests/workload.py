"""The pods' side: a Deployment per revision, its ServiceAccount, autoscalers and disruption budget (pure)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from modeldeploy.runtime import contract

from ..api.resources import ModelDeployment
from ..revision import runtime_image
from .names import (
    ANNOTATION_LINEAGE,
    ANNOTATION_MODEL_URI,
    ANNOTATION_SHA256,
    CACHE_DIR,
    CONTAINER,
    LABEL_MODEL,
    LABEL_MODEL_VERSION,
    LABEL_REVISION,
    LABEL_SERVING,
    PORT,
    PORT_NAME,
    RUNTIME_UID,
    deployment_name,
    instance_labels,
    instance_selector,
    label_value,
    object_meta,
    revision_selector,
    service_account_name,
)

POD_INFO_DIR = "/etc/modeldeploy/pod"
"""Where the runtime finds its pod's labels and annotations (a downward-API volume)."""


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
        {"name": contract.ENV_POD_INFO, "value": POD_INFO_DIR},
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
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "podinfo", "mountPath": POD_INFO_DIR, "readOnly": True},
        ],
    }
    resources = spec.serving.resources
    if resources is not None and (resources.requests or resources.limits):
        container["resources"] = {k: v for k, v in resources.wire().items() if v}
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {
            # the pod's labels (track, serving) and annotations (mirror) as files the runtime follows
            "name": "podinfo",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]
            },
        },
    ]
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
            **object_meta(md, deployment_name(name, revision), revision_labels(md, revision)),
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


def service_account(md: ModelDeployment) -> dict[str, Any]:
    """The runtime's own identity: no API access, no token mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(md, service_account_name(md.metadata.name)),
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
        "metadata": object_meta(md, autoscaler_name(md.metadata.name, track)),
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
        "metadata": object_meta(md, md.metadata.name),
        "spec": {
            "maxUnavailable": pdb.max_unavailable,
            "selector": {"matchLabels": {**instance_selector(md.metadata.name), LABEL_SERVING: "true"}},
        },
    }


# ------------------------------------------------------------------------------ Gateway API route
