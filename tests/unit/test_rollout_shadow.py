"""The shadow step, tick by tick: the candidate answers mirrored copies only, stable's pods carry the mirror
settings while it runs, the agreement gate passes or rolls back, and the mirror stops with the step."""

from __future__ import annotations

import json
from typing import Any

from modeldeploy.operator.api.status import CheckResult

from .test_planner import ANALYSIS, SHA_B, Sim, deploy, make_md, verdict
from .test_planner_gateway import gw_md, weights

SHADOW = {"shadow": {"percent": 50, "duration": "20s", "minAgreementPercent": 98}}


def at_shadow(md: dict[str, Any]) -> tuple[Sim, str, str]:
    sim = Sim(md)
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.step == 0 and ca.step_action == "shadow", ca
    return sim, old, new


def passing(sim: Sim, agreement: float = 100.0) -> Any:
    v = verdict("Pass", passes=1, at=sim.now)
    check = CheckResult(metric="agreementPercent", verdict="Pass", value=agreement, threshold=98, message="agrees")
    return v.model_copy(update={"checks": [check]})


def test_the_candidate_answers_no_live_request_and_stable_mirrors_to_it() -> None:
    sim, old, new = at_shadow(make_md(steps=[SHADOW, {"setWeight": 50}], analysis=ANALYSIS))
    p = sim.plans[-1]
    ca = sim.status.canary
    assert ca is not None and ca.effective_weight == 0 and ca.replicas == 1  # 50% of 2 stable pods: 1 pod
    assert p.serving == {old} and new in p.out_of_rotation
    assert p.tracks == {old: "stable", new: "shadow"}
    assert p.mirror is not None
    mirror = json.loads(p.mirror)
    assert mirror == {"url": "http://fraud-canary.ml.svc:8080", "percent": 50, "candidate": new, "timeoutMs": 1000}
    assert "shadow: stable mirrors 50%" in sim.cond("Progressing").message
    assert sim.status.stable is not None and sim.status.stable.weight == 100


def test_a_passing_shadow_goes_on_to_its_first_set_weight_and_the_mirror_stops() -> None:
    sim, _old, new = at_shadow(make_md(steps=[SHADOW, {"setWeight": 50}, {"pause": {}}], analysis=ANALYSIS))
    sim.tick(seconds=10, verdict=passing(sim))
    assert sim.status.canary is not None and sim.status.canary.step == 0  # 20 s not over yet
    p = sim.tick(seconds=10, verdict=passing(sim, 99.5))
    p = sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.step >= 1 and ca.effective_weight > 0
    assert p.mirror is None and p.tracks[new] == "canary" and new in p.serving
    done = [e for e in sim.events if e[1] == "StepCompleted" and "shadow" in e[2]]
    assert done and "agreement 99.5%" in done[0][2]


def test_a_failing_shadow_rolls_back_saying_no_live_request_reached_it() -> None:
    sim, old, _new = at_shadow(make_md(steps=[SHADOW, {"setWeight": 50}], analysis=ANALYSIS))
    sim.tick(seconds=5, verdict=verdict("Fail", failures=1, at=sim.now))
    p = sim.tick(seconds=5, verdict=verdict("Fail", failures=2, at=sim.now))
    assert sim.status.canary is None and p.rollback == "AnalysisFailed"
    assert p.mirror is None and p.serving == {old}
    msg = sim.cond("Stalled").message
    assert "no live request reached it" in msg


def test_abort_stops_the_mirror() -> None:
    sim, _old, _new = at_shadow(make_md(steps=[SHADOW, {"setWeight": 50}], analysis=ANALYSIS))
    sim.annotate("modeldeploy.io/abort", "INC-1")
    p = sim.tick()
    assert p.rollback == "Aborted" and p.mirror is None


def test_a_shadow_without_checks_never_passes_by_time_alone() -> None:
    sim, _old, _new = at_shadow(make_md(steps=[SHADOW, {"setWeight": 50}], analysis=ANALYSIS))
    for _ in range(4):
        sim.tick(seconds=5, verdict=verdict("Inconclusive", inconclusive=1, at=sim.now))
    ca = sim.status.canary
    assert ca is not None and ca.step == 0


def test_under_gateway_routing_the_shadow_gets_weight_0_on_the_route() -> None:
    sim, _old, new = at_shadow(gw_md(steps=[SHADOW, {"setWeight": 20}], analysis=ANALYSIS))
    p = sim.plans[-1]
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}
    assert p.mirror is not None and p.tracks[new] == "shadow"
