"""Issue 12's correctness holes in the rollout, each as a tick-by-tick scenario that failed before its fix.

(Holes 3 and 8 are the controller's, with their tests beside it; hole 4 is the pods provider's,
tests/analysis/test_pods_provider.py::test_baselines_are_kept_per_modeldeployment.)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modeldeploy.operator.analysis.engine import count
from modeldeploy.operator.api import AnalysisStatus, ModelDeployment, RolloutPolicy
from modeldeploy.operator.api.status import HistoryEntry, ModelDeploymentStatus, Verdict
from modeldeploy.operator.contract import ContractReading
from modeldeploy.operator.manifests import LABEL_OWNER
from modeldeploy.operator.policy import Unreadable, effective_for
from modeldeploy.operator.rollout import Observed, plan, rfc3339
from modeldeploy.operator.rollout.history import trim

from .test_planner import ANALYSIS, SHA_B, T0, Sim, deploy, make_md, verdict
from .test_planner_gateway import gw_md

POLICY = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "RolloutPolicy", "metadata": {"name": "tier1"}}

# ----------------------------------------------------------- hole 1: a canary at weight 0 forever


def test_gateway_with_analysis_and_no_set_weight_is_refused_not_stuck_at_weight_0() -> None:
    for steps in ([], [{"pause": {"duration": "10s"}}]):
        sim = Sim(gw_md(steps=steps, analysis=ANALYSIS))
        p = sim.tick()
        assert sim.conds()["Stalled"] == ("True", "InvalidSpec"), steps
        assert "no setWeight above 0" in sim.cond("Stalled").message
        assert not [o for o in p.apply if o["kind"] == "Deployment"]


def test_an_analysis_step_at_weight_0_is_refused() -> None:
    sim = Sim(make_md(steps=[{"analysis": {}}, {"setWeight": 50}], analysis=ANALYSIS))
    sim.tick()
    assert sim.conds()["Stalled"] == ("True", "InvalidSpec")
    assert "steps[0] is an analysis step at weight 0" in sim.cond("Stalled").message


def test_gateway_with_a_set_weight_and_analysis_is_accepted() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 20}], analysis=ANALYSIS))
    deploy(sim)
    assert sim.conds()["Ready"][0] == "True"


# --------------------------------------------------- hole 2: progressDeadline covers analysis waits


def at_analysis_step(**rollout: Any) -> Sim:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=ANALYSIS, **rollout))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.step == 1, ca
    return sim


def test_no_check_for_the_progress_deadline_stalls_the_analysis_step() -> None:
    sim = at_analysis_step()  # progressDeadline 60s, interval 5s
    sim.tick(seconds=30)
    assert sim.conds()["Stalled"][0] == "False"
    p = sim.tick(seconds=40)  # 70s without a check > 60s + one interval
    assert sim.conds()["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert "waiting for passing analysis checks" in sim.cond("Stalled").message
    assert sim.reasons().count("ProgressDeadlineExceeded") == 1 and p.requeue_after is not None
    sim.tick(seconds=10)
    assert sim.reasons().count("ProgressDeadlineExceeded") == 1  # one Event, not one per tick


def test_checks_that_keep_coming_are_progress() -> None:
    sim = at_analysis_step()
    for i in range(1, 30):  # 145 s of checks, none deciding
        sim.tick(seconds=5, verdict=verdict("Inconclusive", inconclusive=1, at=sim.now))
        assert sim.conds()["Stalled"][0] == "False", i


def test_promotion_waiting_for_a_pass_stalls_after_the_deadline() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}], analysis=ANALYSIS))
    deploy(sim)
    sim.set_model("2", SHA_B)
    for _ in range(3):
        sim.tick()
    assert "promotion waits for a passing analysis check" in sim.cond("Progressing").message
    sim.tick(seconds=70)
    assert sim.conds()["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert sim.status.stable is not None and sim.status.canary is not None  # nothing was promoted


# ----------------------------------------------------------- hole 5: more than 64 differences


def test_a_contract_with_100_differences_fits_the_status_schema() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 25}]))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.contracts[new] = ContractReading(new, differences=tuple(f"input x{i}: removed" for i in range(100)))
    sim.tick(settle=False)
    p = sim.tick()
    ModelDeploymentStatus.model_validate(p.status.wire())  # the CRD's maxItems: 64
    ca = sim.status.canary
    assert ca is not None and ca.contract is not None and not ca.contract.compatible
    assert len(ca.contract.differences) == 64 and ca.contract.differences[-1] == "... and 37 more differences"
    assert sim.conds()["Stalled"] == ("True", "ContractChanged")


# ------------------------------------------------------------------ hole 6: policies fail closed


def test_an_unreadable_policy_for_the_tier_stalls_the_rollout() -> None:
    md = ModelDeployment.from_wire(make_md(steps=[{"setWeight": 50}]))
    bad = Unreadable("tier3", 3, "spec.maxStepWeight: Input should be less than or equal to 100")
    eff = effective_for(md.spec, (), [bad])
    assert eff.violations and "tier3" in eff.violations[0] and "maxStepWeight" in eff.violations[0]
    p = plan(md, eff, Observed(), None, T0)
    assert p.status.phase == "Failed" and not [o for o in p.apply if o["kind"] == "Deployment"]
    # a policy for another tier does not hold this one; one whose tier cannot be read does
    assert not effective_for(md.spec, (), [Unreadable("tier1", 1, "bad")]).violations
    assert effective_for(md.spec, (), [Unreadable("broken", None, "bad")]).violations
    missing = effective_for(md.spec, (), [Unreadable(None, None, "the RolloutPolicy API is not served")])
    assert "not served" in missing.violations[0]


def test_policy_ref_to_a_less_critical_tier_is_refused() -> None:
    relaxed = RolloutPolicy.from_wire({**POLICY, "metadata": {"name": "relaxed"}, "spec": {"tier": 3}})
    wire = make_md(steps=[{"setWeight": 50}], policyRef={"name": "relaxed"})
    wire["spec"]["tier"] = 1
    eff = effective_for(ModelDeployment.from_wire(wire).spec, [relaxed])
    assert eff.violations and "tier 1 or more critical" in eff.violations[0]
    wire["spec"]["tier"] = 3
    assert not effective_for(ModelDeployment.from_wire(wire).spec, [relaxed]).violations


def test_promote_full_cannot_skip_a_required_approval() -> None:
    policy = {**POLICY, "spec": {"tier": 3, "requireApproval": True}}
    sim = Sim(make_md(steps=[{"setWeight": 25}, {"approval": {}}]), policies=[policy])
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.conds()["AwaitingApproval"][0] == "True"
    sim.annotate("modeldeploy.io/promote-full", "now")
    sim.tick()
    sim.tick()
    assert "PromoteFullRefused" in sim.reasons()
    ca = sim.status.canary
    assert ca is not None and ca.revision == new and ca.step == 1
    assert sim.conds()["AwaitingApproval"][0] == "True"


# ---------------------------------------------------- hole 7: autoscaling on both tracks, removal


AUTOSCALING = {"minReplicas": 2, "maxReplicas": 6}


def autoscaled(md: dict[str, Any]) -> dict[str, Any]:
    del md["spec"]["serving"]["replicas"]
    md["spec"]["serving"]["autoscaling"] = AUTOSCALING
    return md


def test_under_autoscaling_no_deployment_is_applied_with_replicas() -> None:
    sim = Sim(autoscaled(make_md(steps=[{"setWeight": 25}])))
    deploy(sim)
    sim.set_model("2", SHA_B)
    for _ in range(4):
        p = sim.tick()
        for o in p.apply:
            if o["kind"] == "Deployment":
                assert "replicas" not in o["spec"]  # sizes go through the scale subresource
    assert sim.status.canary is None and sim.status.stable is not None  # promoted


def test_gateway_canary_gets_its_own_autoscaler_and_loses_it_at_promotion() -> None:
    sim = Sim(autoscaled(gw_md(steps=[{"setWeight": 20}, {"pause": {}}])))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    p = sim.tick()
    hpas = {
        o["metadata"]["name"]: o["spec"]["scaleTargetRef"]["name"]
        for o in p.apply
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpas["fraud-canary"] == f"fraud-{new}" and "fraud" in hpas
    assert f"fraud-{new}" not in p.scale  # its autoscaler decides its size


def test_autoscaler_and_disruption_budget_removed_from_the_spec_are_deleted() -> None:
    wire = make_md(steps=[])
    md = ModelDeployment.from_wire(wire)
    observed = Observed(children=frozenset({("HorizontalPodAutoscaler", "fraud"), ("PodDisruptionBudget", "fraud")}))
    p = plan(md, effective_for(md.spec), observed, None, T0)
    assert set(p.delete_children) == {
        ("autoscaling/v2", "HorizontalPodAutoscaler", "fraud"),
        ("policy/v1", "PodDisruptionBudget", "fraud"),
    }
    wire["spec"]["serving"]["podDisruptionBudget"] = {"maxUnavailable": 1}
    md = ModelDeployment.from_wire(wire)
    p = plan(md, effective_for(md.spec), observed, None, T0)
    assert p.delete_children == (("autoscaling/v2", "HorizontalPodAutoscaler", "fraud"),)


# ------------------------------------------------------ hole 9: history, Events, analysis duration


def entry(action: str, i: int) -> HistoryEntry:
    return HistoryEntry.model_validate(
        {
            "time": f"2026-01-01T12:{i // 60:02d}:{i % 60:02d}Z",
            "action": action,
            "revision": "r",
            "author": "a",
            "reason": "StepCompleted",
            "message": str(i),
        }
    )


def test_history_trimming_keeps_the_markers_the_rollout_reads() -> None:
    entries = [entry("Paused", 0), entry("PromotedFull", 1), entry("RolledBack", 2)]
    entries += [entry("Approved", i) for i in range(3, 40)]
    kept = trim(entries)
    assert len(kept) == 20
    assert [e.action for e in kept[:3]] == ["Paused", "PromotedFull", "RolledBack"]
    assert [e.message for e in kept[3:]] == [str(i) for i in range(23, 40)]


def test_spec_paused_survives_more_than_20_history_entries() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 25}, {"approval": {}}]))
    deploy(sim)
    sim.set_spec(["paused"], True)
    sim.tick()
    for i in range(12):  # each new version: Superseded + RolloutStarted, 24 entries after Paused
        sim.set_model(f"v{i}", f"{i:x}".rjust(64, "d"))
        sim.tick()
    assert len(sim.status.history) == 20
    assert [h.action for h in sim.status.history].count("Paused") == 1  # not recorded twice
    sim.set_spec(["paused"], False)
    sim.tick()
    assert [h.action for h in sim.status.history].count("Resumed") == 1


def test_awaiting_approval_a_failed_check_and_the_inconclusive_pause_post_events_once() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"approval": {}}, {"analysis": {}}], analysis=ANALYSIS))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    sim.tick(seconds=1)
    assert sim.reasons().count("AwaitingApproval") == 1
    sim.annotate("modeldeploy.io/approve", new)
    sim.tick()
    sim.tick(seconds=5, verdict=verdict("Fail", failures=1, at=sim.now))
    assert sim.reasons().count("AnalysisCheckFailed") == 1 and sim.status.canary is not None
    for i in range(1, 5):
        sim.tick(seconds=5, verdict=verdict("Inconclusive", failures=1, inconclusive=i, at=sim.now))
    assert sim.conds()["Paused"] == ("True", "AnalysisInconclusive")
    assert sim.reasons().count("AnalysisInconclusive") == 1


def check(sim: Sim, v: Verdict) -> AnalysisStatus:
    """A check run now, counted as the analyser counts it."""
    at = rfc3339(sim.now)
    return count(sim.status.analysis, v, at).model_copy(update={"last_run_at": at, "message": f"{v} (test)"})


def test_analysis_duration_counts_passing_checks_not_the_last_pass() -> None:
    analysis = {**ANALYSIS, "failureLimit": 3}
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {"duration": "20s"}}], analysis=analysis))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.step == 1
    for v in ("Pass", "Pass", "Fail", "Pass", "Pass", "Pass", "Pass"):  # checks at 5 s ... 35 s
        sim.tick(seconds=5, verdict=check_at(sim, 5, v))
        ca = sim.status.canary
        assert ca is not None and ca.step == 1, v  # at 20 s the step began 20 s ago, but passes only since 20 s
    sim.tick(seconds=5, verdict=check_at(sim, 5, "Pass"))  # 40 s: 20 s of passing checks
    assert sim.status.canary is None or sim.status.canary.step == 2


def check_at(sim: Sim, seconds: float, v: Verdict) -> AnalysisStatus:
    """The check that runs `seconds` from now (tick moves the clock first)."""
    sim.now += timedelta(seconds=seconds)
    try:
        return check(sim, v)
    finally:
        sim.now -= timedelta(seconds=seconds)


def test_spec_owner_labels_every_child_but_the_pods() -> None:
    wire = autoscaled(gw_md(steps=[{"setWeight": 20}]))
    wire["spec"]["serving"]["podDisruptionBudget"] = {"maxUnavailable": 1}
    sim = Sim(wire)
    deploy(sim)
    sim.set_model("2", SHA_B)
    p = sim.tick()
    kinds = set()
    for o in p.apply:
        kinds.add(o["kind"])
        assert o["metadata"]["labels"][LABEL_OWNER] == "team-fraud", o["kind"]
        if o["kind"] == "Deployment":
            assert LABEL_OWNER not in o["spec"]["template"]["metadata"]["labels"]  # an owner change restarts nothing
    assert kinds >= {
        "Deployment",
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "HTTPRoute",
    }
