"""RolloutPolicy: which policy governs a ModelDeployment, what it inherits (`inherit`), and the bounds it must
keep (`bounds`). Pure."""

from .bounds import DOC_FIELDS, Violation, check, format_violations
from .inherit import (
    DEFAULT_PROGRESS_DEADLINE,
    DEFAULT_STEPS,
    EffectiveRollout,
    Resolution,
    Unreadable,
    apply_policy,
    effective_for,
    resolve,
    select_policy,
)

__all__ = [
    "DEFAULT_PROGRESS_DEADLINE",
    "DEFAULT_STEPS",
    "DOC_FIELDS",
    "EffectiveRollout",
    "Resolution",
    "Unreadable",
    "Violation",
    "apply_policy",
    "check",
    "effective_for",
    "format_violations",
    "resolve",
    "select_policy",
]
