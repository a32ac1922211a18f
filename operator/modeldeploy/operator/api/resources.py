"""The two kinds as whole objects: apiVersion, kind, metadata, spec, status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .base import API_VERSION, ObjectMeta
from .policy import RolloutPolicySpec
from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus

MODELDEPLOYMENT_KIND = "ModelDeployment"
MODELDEPLOYMENT_PLURAL = "modeldeployments"
ROLLOUTPOLICY_KIND = "RolloutPolicy"
ROLLOUTPOLICY_PLURAL = "rolloutpolicies"


class _Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class ModelDeployment(_Object):
    """A model served behind one endpoint, with judged rollouts of new versions."""

    kind: str = MODELDEPLOYMENT_KIND
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> ModelDeployment:
        """Build from the API server's JSON, ignoring metadata this model does not type."""
        return cls.model_validate(obj)


class RolloutPolicy(_Object):
    """Cluster-wide defaults and bounds per tier that ModelDeployments inherit and may only tighten."""

    kind: str = ROLLOUTPOLICY_KIND
    spec: RolloutPolicySpec

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> RolloutPolicy:
        """Build from the API server's JSON."""
        return cls.model_validate(obj)
