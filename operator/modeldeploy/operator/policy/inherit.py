"""RolloutPolicy inheritance, pure: pick a ModelDeployment's policy, fill what it inherits, check it never loosens.

`resolve(spec, policies)` gives either the `EffectiveRollout` the planner runs (steps, analysis,
routing, deadlines in seconds, the policy's name) or the violations, each naming the field, its
value, the bound and the policy, for a Stalled=True `InvalidSpec` condition.

Inheritance is by whole object: a ModelDeployment's own `rollout.steps` or `rollout.analysis`
replaces the policy's `defaultSteps` or `defaultAnalysis`; unset, it inherits them. An SLO
ceiling of the policy (`maxLatencyP99Ms`, `maxErrorRatePercent`) becomes the SLO of an analysis
that states none. Inherited values are checked against the bounds too, so an inconsistent policy
is reported rather than obeyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..api import (
    Analysis,
    ModelDeploymentSpec,
    RolloutPolicy,
    RolloutPolicySpec,
    Slo,
    Step,
    parse_duration,
)
from ..api.spec import PauseStep, ReplicaRatioRouting, TrafficRouting
from .bounds import Violation, check, format_violations

DEFAULT_PROGRESS_DEADLINE = "10m"
"""The progress deadline of a ModelDeployment that sets none and whose policy sets none."""

DEFAULT_STEPS: tuple[Step, ...] = (
    Step(set_weight=25),
    Step(pause=PauseStep(duration="1m")),
    Step(set_weight=50),
    Step(pause=PauseStep(duration="1m")),
)
"""Steps of a ModelDeployment that sets none and has no policy (or a policy without defaultSteps)."""


@dataclass(frozen=True)
class Unreadable:
    """A RolloutPolicy the operator could not read, or the RolloutPolicy API itself missing.

    Policy enforcement fails closed: a ModelDeployment this policy might govern (it names it, or
    it claims the ModelDeployment's tier, or its tier cannot be read) does not roll out until the
    policy reads again; an unbounded tier-1 rollout is worse than a held one.
    """

    name: str | None
    """The policy's name; None when no policy could be listed (the CRD is not served)."""
    tier: int | None
    """The tier it claims, when that much could be read."""
    reason: str
    """Why it is unreadable, for the InvalidSpec message."""

    def governs(self, spec: ModelDeploymentSpec) -> bool:
        """Whether this policy might be the one for `spec`."""
        ref = spec.rollout.policy_ref
        if self.name is not None and ref is not None:
            return ref.name == self.name
        return self.tier is None or self.tier == spec.tier


@dataclass(frozen=True)
class EffectiveRollout:
    """What the planner runs: the ModelDeployment's rollout with everything inherited filled in."""

    policy: str | None
    """Name of the RolloutPolicy applied; None when none applies."""
    steps: tuple[Step, ...]
    """Steps of the canary; empty means promote once Ready."""
    steps_source: str
    """Where the steps came from: `spec`, `policy` or `builtin`."""
    analysis: Analysis | None
    """How the canary is judged; None when it is not analysed."""
    analysis_source: str | None
    """Where the analysis came from: `spec` or `policy`; None when there is none."""
    traffic_routing: TrafficRouting
    """How traffic is split (replica ratio when unset)."""
    progress_deadline_seconds: float
    """A step that makes no progress for this long stalls the rollout."""
    scale_down_delay_seconds: float
    """How long a replaced or rolled-back revision stays up."""
    allow_contract_change: bool
    """Whether a new version may change its inputs or outputs."""
    require_approval: bool = False
    """The policy demands an approval step: `promote-full` may not skip it."""
    require_analysis: bool = False
    """The policy demands an analysis: `promote-full` may not skip it."""
    violations: tuple[str, ...] = ()
    """Why the spec cannot be rolled out (the policy's bounds broken, a policy unreadable); the
    other fields are then the spec's own, for what keeps serving."""

    @property
    def gateway(self) -> bool:
        """Traffic is split on an HTTPRoute (exact weights) rather than by replica ratio."""
        return self.traffic_routing.gateway_api is not None


@dataclass(frozen=True)
class Resolution:
    """The outcome of `resolve`: an EffectiveRollout, or the violations (never both)."""

    rollout: EffectiveRollout | None
    violations: tuple[Violation, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the ModelDeployment satisfies its policy."""
        return not self.violations

    @property
    def message(self) -> str:
        """The violations as one message, for the InvalidSpec condition."""
        return format_violations(self.violations)


def _name(policy: RolloutPolicy) -> str:
    return policy.metadata.name


def select_policy(
    spec: ModelDeploymentSpec, policies: Sequence[RolloutPolicy]
) -> tuple[RolloutPolicy | None, Violation | None]:
    """The policy that applies: `rollout.policyRef` by name, else the one for `spec.tier`, else none.

    A referenced policy that does not exist is a violation. When several policies claim the
    tier, the first by name wins, so the choice does not depend on listing order.
    """
    ref = spec.rollout.policy_ref
    if ref is not None:
        for p in policies:
            if _name(p) == ref.name:
                return p, None
        return None, Violation("spec.rollout.policyRef.name", repr(ref.name), "an existing RolloutPolicy", None)
    for p in sorted(policies, key=_name):
        if p.spec.tier == spec.tier:
            return p, None
    return None, None


def resolve(
    spec: ModelDeploymentSpec, policies: Sequence[RolloutPolicy], unreadable: Sequence[Unreadable] = ()
) -> Resolution:
    """Select the policy, fill the inherited defaults and check every bound.

    A policy in `unreadable` that might govern `spec` is a violation (fail closed), as is a
    `policyRef` to a policy for a less critical tier than `spec.tier`.
    """
    blocked = tuple(
        Violation(
            f"RolloutPolicy {u.name}" if u.name else "RolloutPolicy",
            "unreadable",
            f"a readable policy ({u.reason}); rollouts it may govern wait until it reads again",
            u.name,
        )
        for u in unreadable
        if u.governs(spec)
    )
    if blocked:
        return Resolution(None, blocked)
    policy, missing = select_policy(spec, policies)
    if missing is not None:
        return Resolution(None, (missing,))
    if (
        policy is not None
        and spec.rollout.policy_ref is not None
        and policy.spec.tier is not None
        and policy.spec.tier > spec.tier
    ):
        return Resolution(
            None,
            (
                Violation(
                    "spec.rollout.policyRef.name",
                    repr(policy.metadata.name),
                    f"a policy for tier {spec.tier} or more critical (it is for tier {policy.spec.tier};"
                    f" spec.tier is {spec.tier})",
                    policy.metadata.name,
                ),
            ),
        )
    return apply_policy(spec, policy)


def apply_policy(spec: ModelDeploymentSpec, policy: RolloutPolicy | None) -> Resolution:
    """Fill what spec inherits from policy (None: no policy) and check every bound of it."""
    rollout = spec.rollout
    pspec = policy.spec if policy is not None else RolloutPolicySpec()
    pname = _name(policy) if policy is not None else None
    inherited = f"RolloutPolicy/{pname} spec" if pname else "builtin"

    if rollout.steps is not None:
        steps, steps_source, steps_path = tuple(rollout.steps), "spec", "spec.rollout.steps"
    elif pspec.default_steps is not None:
        steps, steps_source, steps_path = tuple(pspec.default_steps), "policy", f"{inherited}.defaultSteps"
    else:
        steps, steps_source, steps_path = DEFAULT_STEPS, "builtin", "builtin default steps"

    if rollout.analysis is not None:
        analysis, analysis_source, analysis_path = rollout.analysis, "spec", "spec.rollout.analysis"
    elif pspec.default_analysis is not None:
        analysis, analysis_source = pspec.default_analysis, "policy"
        analysis_path = f"{inherited}.defaultAnalysis"
    else:
        analysis, analysis_source, analysis_path = None, None, "spec.rollout.analysis"

    deadline = rollout.progress_deadline or pspec.progress_deadline or DEFAULT_PROGRESS_DEADLINE

    if policy is None:
        violations: list[Violation] = []
    else:
        violations = check(
            spec,
            pspec=pspec,
            pname=pname,
            steps=steps,
            steps_path=steps_path,
            analysis=analysis,
            analysis_path=analysis_path,
        )
    if violations:
        return Resolution(None, tuple(violations))

    if analysis is not None:
        analysis = _with_slo_ceilings(analysis, pspec)
    return Resolution(
        EffectiveRollout(
            policy=pname,
            steps=steps,
            steps_source=steps_source,
            analysis=analysis,
            analysis_source=analysis_source,
            traffic_routing=rollout.traffic_routing or TrafficRouting(replica_ratio=ReplicaRatioRouting()),
            progress_deadline_seconds=parse_duration(deadline),
            scale_down_delay_seconds=parse_duration(rollout.scale_down_delay),
            allow_contract_change=rollout.allow_contract_change,
            require_approval=pspec.require_approval,
            require_analysis=pspec.require_analysis,
        )
    )


def effective_for(
    spec: ModelDeploymentSpec, policies: Sequence[RolloutPolicy] = (), unreadable: Sequence[Unreadable] = ()
) -> EffectiveRollout:
    """The rollout the planner runs: `resolve`'s, or, when the spec breaks its policy, the spec's own
    with the violations set (the planner then stalls it as InvalidSpec)."""
    resolution = resolve(spec, policies, unreadable)
    if resolution.rollout is not None:
        return resolution.rollout
    rollout = spec.rollout
    names = sorted({v.policy for v in resolution.violations if v.policy})
    return EffectiveRollout(
        policy=", ".join(names) or None,
        steps=tuple(rollout.steps or ()),
        steps_source="spec",
        analysis=rollout.analysis,
        analysis_source="spec" if rollout.analysis is not None else None,
        traffic_routing=rollout.traffic_routing or TrafficRouting(replica_ratio=ReplicaRatioRouting()),
        progress_deadline_seconds=parse_duration(rollout.progress_deadline or DEFAULT_PROGRESS_DEADLINE),
        scale_down_delay_seconds=parse_duration(rollout.scale_down_delay),
        allow_contract_change=rollout.allow_contract_change,
        violations=tuple(str(v) for v in resolution.violations),
    )


def _with_slo_ceilings(analysis: Analysis, pspec: RolloutPolicySpec) -> Analysis:
    """The analysis with the policy's SLO ceilings as the SLO where it states none."""
    slo = analysis.slo or Slo()
    latency = slo.latency_p99_ms if slo.latency_p99_ms is not None else pspec.max_latency_p99_ms
    errors = slo.error_rate_percent if slo.error_rate_percent is not None else pspec.max_error_rate_percent
    if latency is None and errors is None:
        return analysis
    if (latency, errors) == (slo.latency_p99_ms, slo.error_rate_percent) and analysis.slo is not None:
        return analysis
    return analysis.model_copy(update={"slo": Slo(latency_p99_ms=latency, error_rate_percent=errors)})
