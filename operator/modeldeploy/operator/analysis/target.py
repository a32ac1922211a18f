"""What one analysis tick measures: a ModelDeployment's two arms, each identified by its revision, since when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Arm:
    """One side of the comparison: a revision and its ready pods."""

    revision: str
    pod_urls: tuple[str, ...] = ()
    """`http://<podIP>:<port>` of the arm's ready pods (read by the pods provider only)."""


@dataclass(frozen=True)
class ShadowGate:
    """A shadow step in progress: stable's pods mirror to the canary and compare answers."""

    min_agreement_percent: float | None = None
    """The agreement the step demands; None: agreement is reported, and judged only for being measured."""


@dataclass(frozen=True)
class AnalysisTarget:
    """The ModelDeployment being analysed and its stable and canary arms."""

    namespace: str
    name: str
    """ModelDeployment name."""
    model: str
    """Model name (the metric label `model`)."""
    stable: Arm
    canary: Arm
    since: datetime | None = None
    """Start of the span both arms are measured over: when the current step began (its analysis restarts
    there). None: the analysis' `window` before now."""
    shadow: ShadowGate | None = None
    """Set during a shadow step: the providers read stable's mirror counters too, the judge adds the
    agreement check."""
    phases: int = 1
    """Spans the rollout's analysis may restart in (its steps + 1): the judge splits its error budget
    over them."""
