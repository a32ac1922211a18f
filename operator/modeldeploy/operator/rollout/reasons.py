"""The words the rollout speaks: every reason of an Event, a history entry or a condition, and the
messages that tell a person what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPERATOR = "modeldeploy"
"""The author of what the operator decides on its own."""

EventType = Literal["Normal", "Warning"]

Reason = Literal[
    # revisions
    "RolloutStarted",
    "Superseded",
    "Deployed",
    "Promoted",
    "ScaledDown",
    "StepCompleted",
    # controls
    "PausedBySpec",
    "Resumed",
    "Retried",
    "RetryIgnored",
    "Aborted",
    "AbortIgnored",
    "PromoteFull",
    "PromoteFullIgnored",
    "PromoteFullRefused",
    "Approved",
    # gates and rollbacks
    "AnalysisFailed",
    "AnalysisCheckFailed",
    "AnalysisInconclusive",
    "DigestMismatch",
    "CanaryFailed",
    "ContractChecked",
    "ContractChangeAllowed",
    "ContractChanged",
    # situations
    "InvalidSpec",
    "ProgressDeadlineExceeded",
    "AwaitingApproval",
    "PauseStep",
    "CanaryInProgress",
    "Deploying",
    "RolledBack",
    "Serving",
    "ScalingUp",
    "StableUnderReplicated",
]


@dataclass(frozen=True)
class Event:
    """A core/v1 Event about the ModelDeployment."""

    type: EventType
    reason: Reason
    message: str


def how_to_retry(name: str, revision: str) -> str:
    return (
        f" It is not retried until the spec changes or `kubectl annotate mdep {name}"
        f" modeldeploy.io/retry={revision} --overwrite`."
    )


def how_to_approve(name: str, revision: str) -> str:
    return (
        f"Approve with `kubectl annotate mdep {name} modeldeploy.io/approve={revision}"
        " --overwrite` (a later approval step of the same revision takes `<revision>/<anything>`)."
    )


def how_to_resume(name: str) -> str:
    return (
        f'`kubectl patch mdep {name} --type merge -p \'{{"spec":{{"paused":true}}}}\'` and then'
        " false, or annotate modeldeploy.io/promote-full."
    )


def how_to_allow_contract_change(name: str) -> str:
    return (
        f"`kubectl patch mdep {name} --type merge -p"
        """ '{"spec":{"rollout":{"allowContractChange":true}}}'`"""
    )
