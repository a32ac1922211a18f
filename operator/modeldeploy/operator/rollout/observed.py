"""What a tick reads from the cluster, by revision (the planner's input; `observe` builds it from API objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..contract import ContractReading


@dataclass(frozen=True)
class RevisionState:
    """One revision's Deployment as observed."""

    revision: str
    replicas: int = 0
    """spec.replicas."""
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    up_to_date: bool = True
    """status.observedGeneration has caught up with metadata.generation."""


@dataclass(frozen=True)
class PodProblem:
    """A revision whose pods cannot serve, read from their container statuses."""

    reason: Literal["DigestMismatch", "CanaryFailed"]
    message: str


@dataclass(frozen=True)
class Observed:
    """What the cluster holds for one ModelDeployment, by revision."""

    deployments: Mapping[str, RevisionState] = field(default_factory=dict)
    problems: Mapping[str, PodProblem] = field(default_factory=dict)
    gateway_api: bool | None = None
    """False when the cluster does not serve HTTPRoutes (gateway.networking.k8s.io/v1): the edge
    learns it from a 404 to the route's apply and plans again. None: not known to be missing."""
    contract: ContractReading | None = None
    """The canary's model contract against stable's, read this tick from one Ready pod of each (only
    while the canary's status has no checked contract); None when not read."""
    children: frozenset[tuple[str, str]] = frozenset()
    """(kind, name) of the optional children that exist (HorizontalPodAutoscaler, PodDisruptionBudget):
    one the spec no longer asks for is deleted."""
