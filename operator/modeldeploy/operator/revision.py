"""The revision: a short, deterministic, DNS-safe hash of what makes a ModelDeployment's pods differ.

What goes in: `spec.model` (name, version, uri, sha256, lineage, credentials), the parts of
`spec.serving` that end up in the pod template (resources, batching, threads, prediction metrics,
image) and the runtime image actually used (`serving.image` or the contract's `DEFAULT_IMAGE`, so a
new operator release with a new default image is a new revision).

What stays out, because it never changes a pod: `serving.replicas`, `serving.autoscaling` and
`serving.podDisruptionBudget` (applied to the serving revisions in place), everything under
`spec.rollout` (steps, analysis, routing), `tier`, `owner`, `documentation` and `paused`. Changing
only those never starts a rollout and never restarts a pod.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.runtime.contract import DEFAULT_IMAGE

from .api.spec import ModelDeploymentSpec

REVISION_LENGTH = 10
"""Hex characters kept from the SHA-256 (40 bits: a collision among one model's revisions is not a concern)."""

_NOT_IN_POD = {"replicas", "autoscaling", "pod_disruption_budget"}


def runtime_image(spec: ModelDeploymentSpec) -> str:
    """The runtime image a revision's pods run."""
    return spec.serving.image or DEFAULT_IMAGE


def revision_inputs(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """Exactly what the revision hashes, in wire form (camelCase, unset fields left out)."""
    serving = spec.serving.model_dump(by_alias=True, exclude_none=True, mode="json", exclude=_NOT_IN_POD)
    serving["image"] = runtime_image(spec)
    return {"model": spec.model.wire(), "serving": serving}


def revision_of(spec: ModelDeploymentSpec) -> str:
    """The revision hash: lowercase hex, `REVISION_LENGTH` characters, stable across Python versions."""
    canonical = json.dumps(revision_inputs(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]
