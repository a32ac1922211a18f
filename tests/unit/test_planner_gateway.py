"""Gateway API routing: the HTTPRoute the operator owns, its exact weights tick by tick, full-size canaries."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator import manifests as m
from modeldeploy.operator.api import ModelDeployment
from modeldeploy.operator.rollout import Observed, Plan, effective_for, plan

from .test_planner import ANALYSIS, SHA_B, T0, Sim, deploy, make_md, verdict

ROUTING = {"gatewayAPI": {"httpRoute": "fraud-route", "gateway": {"name": "edge", "namespace": "gw"}}}


def gw_md(steps: list[dict[str, Any]] | None = None, **rollout: Any) -> dict[str, Any]:
    return make_md(steps=steps, trafficRouting=ROUTING, **rollout)


def route_of(p: Plan) -> dict[str, Any]:
    routes = [o for o in p.apply if o["kind"] == "HTTPRoute"]
    assert len(routes) == 1, [o["kind"] for o in p.apply]
    return routes[0]


def weights(p: Plan) -> dict[str, int]:
    return m.route_weights(route_of(p))


def service(p: Plan, name: str) -> dict[str, Any]:
    return next(o for o in p.apply if o["kind"] == "Service" and o["metadata"]["name"] == name)


# ------------------------------------------------------------------------------------- manifests


def test_route_manifest_weights_parent_match_owner() -> None:
    md = ModelDeployment.from_wire(gw_md())
    r = m.http_route(md, 20)
    assert r is not None
    assert r["apiVersion"] == "gateway.networking.k8s.io/v1" and r["kind"] == "HTTPRoute"
    assert r["metadata"]["name"] == "fraud-route" and r["metadata"]["namespace"] == "ml"
    assert r["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert r["metadata"]["labels"][m.LABEL_MANAGED_BY] == "modeldeploy"
    assert r["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "gw"}
    ]
    (rule,) = r["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models/fraud"}}]
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "fraud-stable", "port": m.PORT, "weight": 80},
        {"group": "", "kind": "Service", "name": "fraud-canary", "port": m.PORT, "weight": 20},
    ]
    assert "hostnames" not in r["spec"]  # left to another field manager
    assert m.route_weights(m.http_route(md, 150) or {}) == {"fraud-stable": 0, "fraud-canary": 100}


def test_route_without_gateway_leaves_parent_refs_alone_and_none_under_replica_ratio() -> None:
    md = ModelDeployment.from_wire(make_md(trafficRouting={"gatewayAPI": {"httpRoute": "r"}}))
    r = m.http_route(md, 0)
    assert r is not None and "parentRefs" not in r["spec"]
    assert m.route_weights(r) == {"fraud-stable": 100, "fraud-canary": 0}
    assert m.http_route(ModelDeployment.from_wire(make_md()), 10) is None


def test_endpoint_service_selects_only_stable_under_gateway_api() -> None:
    gw = m.services(ModelDeployment.from_wire(gw_md()), "s1", "c1")
    assert gw[0]["spec"]["selector"][m.LABEL_REVISION] == "s1"
    ratio = m.services(ModelDeployment.from_wire(make_md()), "s1", "c1")
    assert m.LABEL_REVISION not in ratio[0]["spec"]["selector"]


# ------------------------------------------------------------------------------------- planner


def test_first_deploy_routes_everything_to_stable() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 20}]))
    p = sim.tick()
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}
    assert service(p, "fraud-stable")["spec"]["selector"][m.LABEL_REVISION] == sim.rev
    deploy_rev = deploy(sim)
    assert weights(sim.plans[-1]) == {"fraud-stable": 100, "fraud-canary": 0}
    assert sim.status.stable is not None and sim.status.stable.weight == 100
    assert deploy_rev == sim.rev


def test_exact_weights_full_size_canary_and_promotion() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50}]))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    p = sim.tick(settle=False)  # the canary's Deployment is created at full size, no pod Ready yet
    assert sim.deployments[new].replicas == 2
    ca = sim.status.canary
    assert ca is not None and ca.weight == 20 and ca.effective_weight == 0 and ca.replicas == 2
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}
    assert "HTTPRoute" in sim.cond("Progressing").message

    p = sim.tick()  # both canary pods Ready: the route gives it exactly 20%
    ca = sim.status.canary
    assert ca is not None and (ca.weight, ca.effective_weight, ca.step) == (20, 20, 1)
    assert weights(p) == {"fraud-stable": 80, "fraud-canary": 20}
    assert sim.status.stable is not None and sim.status.stable.weight == 80
    assert service(p, "fraud-canary")["spec"]["selector"][m.LABEL_REVISION] == new
    assert service(p, "fraud")["spec"]["selector"][m.LABEL_REVISION] == old
    assert p.serving == {old, new}

    p = sim.tick(seconds=10)  # pause over -> setWeight 50 at once (no pods to wait for) -> promoted
    st = sim.status
    assert p.promoted and st.canary is None and st.stable is not None and st.stable.revision == new
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}
    assert service(p, "fraud-stable")["spec"]["selector"][m.LABEL_REVISION] == new
    assert service(p, "fraud")["spec"]["selector"][m.LABEL_REVISION] == new
    assert sim.deployments[new].replicas == 2


def test_weight_set_at_once_when_pods_already_ready() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}, {"approval": {}}]))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert weights(sim.plans[-1]) == {"fraud-stable": 90, "fraud-canary": 10}
    sim.set_spec(["paused"], True)
    sim.tick()
    sim.set_spec(["paused"], False)
    p = sim.tick(settle=False)  # resumed: setWeight 60 needs no new pod
    ca = sim.status.canary
    assert ca is not None and (ca.weight, ca.effective_weight) == (60, 60)
    assert weights(p) == {"fraud-stable": 40, "fraud-canary": 60}


def test_abort_sets_canary_weight_zero_in_the_same_plan() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert weights(sim.plans[-1]) == {"fraud-stable": 50, "fraud-canary": 50}
    sim.annotate("modeldeploy.io/abort", "true")
    p = sim.tick(settle=False)
    assert p.rollback == "Aborted" and sim.status.canary is None
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}
    assert service(p, "fraud-stable")["spec"]["selector"][m.LABEL_REVISION] == old
    assert service(p, "fraud-canary")["spec"]["selector"][m.LABEL_REVISION] == old
    assert sim.status.stable is not None and sim.status.stable.weight == 100
    assert new in p.out_of_rotation


def test_analysis_rollback_sets_canary_weight_zero() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 30}, {"analysis": {}}], analysis=ANALYSIS))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert weights(sim.plans[-1])["fraud-canary"] == 30
    p = sim.tick(seconds=5, verdict=verdict("Fail", failures=2, at=sim.now))
    assert p.rollback == "AnalysisFailed"
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}


def test_after_the_last_step_the_weight_holds_until_a_passing_check_promotes() -> None:
    sim = Sim(gw_md(steps=[{"setWeight": 25}], analysis=ANALYSIS))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    p = sim.tick()  # Ready at 25%; the only step done: waits for a Pass with stable still serving 75%
    ca = sim.status.canary
    assert ca is not None and ca.step == 1 and (ca.weight, ca.effective_weight) == (25, 25)
    assert weights(p) == {"fraud-stable": 75, "fraud-canary": 25}
    p = sim.tick(seconds=5, verdict=verdict("Pass", passes=1, at=sim.now))
    assert p.promoted and sim.status.stable is not None and sim.status.stable.revision == new
    assert weights(p) == {"fraud-stable": 100, "fraud-canary": 0}


def test_without_gateway_api_crds_the_spec_stalls_and_no_route_is_applied() -> None:
    md = ModelDeployment.from_wire(gw_md(steps=[{"setWeight": 20}]))
    p = plan(md, effective_for(md.spec), Observed(gateway_api=False), None, T0)
    assert not [o for o in p.apply if o["kind"] == "HTTPRoute"]
    stalled = next(c for c in p.status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == "InvalidSpec"
    assert "Gateway API CRDs" in stalled.message
    p = plan(md, effective_for(md.spec), Observed(gateway_api=True), None, T0)
    assert route_of(p)["metadata"]["name"] == "fraud-route"
