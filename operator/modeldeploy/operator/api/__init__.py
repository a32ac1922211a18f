"""The modeldeploy.io/v1alpha1 API, typed once: CRDs, validation and the operator all read these models."""

from .analysis import Analysis, Behaviour, CompareToStable, CustomMetric, Slo
from .base import API_VERSION, GROUP, VERSION, ApiModel, CelRule, ObjectMeta, format_duration, parse_duration
from .policy import RolloutPolicySpec
from .resources import (
    MODELDEPLOYMENT_KIND,
    MODELDEPLOYMENT_PLURAL,
    ROLLOUTPOLICY_KIND,
    ROLLOUTPOLICY_PLURAL,
    ModelDeployment,
    RolloutPolicy,
)
from .spec import ModelDeploymentSpec, ModelSpec, RolloutSpec, ServingSpec, Step
from .status import (
    AnalysisStatus,
    ArmMeasurement,
    CanaryStatus,
    CheckResult,
    Condition,
    HistoryEntry,
    ModelDeploymentStatus,
    RevisionRef,
    StableStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "MODELDEPLOYMENT_KIND",
    "MODELDEPLOYMENT_PLURAL",
    "ROLLOUTPOLICY_KIND",
    "ROLLOUTPOLICY_PLURAL",
    "VERSION",
    "Analysis",
    "AnalysisStatus",
    "ApiModel",
    "ArmMeasurement",
    "Behaviour",
    "CanaryStatus",
    "CelRule",
    "CheckResult",
    "CompareToStable",
    "Condition",
    "CustomMetric",
    "HistoryEntry",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelSpec",
    "ObjectMeta",
    "RevisionRef",
    "RolloutPolicy",
    "RolloutPolicySpec",
    "RolloutSpec",
    "ServingSpec",
    "Slo",
    "StableStatus",
    "Step",
    "format_duration",
    "parse_duration",
]
