"""RolloutPolicy: a platform team's defaults and bounds per tier, which ModelDeployments inherit."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .analysis import Analysis
from .base import ApiModel, Duration, cel_rules
from .spec import MAX_STEPS, WEIGHTS_NOT_DECREASING, Step, check_weights_not_decreasing

RequiredDoc = Literal["modelCardUrl", "runbookUrl", "dashboardUrl"]


class RolloutPolicySpec(ApiModel):
    """Defaults and bounds. A ModelDeployment may tighten them and never loosen them."""

    tier: int | None = Field(default=None, ge=1, le=3)
    """The tier this policy applies to when a ModelDeployment names no policy."""
    max_step_weight: int = Field(default=100, ge=1, le=100)
    """Largest weight any setWeight step may ask for (the promotion after the last step is not a step)."""
    max_weight_increase: int = Field(default=100, ge=1, le=100)
    """Largest increase of weight from one setWeight step to the next, and from 0 to the first."""
    min_pause: Duration | None = None
    """Shortest timed pause a step may ask for."""
    min_analysis_window: Duration | None = None
    """Shortest analysis window allowed."""
    max_analysis_interval: Duration | None = None
    """Longest analysis interval allowed."""
    min_requests: int | None = Field(default=None, ge=1)
    """Fewest requests per arm a ModelDeployment may ask for."""
    max_failure_limit: int | None = Field(default=None, ge=1)
    """Largest failureLimit allowed."""
    max_latency_p99_ms: float | None = Field(default=None, gt=0)
    """Loosest latency SLO allowed; the ModelDeployment's own must be at most this."""
    max_error_rate_percent: float | None = Field(default=None, ge=0, le=100)
    """Loosest error-rate SLO allowed."""
    require_approval: bool = False
    """Every rollout must contain an approval step."""
    require_analysis: bool = False
    """Every rollout must be analysed."""
    require_slo: bool = False
    """Every ModelDeployment must state an SLO (latency or error rate)."""
    required_documentation: list[RequiredDoc] = Field(
        default_factory=list, max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Documentation links every ModelDeployment must have."""
    default_steps: list[Step] | None = Field(
        default=None, max_length=MAX_STEPS, json_schema_extra=cel_rules(WEIGHTS_NOT_DECREASING)
    )
    """Steps a ModelDeployment without its own inherits."""
    default_analysis: Analysis | None = None
    """Analysis a ModelDeployment without its own inherits."""
    progress_deadline: Duration | None = None
    """Longest progress deadline allowed, and the deadline of a ModelDeployment that sets none."""

    @model_validator(mode="after")
    def _rules(self) -> RolloutPolicySpec:
        check_weights_not_decreasing(self.default_steps)
        return self
