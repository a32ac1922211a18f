"""The analysis part of the API: how a canary is judged (SLO, comparison with stable, behaviour,
custom metrics, provider)."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import ApiModel, CelRule, Duration, cel_rules, count_set, parse_duration

PROVIDER_ONE_OF = CelRule(
    "[has(self.prometheus), has(self.pods)].filter(x, x).size() == 1",
    "provider must have exactly one of prometheus, pods",
)
WINDOW_GE_INTERVAL = CelRule(
    "duration(self.window) >= duration(self.interval)", "analysis.window must be at least analysis.interval"
)
INTERVAL_POSITIVE = CelRule("duration(self.interval) > duration('0s')", "analysis.interval must be positive")
METRICS_NEED_PROMETHEUS = CelRule(
    "!has(self.metrics) || size(self.metrics) == 0 || (has(self.provider) && has(self.provider.prometheus))",
    "custom metrics need the prometheus provider",
)
METRIC_HAS_BOUND = CelRule("has(self.min) || has(self.max)", "a custom metric needs min, max or both")
METRIC_MIN_LE_MAX = CelRule(
    "!(has(self.min) && has(self.max)) || self.min <= self.max", "a custom metric's min must be <= its max"
)


class Slo(ApiModel):
    """Absolute limits on the canary alone; judged without a baseline."""

    latency_p99_ms: float | None = Field(default=None, gt=0, le=600000)
    """99th-percentile latency limit in milliseconds. Decided from the share of requests above the latency
    bucket edges at or around it; put a bucket edge at the limit (the runtime's --latency-buckets)."""
    error_rate_percent: float | None = Field(default=None, ge=0, le=100)
    """Limit on the share of requests answered 5xx or timed out, in percent."""


class CompareToStable(ApiModel):
    """Limits relative to stable over the same span, each decided by a sequential test. Only the limits set
    here are checked (`{}` checks nothing); when `compareToStable` is unset, `DEFAULT_COMPARISON` applies."""

    max_latency_ratio: float | None = Field(default=None, ge=1, le=100)
    """Largest canary/stable ratio of p99 latency."""
    max_error_rate_delta: float | None = Field(default=None, ge=0, le=100)
    """Errors (5xx, timeouts): fail when the canary's rate is significantly above stable's and its excess is
    more than this many percentage points."""
    max_client_error_rate_delta: float | None = Field(default=None, ge=0, le=100)
    """Client errors (4xx, input rejections included): fail when the canary's rate is significantly above
    stable's and its excess is more than this many percentage points."""


DEFAULT_COMPARISON = CompareToStable(max_latency_ratio=1.2, max_error_rate_delta=0.1, max_client_error_rate_delta=1.0)
"""What an analysis without `compareToStable` compares: errors, client errors and p99 latency."""


class Behaviour(ApiModel):
    """Model-behaviour checks comparing the canary's predictions with stable's."""

    max_class_mix_distance: float | None = Field(default=None, ge=0, le=1)
    """Largest Jensen-Shannon distance (base 2) between the arms' predicted-class mixes."""
    max_score_distance: float | None = Field(default=None, ge=0, le=1)
    """Largest Jensen-Shannon distance between the arms' prediction-score histograms."""
    max_input_rejection_percent: float | None = Field(default=None, ge=0, le=100)
    """Largest share of the canary's requests rejected as bad input, in percent."""


class CustomMetric(ApiModel):
    """A PromQL query judged against bounds; `{{canary}}` and `{{stable}}` expand to label matchers."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(METRIC_HAS_BOUND, METRIC_MIN_LE_MAX)}

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    """Name of the check in status and messages."""
    query: str = Field(min_length=1, max_length=4096)
    """PromQL returning one number."""
    min: float | None = None
    """Fail below this."""
    max: float | None = None
    """Fail above this."""

    @model_validator(mode="after")
    def _rules(self) -> CustomMetric:
        if self.min is None and self.max is None:
            raise ValueError(METRIC_HAS_BOUND.message)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(METRIC_MIN_LE_MAX.message)
        return self


class PrometheusProvider(ApiModel):
    """Read the runtime's metrics from Prometheus."""

    address: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    """Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090."""
    timeout: Duration = "5s"
    """Timeout of one query."""


class PodsProvider(ApiModel):
    """Scrape the runtime pods' /metrics directly (for clusters without Prometheus)."""


class Provider(ApiModel):
    """Where measurements come from: exactly one."""

    model_config = ApiModel.model_config | {"json_schema_extra": cel_rules(PROVIDER_ONE_OF)}

    prometheus: PrometheusProvider | None = None
    """Prometheus."""
    pods: PodsProvider | None = None
    """The pods' own /metrics."""

    @model_validator(mode="after")
    def _rules(self) -> Provider:
        if count_set(self.prometheus, self.pods) != 1:
            raise ValueError(PROVIDER_ONE_OF.message)
        return self


class Analysis(ApiModel):
    """How the canary is judged while it takes traffic."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(WINDOW_GE_INTERVAL, INTERVAL_POSITIVE, METRICS_NEED_PROMETHEUS)
    }

    interval: Duration = "30s"
    """Time between checks. Each check judges both arms over the same span: everything since the current
    step's analysis began."""
    window: Duration = "2m"
    """Range of custom metrics' `{{window}}` placeholder (built-in checks use the step's whole span)."""
    confidence: float = Field(default=0.99, ge=0.5, le=0.9999)
    """A canary no worse than stable (and within its SLO) is rolled back with probability at most
    1 - confidence over its whole rollout, whatever the number of checks and ticks."""
    min_requests: int = Field(default=100, ge=1)
    """Fewest requests per arm for a verdict; below it a check is Inconclusive."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Roll back when this many consecutive checks fail (the check that reaches it triggers the rollback)."""
    inconclusive_limit: int = Field(default=10, ge=1, le=1000)
    """Pause the rollout when this many consecutive checks are Inconclusive."""
    slo: Slo | None = None
    """Absolute limits."""
    compare_to_stable: CompareToStable | None = None
    """Limits relative to stable; when unset, errors within 0.1 points, client errors within 1 point and p99
    latency within 1.2x of stable's (`{}` compares nothing)."""
    behaviour: Behaviour | None = None
    """Model-behaviour checks."""
    metrics: list[CustomMetric] = Field(default_factory=list, max_length=16)
    """Custom PromQL checks (Prometheus provider only)."""
    provider: Provider = Field(default_factory=lambda: Provider(pods=PodsProvider()))
    """Where measurements come from; the pods' own /metrics when unset."""

    @property
    def comparison(self) -> CompareToStable:
        """The limits relative to stable in force: `compareToStable`, or `DEFAULT_COMPARISON` when unset."""
        return self.compare_to_stable if self.compare_to_stable is not None else DEFAULT_COMPARISON

    @model_validator(mode="after")
    def _rules(self) -> Analysis:
        if parse_duration(self.window) < parse_duration(self.interval):
            raise ValueError(WINDOW_GE_INTERVAL.message)
        if parse_duration(self.interval) <= 0:
            raise ValueError(INTERVAL_POSITIVE.message)
        if self.metrics and self.provider.prometheus is None:
            raise ValueError(METRICS_NEED_PROMETHEUS.message)
        return self
