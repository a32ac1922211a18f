"""The bounds a RolloutPolicy sets, checked (pure): every violation names the field, its value, the bound
and the policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..api import Analysis, ModelDeploymentSpec, RolloutPolicySpec, Step, parse_duration

DOC_FIELDS = {"modelCardUrl": "model_card_url", "runbookUrl": "runbook_url", "dashboardUrl": "dashboard_url"}


@dataclass(frozen=True)
class Violation:
    """One way a ModelDeployment (or what it inherits) breaks its RolloutPolicy."""

    field: str
    """Where: `spec.rollout.steps[2].setWeight`, or `RolloutPolicy/<name> spec.defaultSteps[2].setWeight`."""
    value: str
    """The offending value as written, or `unset`."""
    bound: str
    """The bound in words, e.g. `at most 25 (maxStepWeight)`."""
    policy: str | None
    """Name of the RolloutPolicy; None for a referenced policy that does not exist."""

    def __str__(self) -> str:
        who = f"RolloutPolicy {self.policy}" if self.policy else "the RolloutPolicy"
        return f"{self.field} is {self.value}; {who} requires {self.bound}"


def format_violations(violations: Sequence[Violation]) -> str:
    """Violations as one message: `n violation(s) of ...: a; b; c`."""
    if not violations:
        return ""
    names = sorted({v.policy for v in violations if v.policy})
    head = f"{len(violations)} violation{'s' if len(violations) != 1 else ''}"
    if names:
        head += f" of RolloutPolicy {', '.join(names)}"
    return head + ": " + "; ".join(str(v) for v in violations)


def _shorter(a: str | None, b: str | None) -> bool:
    """Both durations set and a is shorter than b."""
    return a is not None and b is not None and parse_duration(a) < parse_duration(b)


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check(
    spec: ModelDeploymentSpec,
    *,
    pspec: RolloutPolicySpec,
    pname: str | None,
    steps: tuple[Step, ...],
    steps_path: str,
    analysis: Analysis | None,
    analysis_path: str,
) -> list[Violation]:
    out: list[Violation] = []

    def bad(path: str, value: object, bound: str) -> None:
        out.append(Violation(path, _fmt(value), bound, pname))

    # steps: weights, weight increases (from 0 to the first step too), pauses, approval
    previous, previous_path = 0, "the start"
    for i, step in enumerate(steps):
        here = f"{steps_path}[{i}]"
        if step.set_weight is not None:
            if step.set_weight > pspec.max_step_weight:
                bad(f"{here}.setWeight", step.set_weight, f"at most {pspec.max_step_weight} (maxStepWeight)")
            increase = step.set_weight - previous
            if increase > pspec.max_weight_increase:
                bad(
                    f"{here}.setWeight",
                    step.set_weight,
                    f"an increase of at most {pspec.max_weight_increase} over {previous} at {previous_path}"
                    " (maxWeightIncrease)",
                )
            previous, previous_path = step.set_weight, here
        pause = step.pause.duration if step.pause is not None else None
        if _shorter(pause, pspec.min_pause):
            bad(f"{here}.pause.duration", pause, f"at least {pspec.min_pause} (minPause)")
    if pspec.require_approval and not any(s.approval is not None for s in steps):
        bad(steps_path, f"{len(steps)} steps without an approval step", "an approval step (requireApproval)")

    # analysis: presence, window, interval, evidence, failure limit, SLO
    if analysis is None:
        if pspec.require_analysis:
            bad(analysis_path, "unset", "an analysis (requireAnalysis)")
        if pspec.require_slo:
            bad(f"{analysis_path}.slo", "unset", "an SLO (requireSlo)")
    else:
        check_analysis(analysis, analysis_path, pspec, bad)

    # documentation
    docs = spec.documentation
    for wire_name in pspec.required_documentation:
        if docs is None or not getattr(docs, DOC_FIELDS[wire_name]):
            bad(f"spec.documentation.{wire_name}", "unset", f"a {wire_name} (requiredDocumentation)")

    # progress deadline
    own = spec.rollout.progress_deadline
    if _shorter(pspec.progress_deadline, own):
        bad("spec.rollout.progressDeadline", own, f"at most {pspec.progress_deadline} (progressDeadline)")
    return out


def check_analysis(
    analysis: Analysis, path: str, pspec: RolloutPolicySpec, report: Callable[[str, object, str], None]
) -> None:
    if pspec.min_analysis_window is not None and parse_duration(analysis.window) < parse_duration(
        pspec.min_analysis_window
    ):
        report(f"{path}.window", analysis.window, f"at least {pspec.min_analysis_window} (minAnalysisWindow)")
    if pspec.max_analysis_interval is not None and parse_duration(analysis.interval) > parse_duration(
        pspec.max_analysis_interval
    ):
        report(f"{path}.interval", analysis.interval, f"at most {pspec.max_analysis_interval} (maxAnalysisInterval)")
    if pspec.min_requests is not None and analysis.min_requests < pspec.min_requests:
        report(f"{path}.minRequests", analysis.min_requests, f"at least {pspec.min_requests} (minRequests)")
    if pspec.max_failure_limit is not None and analysis.failure_limit > pspec.max_failure_limit:
        report(f"{path}.failureLimit", analysis.failure_limit, f"at most {pspec.max_failure_limit} (maxFailureLimit)")
    slo = analysis.slo
    if pspec.require_slo and (slo is None or (slo.latency_p99_ms is None and slo.error_rate_percent is None)):
        report(f"{path}.slo", "unset", "an SLO with latencyP99Ms or errorRatePercent (requireSlo)")
    if slo is not None:
        ceiling = pspec.max_latency_p99_ms
        if ceiling is not None and slo.latency_p99_ms is not None and slo.latency_p99_ms > ceiling:
            report(f"{path}.slo.latencyP99Ms", slo.latency_p99_ms, f"at most {_fmt(ceiling)} (maxLatencyP99Ms)")
        ceiling = pspec.max_error_rate_percent
        if ceiling is not None and slo.error_rate_percent is not None and slo.error_rate_percent > ceiling:
            report(
                f"{path}.slo.errorRatePercent",
                slo.error_rate_percent,
                f"at most {_fmt(ceiling)} (maxErrorRatePercent)",
            )
