"""ModelDeployment's status: the contract kubectl, kstatus, Argo CD, Flux and SREs read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiModel

MAX_HISTORY = 20

ConditionStatus = Literal["True", "False", "Unknown"]
ConditionType = Literal[
    "Ready",
    "Reconciling",
    "Stalled",
    "Available",
    "Progressing",
    "Degraded",
    "Paused",
    "AwaitingApproval",
]
CONDITION_TYPES: tuple[ConditionType, ...] = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Available",
    "Progressing",
    "Degraded",
    "Paused",
    "AwaitingApproval",
)
Verdict = Literal["Pass", "Fail", "Inconclusive"]
Phase = Literal["Pending", "Progressing", "Paused", "AwaitingApproval", "Healthy", "RolledBack", "Failed"]
HistoryAction = Literal[
    "Deployed",
    "RolloutStarted",
    "Promoted",
    "RolledBack",
    "Aborted",
    "Approved",
    "Retried",
    "PromotedFull",
    "Paused",
    "Resumed",
    "Superseded",
    "Stalled",
    "ContractChangeAllowed",
]


class Condition(ApiModel):
    """A condition in the Kubernetes convention (metav1.Condition)."""

    type: ConditionType
    """Ready, Reconciling, Stalled, Available, Progressing, Degraded, Paused or AwaitingApproval."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """One CamelCase word saying why."""
    message: str = Field(default="", max_length=32768)
    """What happened and what a person can do about it."""
    last_transition_time: str
    """When status last changed (RFC 3339)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The generation this condition was computed from."""


class StableStatus(ApiModel):
    """The revision that serves."""

    revision: str
    """Revision hash; the Deployment is `<name>-<revision>`."""
    model_version: str
    """Model version of this revision."""
    sha256: str
    """Digest of its model."""
    replicas: int = 0
    """Pods wanted."""
    ready_replicas: int = 0
    """Pods Ready (model loaded, digest verified, warmed up)."""
    weight: int = 100
    """Share of traffic it gets, in percent."""
    promoted_at: str | None = None
    """When it became stable (RFC 3339)."""


class ContractStatus(ApiModel):
    """The canary's model contract (inputs and outputs: names, datatypes, shapes) against stable's,
    checked from one Ready pod of each before the canary takes any traffic."""

    checked: bool = False
    """Both pods answered their model metadata and the contracts were compared."""
    compatible: bool = False
    """The canary can take stable's requests and answer them in stable's terms."""
    differences: list[str] = Field(default_factory=list, max_length=64)
    """Each incompatible difference, e.g. `input "features": datatype FP32 -> FP64`."""
    checked_at: str | None = None
    """When the contracts were compared (RFC 3339)."""
    allowed: bool = False
    """An incompatible change went ahead because `rollout.allowContractChange` is true."""


class CanaryStatus(ApiModel):
    """The revision being rolled out."""

    revision: str
    """Revision hash; the Deployment is `<name>-<revision>`."""
    model_version: str
    """Model version of this revision."""
    sha256: str
    """Digest of its model."""
    replicas: int = 0
    """Pods wanted now (follows the step weight under replica-ratio routing)."""
    ready_replicas: int = 0
    """Pods Ready."""
    weight: int = 0
    """Share of traffic the current step asks for, in percent."""
    effective_weight: int = 0
    """Share of traffic it actually gets (replica ratio rounds), in percent."""
    step: int = 0
    """Index of the current step (0-based); equals stepCount once every step is done."""
    step_count: int = 0
    """Number of steps."""
    step_action: str | None = None
    """The current step's action (setWeight, pause, approval, shadow, analysis)."""
    step_started_at: str | None = None
    """When the current step began (RFC 3339)."""
    started_at: str | None = None
    """When this rollout began (RFC 3339)."""
    last_progress_at: str | None = None
    """When the rollout last made progress; the progress deadline counts from here (RFC 3339)."""
    contract: ContractStatus | None = None
    """The model contract check; the canary gets no traffic until it is compatible or allowed."""


class ArmMeasurement(ApiModel):
    """What one arm (stable or canary) did over the analysis span (since the current step began)."""

    requests: float = 0
    """Requests answered."""
    errors: float = 0
    """Requests answered 5xx or timed out."""
    client_errors: float = 0
    """Requests answered 4xx (not counted as errors)."""
    error_rate_percent: float | None = None
    """errors / requests, in percent."""
    latency_p50_ms: float | None = None
    """Median latency in milliseconds."""
    latency_p99_ms: float | None = None
    """99th-percentile latency in milliseconds."""
    input_rejection_percent: float | None = None
    """Share of requests rejected as bad input, in percent."""


