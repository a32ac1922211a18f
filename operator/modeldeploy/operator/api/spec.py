"""ModelDeployment's spec: the model, how it is served, and how a new version is rolled out."""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .analysis import Analysis
from .base import ApiModel, CelRule, Duration, cel_rules, count_set

URI_SCHEMES = ("file://", "https://", "pvc://", "s3://")
MAX_STEPS = 32

# --- the cross-field rules, each once as CEL (for the API server) and once as a validator below
SHA256_HEX = CelRule("self.sha256.matches('^[a-f0-9]{64}$')", "sha256 must be 64 lowercase hex characters")
URI_SCHEME = CelRule(
    " || ".join(f"self.uri.startsWith('{s}')" for s in URI_SCHEMES),
    "uri must start with file://, https://, pvc:// or s3://",
)
REPLICAS_OR_AUTOSCALING = CelRule(
    "!(has(self.replicas) && has(self.autoscaling))", "set serving.replicas or serving.autoscaling, not both"
)
MIN_LE_MAX_REPLICAS = CelRule("self.minReplicas <= self.maxReplicas", "minReplicas must be <= maxReplicas")
STEP_ONE_ACTION = CelRule(
    "[has(self.setWeight), has(self.pause), has(self.approval), has(self.shadow), has(self.analysis)]"
    ".filter(x, x).size() == 1",
    "each step must have exactly one of setWeight, pause, approval, shadow, analysis",
)
_W = "self.filter(s, has(s.setWeight))"
WEIGHTS_NOT_DECREASING = CelRule(
    f"[{', '.join(str(i) for i in range(MAX_STEPS - 1))}]"
    f".all(i, i + 1 >= size({_W}) || {_W}[i].setWeight <= {_W}[i + 1].setWeight)",
    "setWeight steps must not decrease",
)
ROUTING_ONE_OF = CelRule(
    "[has(self.replicaRatio), has(self.gatewayAPI)].filter(x, x).size() == 1",
    "trafficRouting must have exactly one of replicaRatio, gatewayAPI",
)
BUCKETS_INCREASING = CelRule(
    "!has(self.latencyBucketsMs) || self.latencyBucketsMs.all(e, e > 0.0)"
    " && [" + ", ".join(str(i) for i in range(63)) + "].all(i, i + 1 >= size(self.latencyBucketsMs)"
    " || self.latencyBucketsMs[i] < self.latencyBucketsMs[i + 1])",
    "serving.latencyBucketsMs must be positive and increasing",
)


def check_weights_not_decreasing(steps: list[Step] | None) -> None:
    """The pydantic twin of WEIGHTS_NOT_DECREASING, shared by a rollout's steps and a policy's default steps."""
    weights = [s.set_weight for s in steps or () if s.set_weight is not None]
    if any(a > b for a, b in itertools.pairwise(weights)):
        raise ValueError(WEIGHTS_NOT_DECREASING.message)


# ---------------------------------------------------------------------------------------------- model


class Documentation(ApiModel):
    """Where people find out what this model is and what to do when it misbehaves."""

    model_card_url: str | None = Field(default=None, max_length=2048)
    """Link to the model card."""
    runbook_url: str | None = Field(default=None, max_length=2048)
    """Link to the runbook an on-call engineer follows when this model's rollout fails."""
    dashboard_url: str | None = Field(default=None, max_length=2048)
    """Link to the model's dashboard."""


class Lineage(ApiModel):
    """Where the model came from; copied to the pods as annotations."""

    dataset_version: str | None = Field(default=None, max_length=256)
    """Version of the training data set."""
    code_commit: str | None = Field(default=None, max_length=256)
    """Commit of the training code."""
    training_run: str | None = Field(default=None, max_length=256)
    """Identifier of the training run (an experiment tracker's run id, say)."""


class SecretRef(ApiModel):
    """A Secret in the ModelDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""


class ModelSpec(ApiModel):
    """The model to serve. Changing anything here starts a rollout of a new revision."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(SHA256_HEX, URI_SCHEME)}

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    """Name of the model on the inference protocol (`/v2/models/<name>`)."""
    version: str = Field(min_length=1, max_length=63)
    """Version of the model, shown in status and on every metric."""
    uri: str = Field(min_length=8, max_length=2048)
    """Where the ONNX file is: file://, https://, pvc://<claim>/<path> or s3://<bucket>/<key>."""
    sha256: str = Field(min_length=64, max_length=64)
    """SHA-256 of the ONNX file in lowercase hex. A mismatch fails the revision; it never serves."""
    lineage: Lineage | None = None
    """Where the model came from."""
    credentials_secret_ref: SecretRef | None = None
    """Secret with credentials for https or s3 (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AUTHORIZATION)."""

    @model_validator(mode="after")
    def _rules(self) -> ModelSpec:
        if not re.fullmatch(r"[a-f0-9]{64}", self.sha256):
            raise ValueError(SHA256_HEX.message)
        if not self.uri.startswith(URI_SCHEMES):
            raise ValueError(URI_SCHEME.message)
        return self


