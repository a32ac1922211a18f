"""Names, labels and metadata every child shares (pure)."""

from __future__ import annotations

import re
from typing import Any

from modeldeploy.runtime import contract

from ..api.resources import ModelDeployment

FIELD_MANAGER = "modeldeploy"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_REVISION = "modeldeploy.io/revision"
LABEL_MODEL = "modeldeploy.io/model"
LABEL_MODEL_VERSION = "modeldeploy.io/model-version"
LABEL_SERVING = "modeldeploy.io/serving"
LABEL_OWNER = "modeldeploy.io/owner"
"""`spec.owner`, on every child object but the pods (changing it must not restart them)."""
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


def object_meta(md: ModelDeployment, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": {**instance_labels(md), LABEL_OWNER: label_value(md.spec.owner), **(labels or {})},
        "ownerReferences": [owner_reference(md)],
    }