class CheckResult(ApiModel):
    """One metric of one analysis tick, with its numbers."""

    metric: str
    """What was measured, e.g. latencyP99Ms, errorRateDelta, classMixDistance, or a custom metric's name."""
    verdict: Verdict
    """Pass, Fail or Inconclusive."""
    value: float | None = None
    """Measured value."""
    threshold: float | None = None
    """Limit it was judged against."""
    comparator: Literal["<=", ">=", "<", ">"] = "<="
    """How value must relate to threshold to pass."""
    message: str = ""
    """The verdict in words, with samples and span."""


class AnalysisStatus(ApiModel):
    """The decision record of the last analysis tick."""

    last_run_at: str | None = None
    """When the last check ran (RFC 3339)."""
    verdict: Verdict | None = None
    """Verdict of the last check."""
    consecutive_failures: int = 0
    """Failed checks in a row."""
    consecutive_inconclusive: int = 0
    """Inconclusive checks in a row."""
    first_failure_at: str | None = None
    """When the first failed check of the current run of failures ran (RFC 3339, to the millisecond);
    unset after a Pass. The operator measures a rollback's time from here."""
    passes: int = 0
    """Passing checks since the current step began."""
    passing_since: str | None = None
    """When the first check of the current run of passes ran (RFC 3339); unset after a Fail or an
    Inconclusive. An analysis step's `duration` counts from here (or from the step's start, if later)."""
    window: str | None = None
    """Span each arm was measured over: since the current step began (`30s`, `4m30s`)."""
    arms: dict[str, ArmMeasurement] = Field(default_factory=dict)
    """Measurements per arm: `stable` and `canary`."""
    checks: list[CheckResult] = Field(default_factory=list)
    """Each check of the last tick."""
    queries: dict[str, str] = Field(default_factory=dict)
    """Queries sent to the provider, by name."""
    message: str = ""
    """The verdict in one sentence, with the numbers."""


class RevisionRef(ApiModel):
    """A revision and what it served."""

    revision: str
    """Revision hash."""
    model_version: str
    """Model version."""
    sha256: str
    """Digest of its model."""


class RetiringRevision(ApiModel):
    """A revision kept up for a while after it stopped serving, then scaled to zero."""

    revision: str
    """Revision hash."""
    model_version: str
    """Model version."""
    scale_down_at: str
    """When it is scaled to zero (RFC 3339)."""


class HistoryEntry(ApiModel):
    """One decision: what, about which revision, who, why, when."""

    time: str
    """When (RFC 3339)."""
    action: HistoryAction
    """What happened."""
    revision: str
    """Revision it concerned."""
    model_version: str | None = None
    """Model version of that revision."""
    author: str
    """Who decided: `modeldeploy` for the operator, or the person or tool that annotated or edited."""
    reason: str
    """One CamelCase word."""
    message: str = ""
    """The decision in words, with the numbers."""


class HandledControls(ApiModel):
    """Values of the control annotations already acted on, so that each acts once."""

    approve: str | None = None
    """Last `modeldeploy.io/approve` value acted on."""
    abort: str | None = None
    """Last `modeldeploy.io/abort` value acted on."""
    retry: str | None = None
    """Last `modeldeploy.io/retry` value acted on."""
    promote_full: str | None = None
    """Last `modeldeploy.io/promote-full` value acted on."""


class ModelDeploymentStatus(ApiModel):
    """Observed state of a ModelDeployment; written by the operator only."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The spec generation this status describes."""
    phase: Phase | None = None
    """The state at a glance."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=len(CONDITION_TYPES),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, Reconciling, Stalled, Available, Progressing, Degraded, Paused, AwaitingApproval."""
    stable: StableStatus | None = None
    """The revision that serves."""
    canary: CanaryStatus | None = None
    """The revision being rolled out."""
    analysis: AnalysisStatus | None = None
    """Decision record of the last analysis tick."""
    last_known_good: RevisionRef | None = None
    """The previous stable revision, the target of a manual roll-back."""
    rolled_back_revision: RevisionRef | None = None
    """A revision rolled back or aborted; not retried until the spec changes or the retry annotation."""
    retiring: list[RetiringRevision] = Field(default_factory=list)
    """Revisions kept up after they stopped serving, until their scale-down time."""
    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_HISTORY)
    """The last decisions, newest last."""
    handled: HandledControls | None = None
    """Control annotations already acted on."""
    endpoint: str | None = None
    """URL of the model's stable endpoint inside the cluster."""