# -------------------------------------------------------------------------------------------- serving


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for each revision's pods."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(MIN_LE_MAX_REPLICAS)}

    min_replicas: int = Field(default=1, ge=1, le=1000)
    """Fewest pods."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most pods."""
    target_cpu_utilization_percent: int = Field(default=70, ge=1, le=100)
    """Average CPU utilisation the autoscaler aims for."""

    @model_validator(mode="after")
    def _rules(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(MIN_LE_MAX_REPLICAS.message)
        return self


class Resources(ApiModel):
    """Compute resources of the runtime container, as in a Pod spec."""

    requests: dict[str, str] = Field(default_factory=dict)
    """Requested resources, e.g. {cpu: "500m", memory: 256Mi}."""
    limits: dict[str, str] = Field(default_factory=dict)
    """Resource limits, e.g. {memory: 512Mi}."""


class Batching(ApiModel):
    """Dynamic batching in the runtime: concurrent requests run as one batch."""

    max_batch_size: int = Field(default=8, ge=1, le=1024)
    """Largest batch; 1 turns batching off."""
    max_delay_ms: float = Field(default=2.0, ge=0, le=1000)
    """Longest a request waits for others to join its batch."""


class PredictionMetrics(ApiModel):
    """Which output the runtime summarises in its prediction-distribution metrics."""

    output: str | None = Field(default=None, max_length=256)
    """Output tensor to watch; the first output when unset."""
    kind: Literal["class", "score"] = "class"
    """`class`: count the argmax class of each row; `score`: histogram of a score in 0..1."""


class PodDisruptionBudget(ApiModel):
    """A PodDisruptionBudget for each revision's pods."""

    max_unavailable: int = Field(default=1, ge=0)
    """Pods of a revision that a voluntary disruption may take down at once."""


class ServingSpec(ApiModel):
    """How each revision is served. Changing anything here starts a rollout of a new revision."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(REPLICAS_OR_AUTOSCALING, BUCKETS_INCREASING)}

    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Pods per revision (1 when neither replicas nor autoscaling is set)."""
    autoscaling: Autoscaling | None = None
    """Autoscale each revision instead of a fixed replica count."""
    resources: Resources | None = None
    """Compute resources of the runtime container."""
    batching: Batching | None = None
    """Dynamic batching; off when unset."""
    image: str | None = Field(default=None, max_length=512)
    """Runtime image; the release's own runtime when unset."""
    threads: int | None = Field(default=None, ge=1, le=64)
    """ONNX Runtime intra-op threads per pod."""
    prediction_metrics: PredictionMetrics | None = None
    """What the runtime records of its predictions, for the behaviour checks."""
    latency_buckets_ms: list[Annotated[float, Field(description="A bucket's upper edge in milliseconds.")]] | None = (
        Field(default=None, min_length=1, max_length=64)
    )
    """Edges of the runtime's request-duration histogram in milliseconds, increasing; ten per decade (1, 1.25,
    1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k from 0.1 ms to 10 s) when unset. Put an edge at analysis.slo.latencyP99Ms."""
    pod_disruption_budget: PodDisruptionBudget | None = None
    """A PodDisruptionBudget per revision; none when unset."""

    @model_validator(mode="after")
    def _rules(self) -> ServingSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError(REPLICAS_OR_AUTOSCALING.message)
        edges = self.latency_buckets_ms or []
        if any(not 0 < e < math.inf for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(BUCKETS_INCREASING.message)
        return self

    @property
    def desired_replicas(self) -> int:
        """Pods a revision runs at full size."""
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas
        return 1 if self.replicas is None else self.replicas


# -------------------------------------------------------------------------------------------- rollout


class PolicyRef(ApiModel):
    """A cluster-scoped RolloutPolicy."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the RolloutPolicy."""


class PauseStep(ApiModel):
    """Hold the current weight, for a duration or until resumed."""

    duration: Duration | None = None
    """How long to hold; until `spec.paused` is set and cleared, or the promote annotation, when unset."""


class ApprovalStep(ApiModel):
    """Wait until someone annotates `modeldeploy.io/approve=<canary revision>`."""

    message: str | None = Field(default=None, max_length=1024)
    """What the approver should check, shown in the AwaitingApproval condition."""


class ShadowStep(ApiModel):
    """Run the canary on copies of live requests only: stable's pods answer, then mirror a share of their
    requests to it and compare both answers; the canary answers no live request. Judged by
    rollout.analysis (required) plus the agreement check; a failed shadow rolls back like a canary."""

    percent: int = Field(default=100, ge=1, le=100)
    """Share of stable's answered requests mirrored to the canary (copies past the runtime's mirror budget
    are dropped and counted, never compared)."""
    duration: Duration = "2m"
    """How long to mirror; the step passes after it on a passing check (never on no compared copies)."""
    min_agreement_percent: float | None = Field(default=None, ge=0, le=100)
    """Least share of compared copies on which both versions agree (equal argmax for a class output, within a
    tolerance for a score, exact otherwise; a candidate error disagrees); Fail when significantly below."""


class AnalysisStep(ApiModel):
    """Hold the current weight and run the analysis until it passes (or fails)."""

    duration: Duration | None = None
    """Run for at least this long; one passing check is enough when unset."""


class Step(ApiModel):
    """One step of a rollout: exactly one action."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(STEP_ONE_ACTION)}

    set_weight: int | None = Field(default=None, ge=0, le=100)
    """Send this percentage of traffic to the canary."""
    pause: PauseStep | None = None
    """Hold, for a duration or until resumed."""
    approval: ApprovalStep | None = None
    """Wait for a person's approval."""
    shadow: ShadowStep | None = None
    """Not built yet: refused (Stalled, InvalidSpec). Will mirror traffic to the canary and compare answers."""
    analysis: AnalysisStep | None = None
    """Hold until the analysis passes."""

    @model_validator(mode="after")
    def _rules(self) -> Step:
        if count_set(self.set_weight, self.pause, self.approval, self.shadow, self.analysis) != 1:
            raise ValueError(STEP_ONE_ACTION.message)
        return self

    @property
    def action(self) -> str:
        """The name of this step's action, as on the wire."""
        for name in ("setWeight", "pause", "approval", "shadow", "analysis"):
            if getattr(self, _SNAKE[name]) is not None:
                return name
        raise AssertionError("validated step has an action")


_SNAKE = {
    "setWeight": "set_weight",
    "pause": "pause",
    "approval": "approval",
    "shadow": "shadow",
    "analysis": "analysis",
}


class ReplicaRatioRouting(ApiModel):
    """Split traffic by the ratio of canary to stable pods behind one Service (coarse, needs no mesh)."""


class GatewayRef(ApiModel):
    """A Gateway API Gateway."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Gateway."""
    namespace: str | None = Field(default=None, max_length=63)
    """Its namespace; the ModelDeployment's when unset."""


class GatewayAPIRouting(ApiModel):
    """Exact weights on an HTTPRoute's backendRefs (stable and canary Services)."""

    http_route: str = Field(min_length=1, max_length=253)
    """Name of the HTTPRoute the operator manages (it creates it when absent)."""
    gateway: GatewayRef | None = None
    """Gateway the route attaches to."""


class TrafficRouting(ApiModel):
    """How traffic is split between stable and canary: exactly one."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(ROUTING_ONE_OF)}

    replica_ratio: ReplicaRatioRouting | None = None
    """Replica-ratio routing (the default)."""
    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    """Gateway API HTTPRoute weights."""

    @model_validator(mode="after")
    def _rules(self) -> TrafficRouting:
        if count_set(self.replica_ratio, self.gateway_api) != 1:
            raise ValueError(ROUTING_ONE_OF.message)
        return self


class RolloutSpec(ApiModel):
    """How a new revision replaces the stable one. Changing only this never restarts pods."""

    policy_ref: PolicyRef | None = None
    """RolloutPolicy to inherit from; the policy for this tier when unset."""
    steps: list[Step] | None = Field(
        default=None,
        max_length=MAX_STEPS,
        json_schema_extra=cel_rules(WEIGHTS_NOT_DECREASING),
    )
    """Steps of the canary; the policy's default steps when unset; promote once Ready when empty."""
    traffic_routing: TrafficRouting | None = None
    """How traffic is split; replica ratio when unset."""
    analysis: Analysis | None = None
    """Judging the canary; the policy's default analysis when unset."""
    progress_deadline: Duration | None = None
    """A step that makes no progress for this long stalls the rollout (ProgressDeadlineExceeded); the policy's
    progressDeadline, else 10m, when unset."""
    scale_down_delay: Duration = "30s"
    """How long a replaced or rolled-back revision stays up before it is scaled to zero."""
    allow_contract_change: bool = False
    """Allow a new version whose inputs or outputs differ from stable's."""

    @model_validator(mode="after")
    def _rules(self) -> RolloutSpec:
        check_weights_not_decreasing(self.steps)
        return self


class ModelDeploymentSpec(ApiModel):
    """Desired state of a ModelDeployment."""

    tier: int = Field(default=3, ge=1, le=3)
    """Risk tier, 1 (most critical) to 3; the RolloutPolicy for the tier sets its controls."""
    owner: str = Field(min_length=1, max_length=253)
    """Team that owns the model; put on every object and metric."""
    documentation: Documentation | None = None
    """Links for people."""
    model: ModelSpec
    """The model to serve."""
    serving: ServingSpec = Field(default_factory=ServingSpec)
    """How each revision is served."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    """How a new revision replaces the stable one."""
    paused: bool = False
    """Hold the rollout where it is; nothing advances, nothing is rolled back by analysis."""
