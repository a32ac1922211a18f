"""policy.py: which RolloutPolicy applies, what a ModelDeployment inherits, and every bound it may not loosen."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from modeldeploy.operator import policy
from modeldeploy.operator.api import ModelDeploymentSpec, RolloutPolicy, RolloutPolicySpec, Slo

SHA = "a" * 64


def md(**rollout: Any) -> dict[str, Any]:
    """A ModelDeployment spec on the wire, tier 1, with the given rollout."""
    return {
        "tier": 1,
        "owner": "team",
        "model": {"name": "m", "version": "1", "uri": "s3://b/m.onnx", "sha256": SHA},
        "rollout": rollout,
    }


def spec_of(wire: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(wire)


def pol(name: str = "strict", **spec: Any) -> RolloutPolicy:
    return RolloutPolicy.model_validate({"metadata": {"name": name}, "spec": spec})


ANALYSIS = {"interval": "30s", "window": "5m", "minRequests": 500, "failureLimit": 2, "slo": {"latencyP99Ms": 50}}


class Bound(NamedTuple):
    policy: dict[str, Any]
    ok: dict[str, Any]  # the rollout of a spec within the bound (at the bound, where it has an edge)
    bad: dict[str, Any]  # the rollout of a spec that loosens it
    field: str  # the field path the violation names
    value: str  # the offending value as reported
    words: str  # part of the bound's words


BOUNDS = {
    "maxStepWeight": Bound(
        {"maxStepWeight": 25},
        {"steps": [{"setWeight": 25}]},
        {"steps": [{"setWeight": 10}, {"setWeight": 26}]},
        "spec.rollout.steps[1].setWeight",
        "26",
        "at most 25 (maxStepWeight)",
    ),
    "maxWeightIncrease": Bound(
        {"maxWeightIncrease": 20},
        {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}]},
        {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 41}]},
        "spec.rollout.steps[2].setWeight",
        "41",
        "an increase of at most 20 over 20 at spec.rollout.steps[0]",
    ),
    "maxWeightIncrease-from-zero": Bound(
        {"maxWeightIncrease": 20},
        {"steps": [{"setWeight": 20}]},
        {"steps": [{"setWeight": 30}]},
        "spec.rollout.steps[0].setWeight",
        "30",
        "over 0 at the start",
    ),
    "minPause": Bound(
        {"minPause": "2m"},
        {"steps": [{"pause": {"duration": "120s"}}, {"pause": {}}]},  # an untimed pause is never too short
        {"steps": [{"pause": {"duration": "1m59s"}}]},
        "spec.rollout.steps[0].pause.duration",
        "1m59s",
        "at least 2m (minPause)",
    ),
    "minAnalysisWindow": Bound(
        {"minAnalysisWindow": "5m"},
        {"analysis": {**ANALYSIS, "window": "5m"}},
        {"analysis": {**ANALYSIS, "window": "4m"}},
        "spec.rollout.analysis.window",
        "4m",
        "at least 5m (minAnalysisWindow)",
    ),
    "maxAnalysisInterval": Bound(
        {"maxAnalysisInterval": "1m"},
        {"analysis": {**ANALYSIS, "interval": "1m"}},
        {"analysis": {**ANALYSIS, "interval": "61s"}},
        "spec.rollout.analysis.interval",
        "61s",
        "at most 1m (maxAnalysisInterval)",
    ),
    "minRequests": Bound(
        {"minRequests": 500},
        {"analysis": {**ANALYSIS, "minRequests": 500}},
        {"analysis": {**ANALYSIS, "minRequests": 499}},
        "spec.rollout.analysis.minRequests",
        "499",
        "at least 500 (minRequests)",
    ),
    "maxFailureLimit": Bound(
        {"maxFailureLimit": 3},
        {"analysis": {**ANALYSIS, "failureLimit": 3}},
        {"analysis": {**ANALYSIS, "failureLimit": 4}},
        "spec.rollout.analysis.failureLimit",
        "4",
        "at most 3 (maxFailureLimit)",
    ),
    "maxLatencyP99Ms": Bound(
        {"maxLatencyP99Ms": 100},
        {"analysis": {**ANALYSIS, "slo": {"latencyP99Ms": 100}}},
        {"analysis": {**ANALYSIS, "slo": {"latencyP99Ms": 100.5}}},
        "spec.rollout.analysis.slo.latencyP99Ms",
        "100.5",
        "at most 100 (maxLatencyP99Ms)",
    ),
    "maxErrorRatePercent": Bound(
        {"maxErrorRatePercent": 1},
        {"analysis": {**ANALYSIS, "slo": {"errorRatePercent": 0.5}}},
        {"analysis": {**ANALYSIS, "slo": {"errorRatePercent": 2}}},
        "spec.rollout.analysis.slo.errorRatePercent",
        "2",
        "at most 1 (maxErrorRatePercent)",
    ),
    "requireApproval": Bound(
        {"requireApproval": True},
        {"steps": [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}]},
        {"steps": [{"setWeight": 10}, {"setWeight": 50}]},
        "spec.rollout.steps",
        "2 steps without an approval step",
        "an approval step (requireApproval)",
    ),
    "requireApproval-empty-steps": Bound(
        {"requireApproval": True},
        {"steps": [{"approval": {}}]},
        {"steps": []},
        "spec.rollout.steps",
        "0 steps without an approval step",
        "(requireApproval)",
    ),
    "requireAnalysis": Bound(
        {"requireAnalysis": True},
        {"analysis": ANALYSIS},
        {},
        "spec.rollout.analysis",
        "unset",
        "an analysis (requireAnalysis)",
    ),
    "requireSlo": Bound(
        {"requireSlo": True},
        {"analysis": {**ANALYSIS, "slo": {"errorRatePercent": 1}}},
        {"analysis": {k: v for k, v in ANALYSIS.items() if k != "slo"}},
        "spec.rollout.analysis.slo",
        "unset",
        "(requireSlo)",
    ),
    "requireSlo-no-analysis": Bound(
        {"requireSlo": True},
        {"analysis": ANALYSIS},
        {},
        "spec.rollout.analysis.slo",
        "unset",
        "an SLO (requireSlo)",
    ),
    "progressDeadline": Bound(
        {"progressDeadline": "30m"},
        {"progressDeadline": "30m"},
        {"progressDeadline": "31m"},
        "spec.rollout.progressDeadline",
        "31m",
        "at most 30m (progressDeadline)",
    ),
}


@pytest.mark.parametrize("name", list(BOUNDS))
def test_a_bound_holds_at_its_edge_and_refuses_a_looser_value(name: str) -> None:
    b = BOUNDS[name]
    p = pol(**b.policy)
    within = policy.resolve(spec_of(md(policyRef={"name": "strict"}, **b.ok)), [p])
    assert within.ok, within.message
    assert within.rollout is not None

    loose = policy.resolve(spec_of(md(policyRef={"name": "strict"}, **b.bad)), [p])
    assert loose.rollout is None
    (v,) = loose.violations
    assert (v.field, v.value, v.policy) == (b.field, b.value, "strict")
    assert b.words in v.bound
    assert b.field in loose.message and "strict" in loose.message


def test_every_bound_of_the_policy_has_a_case() -> None:
    bounds = {f.alias for n, f in RolloutPolicySpec.model_fields.items() if n not in _NOT_BOUNDS}
    covered = {name.split("-")[0] for name in BOUNDS} | {"requiredDocumentation"}
    assert bounds <= covered, bounds - covered


_NOT_BOUNDS = {"tier", "default_steps", "default_analysis", "required_documentation"}


@pytest.mark.parametrize(
    ("docs", "missing"),
    [
        ({"modelCardUrl": "https://x", "runbookUrl": "https://y"}, []),
        ({"modelCardUrl": "https://x"}, ["runbookUrl"]),
        (None, ["modelCardUrl", "runbookUrl"]),
    ],
)
def test_required_documentation(docs: dict[str, str] | None, missing: list[str]) -> None:
    wire = md()
    if docs is not None:
        wire["documentation"] = docs
    r = policy.resolve(spec_of(wire), [pol(tier=1, requiredDocumentation=["modelCardUrl", "runbookUrl"])])
    assert [v.field for v in r.violations] == [f"spec.documentation.{m}" for m in missing]
    assert all(v.value == "unset" and "(requiredDocumentation)" in v.bound for v in r.violations)


def test_all_violations_are_reported_at_once() -> None:
    p = pol(maxStepWeight=20, requireApproval=True, requireAnalysis=True, requiredDocumentation=["runbookUrl"])
    r = policy.resolve(spec_of(md(policyRef={"name": "strict"}, steps=[{"setWeight": 50}])), [p])
    assert [v.field for v in r.violations] == [
        "spec.rollout.steps[0].setWeight",
        "spec.rollout.steps",
        "spec.rollout.analysis",
        "spec.documentation.runbookUrl",
    ]
    assert r.message.startswith("4 violations of RolloutPolicy strict: ")


# ------------------------------------------------------------------------------------------- selection


def test_policy_ref_wins_over_the_tier() -> None:
    tier1, named = pol("tier-1", tier=1), pol("special")
    r = policy.resolve(spec_of(md(policyRef={"name": "special"})), [tier1, named])
    assert r.rollout is not None and r.rollout.policy == "special"


def test_the_policy_of_the_tier_applies_when_none_is_named() -> None:
    policies = [pol("tier-2", tier=2), pol("tier-1", tier=1), pol("other")]
    r = policy.resolve(spec_of(md()), policies)
    assert r.rollout is not None and r.rollout.policy == "tier-1"


def test_several_policies_for_a_tier_pick_the_first_by_name_whatever_the_order() -> None:
    a, b = pol("a-tier1", tier=1), pol("b-tier1", tier=1)
    for order in ([a, b], [b, a]):
        r = policy.resolve(spec_of(md()), order)
        assert r.rollout is not None and r.rollout.policy == "a-tier1"


def test_no_policy_for_the_tier_means_builtin_defaults_and_no_bounds() -> None:
    r = policy.resolve(spec_of(md(steps=[{"setWeight": 100}])), [pol("tier-2", tier=2)])
    assert r.ok and r.rollout is not None
    assert r.rollout.policy is None
    assert r.rollout.progress_deadline_seconds == 600
    r = policy.resolve(spec_of(md()), [])
    assert r.rollout is not None
    assert r.rollout.steps == policy.DEFAULT_STEPS and r.rollout.steps_source == "builtin"
    assert r.rollout.analysis is None and r.rollout.analysis_source is None


def test_a_referenced_policy_that_does_not_exist_is_a_violation() -> None:
    r = policy.resolve(spec_of(md(policyRef={"name": "gone"})), [pol("tier-1", tier=1)])
    assert r.rollout is None
    (v,) = r.violations
    assert (v.field, v.value, v.policy) == ("spec.rollout.policyRef.name", "'gone'", None)
    assert "an existing RolloutPolicy" in str(v)


# ----------------------------------------------------------------------------------------- inheritance


DEFAULTS = {
    "defaultSteps": [{"setWeight": 10}, {"approval": {}}, {"setWeight": 30}],
    "defaultAnalysis": {"interval": "20s", "window": "2m", "slo": {"latencyP99Ms": 80}},
    "progressDeadline": "20m",
}


def test_unset_steps_analysis_and_deadline_are_inherited() -> None:
    r = policy.resolve(spec_of(md()), [pol("tier-1", tier=1, **DEFAULTS)])
    assert r.rollout is not None
    assert [s.wire() for s in r.rollout.steps] == DEFAULTS["defaultSteps"]
    assert r.rollout.steps_source == "policy"
    assert r.rollout.analysis is not None and r.rollout.analysis.interval == "20s"
    assert r.rollout.analysis_source == "policy"
    assert r.rollout.progress_deadline_seconds == 1200


def test_own_values_replace_the_inherited_ones_as_a_whole() -> None:
    own = md(steps=[{"setWeight": 5}], analysis={"window": "1m"}, progressDeadline="5m", scaleDownDelay="1m")
    r = policy.resolve(spec_of(own), [pol("tier-1", tier=1, **DEFAULTS)])
    assert r.rollout is not None
    assert [s.wire() for s in r.rollout.steps] == [{"setWeight": 5}]
    assert r.rollout.steps_source == "spec" and r.rollout.analysis_source == "spec"
    assert r.rollout.analysis is not None and r.rollout.analysis.slo is None and r.rollout.analysis.window == "1m"
    assert (r.rollout.progress_deadline_seconds, r.rollout.scale_down_delay_seconds) == (300, 60)


def test_empty_steps_are_not_unset() -> None:
    r = policy.resolve(spec_of(md(steps=[])), [pol("tier-1", tier=1, **DEFAULTS)])
    assert r.rollout is not None and r.rollout.steps == () and r.rollout.steps_source == "spec"


def test_slo_ceilings_become_the_slo_of_an_analysis_that_states_none() -> None:
    p = pol("tier-1", tier=1, maxLatencyP99Ms=100, maxErrorRatePercent=1)
    r = policy.resolve(spec_of(md(analysis={"slo": {"latencyP99Ms": 40}})), [p])
    assert r.rollout is not None and r.rollout.analysis is not None
    assert r.rollout.analysis.slo == Slo(latency_p99_ms=40, error_rate_percent=1)
    r = policy.resolve(spec_of(md(analysis={})), [p])
    assert r.rollout is not None and r.rollout.analysis is not None
    assert r.rollout.analysis.slo == Slo(latency_p99_ms=100, error_rate_percent=1)


def test_inherited_values_that_break_the_policy_name_the_policy_field() -> None:
    p = pol("tier-1", tier=1, maxStepWeight=20, defaultSteps=[{"setWeight": 10}, {"setWeight": 50}])
    r = policy.resolve(spec_of(md()), [p])
    (v,) = r.violations
    assert v.field == "RolloutPolicy/tier-1 spec.defaultSteps[1].setWeight"
    p = pol("tier-1", tier=1, minAnalysisWindow="5m", defaultAnalysis={"window": "2m"})
    (v,) = policy.resolve(spec_of(md()), [p]).violations
    assert v.field == "RolloutPolicy/tier-1 spec.defaultAnalysis.window"


def test_routing_defaults_to_replica_ratio() -> None:
    r = policy.resolve(spec_of(md()), [])
    assert r.rollout is not None and r.rollout.traffic_routing.replica_ratio is not None
    r = policy.resolve(spec_of(md(trafficRouting={"gatewayAPI": {"httpRoute": "r"}})), [])
    assert r.rollout is not None and r.rollout.traffic_routing.gateway_api is not None


def test_format_violations() -> None:
    assert policy.format_violations([]) == ""
    v = policy.Violation("spec.rollout.steps[0].setWeight", "50", "at most 25 (maxStepWeight)", "tier-1")
    assert policy.format_violations([v]) == (
        "1 violation of RolloutPolicy tier-1: spec.rollout.steps[0].setWeight is 50; "
        "RolloutPolicy tier-1 requires at most 25 (maxStepWeight)"
    )
