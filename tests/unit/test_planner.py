"""The planner, driven tick by tick with an injected clock through whole rollout scenarios.

`Sim` stands in for the cluster: it applies each Plan (Deployments get the replicas asked for;
their pods become Ready on the next tick unless a test says otherwise), writes the status back
through the wire form, and moves the clock only when a test says so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldeploy.localcluster import kstatus
from modeldeploy.operator.api import Analysis, AnalysisStatus, ModelDeployment, RolloutPolicy, Step
from modeldeploy.operator.api.spec import PauseStep
from modeldeploy.operator.api.status import Condition, ModelDeploymentStatus
from modeldeploy.operator.contract import ContractReading
from modeldeploy.operator.manifests import LABEL_REVISION
from modeldeploy.operator.revision import revision_of
from modeldeploy.operator.rollout import (
    Observed,
    Plan,
    PodProblem,
    RevisionState,
    effective_for,
    effective_weight,
    judging,
    plan,
    replicas_for_weight,
    should_hold_inconclusive,
    should_roll_back,
    weight_at,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def model(version: str, sha: str) -> dict[str, Any]:
    return {"name": "fraud", "version": version, "uri": f"file:///models/fraud-{version}.onnx", "sha256": sha}


def make_md(
    steps: list[dict[str, Any]] | None = None,
    replicas: int = 2,
    analysis: dict[str, Any] | None = None,
    **rollout: Any,
) -> dict[str, Any]:
    r: dict[str, Any] = {"scaleDownDelay": "30s", "progressDeadline": "60s", **rollout}
    if steps is not None:
        r["steps"] = steps
    if analysis is not None:
        r["analysis"] = analysis
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "uid-1", "generation": 1, "annotations": {}},
        "spec": {
            "owner": "team-fraud",
            "model": model("1", SHA_A),
            "serving": {"replicas": replicas},
            "rollout": r,
        },
    }


class Sim:
    """A fake cluster for the planner: Deployments, readiness, pod problems, a clock."""

    def __init__(self, obj: dict[str, Any], policies: list[dict[str, Any]] | None = None) -> None:
        self.obj = obj
        self.policies = [RolloutPolicy.from_wire(p) for p in policies or []]
        self.now = T0
        self.deployments: dict[str, RevisionState] = {}
        self.never_ready: set[str] = set()
        self.problems: dict[str, PodProblem] = {}
        self.plans: list[Plan] = []
        self.events: list[tuple[str, str, str]] = []
        self.contracts: dict[str, ContractReading] = {}
        """What the edge reads for a canary revision's model contract (default: the same as stable's)."""

    # --- the world
    @property
    def md(self) -> ModelDeployment:
        return ModelDeployment.from_wire(json.loads(json.dumps(self.obj)))

    @property
    def status(self) -> ModelDeploymentStatus:
        s = self.md.status
        assert s is not None
        return s

    @property
    def rev(self) -> str:
        return revision_of(self.md.spec)

    def cond(self, ctype: str) -> Condition:
        return next(c for c in self.status.conditions if c.type == ctype)

    def conds(self) -> dict[str, tuple[str, str]]:
        return {c.type: (c.status, c.reason) for c in self.status.conditions}

    def set_model(self, version: str, sha: str) -> str:
        self.obj["spec"]["model"] = model(version, sha)
        self.obj["metadata"]["generation"] += 1
        return self.rev

    def set_spec(self, path: list[str], value: Any) -> None:
        node = self.obj["spec"]
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
        self.obj["metadata"]["generation"] += 1

    def annotate(self, key: str, value: str, manager: str = "kubectl-annotate") -> None:
        self.obj["metadata"]["annotations"][key] = value
        mf = self.obj["metadata"].setdefault("managedFields", [])
        mf.append(
            {
                "manager": manager,
                "operation": "Update",
                "time": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{key}": {}}}},
            }
        )

    def settle(self) -> None:
        """Pods asked for become Ready (except never_ready revisions)."""
        for rev, d in list(self.deployments.items()):
            ready = 0 if rev in self.never_ready else d.replicas
            self.deployments[rev] = RevisionState(rev, d.replicas, ready, d.replicas, ready, True)

    def tick(self, seconds: float = 0.0, verdict: AnalysisStatus | None = None, settle: bool = True) -> Plan:
        self.now += timedelta(seconds=seconds)
        if settle:
            self.settle()
        md = self.md
        observed = Observed(self.deployments, self.problems, contract=self.read_contract())
        p = plan(md, effective_for(md.spec, self.policies), observed, verdict, self.now)
        self.plans.append(p)
        for obj in p.apply:
            if obj["kind"] == "Deployment":
                rev = obj["metadata"]["labels"][LABEL_REVISION]
                old = self.deployments.get(rev, RevisionState(rev))
                n = obj["spec"].get("replicas", old.replicas)
                self.deployments[rev] = RevisionState(rev, n, min(old.ready_replicas, n), n, old.available_replicas)
        for name, n in p.scale.items():
            rev = name.rsplit("-", 1)[1]
            old = self.deployments[rev]
            self.deployments[rev] = RevisionState(rev, n, min(old.ready_replicas, n), n, old.available_replicas)
        for name in p.delete:
            del self.deployments[name.rsplit("-", 1)[1]]
        self.obj["status"] = p.status.wire()
        self.events.extend((e.type, e.reason, e.message) for e in p.events)
        return p

    def read_contract(self) -> ContractReading | None:
        """As the edge does: read the spec's revision against stable while it is not stable, its
        contract is not checked yet, and it has a Ready pod."""
        st, rev = self.md.status, self.rev
        if st is None or st.stable is None or st.stable.revision == rev:
            return None
        ca = st.canary
        if ca is not None and ca.revision == rev and ca.contract is not None and ca.contract.checked:
            return None
        seen = self.deployments.get(rev)
        if seen is None or seen.ready_replicas < 1:
            return None
        return self.contracts.get(rev, ContractReading(rev))

    def reasons(self) -> list[str]:
        return [e[1] for e in self.events]


def deploy(sim: Sim) -> str:
    """First revision to stable: two ticks (apply, then Ready)."""
    sim.tick()
    sim.tick()
    assert sim.status.stable is not None and sim.status.canary is None
    return sim.status.stable.revision


def verdict(
    v: str, failures: int = 0, inconclusive: int = 0, passes: int = 0, at: datetime | None = None
) -> AnalysisStatus:
    return AnalysisStatus(
        last_run_at=(at or T0).strftime("%Y-%m-%dT%H:%M:%SZ"),
        verdict=v,
        consecutive_failures=failures,
        consecutive_inconclusive=inconclusive,
        passes=passes,
        message=f"{v}: latencyP99Ms 80 > 50 (canary 400 requests, stable 410, window 1m)",
    )


ANALYSIS = {"interval": "5s", "window": "10s", "failureLimit": 2, "inconclusiveLimit": 3, "slo": {"latencyP99Ms": 50}}

# ------------------------------------------------------------------------------------- small rules


@pytest.mark.parametrize(
    ("weight", "full", "pods", "share"),
    [
        (0, 2, 0, 0),
        (10, 2, 1, 33),
        (10, 10, 1, 9),
        (25, 3, 1, 25),
        (50, 2, 2, 50),
        (90, 2, 2, 50),
        (100, 2, 2, 50),
        (20, 4, 1, 20),
        (33, 4, 2, 33),
        (10, 0, 0, 0),
    ],
)
def test_replica_ratio_rounding(weight: int, full: int, pods: int, share: int) -> None:
    assert replicas_for_weight(weight, full) == pods
    assert effective_weight(pods, full) == share


def test_rollback_boundary_is_failure_limit_reached_not_one_before() -> None:
    a = Analysis(failure_limit=3)
    assert not should_roll_back(None, a)
    assert not should_roll_back(verdict("Fail", failures=2), a)
    assert should_roll_back(verdict("Fail", failures=3), a)
    assert should_roll_back(verdict("Fail", failures=4), a)
    assert not should_hold_inconclusive(verdict("Inconclusive", inconclusive=9), Analysis(inconclusive_limit=10))
    assert should_hold_inconclusive(verdict("Inconclusive", inconclusive=10), Analysis(inconclusive_limit=10))


def test_weight_at_each_step() -> None:
    steps = (Step(set_weight=10), Step(pause=PauseStep()), Step(set_weight=50))
    assert [weight_at(steps, i) for i in range(4)] == [10, 10, 50, 100]
    assert weight_at((Step(pause=PauseStep()),), 0) == 0


# ------------------------------------------------------------------------------------- scenarios


def test_first_deploy_goes_straight_to_stable_once_ready() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    p = sim.tick()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in p.apply)
    rev = sim.rev
    assert kinds == [
        ("Deployment", f"fraud-{rev}"),
        ("Service", "fraud"),
        ("Service", "fraud-canary"),
        ("Service", "fraud-stable"),
        ("ServiceAccount", "fraud-runtime"),
    ]
    assert sim.status.phase == "Pending"
    assert sim.conds()["Ready"] == ("False", "Deploying")
    assert sim.conds()["Reconciling"] == ("True", "Deploying")
    assert sim.conds()["Stalled"][0] == "False"
    assert sim.conds()["Available"][0] == "False"
    assert sim.status.observed_generation == 1
    assert sim.status.endpoint == "http://fraud.ml.svc:8080"
    assert p.requeue_after is not None and p.requeue_after <= 10

    sim.tick()  # pods Ready
    st = sim.status
    assert st.stable is not None and st.stable.revision == rev and st.stable.ready_replicas == 2
    assert st.canary is None
    assert st.phase == "Healthy"
    assert sim.conds()["Ready"] == ("True", "Serving")
    assert sim.conds()["Reconciling"][0] == "False"
    assert sim.conds()["Stalled"][0] == "False"
    assert sim.conds()["Available"] == ("True", "Serving")
    assert [h.action for h in st.history] == ["RolloutStarted", "Deployed"]
    assert "Deployed" in sim.reasons()

    # a steady tick changes nothing and asks for no requeue
    before = sim.obj["status"]
    p = sim.tick(seconds=100)
    assert sim.obj["status"] == before
    assert p.events == ()
    assert p.requeue_after is None


def test_canary_through_every_step_to_promotion() -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"pause": {"duration": "2s"}},
        {"setWeight": 50},
        {"pause": {"duration": "2s"}},
    ]
    sim = Sim(make_md(steps=steps, replicas=2))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    assert new != old

    sim.tick(settle=False)  # rollout starts; canary asked for 1 pod (25% of 2 -> 1 pod beside 2 = 33%)
    ca = sim.status.canary
    assert ca is not None and ca.revision == new and ca.step == 0 and ca.step_count == 4
    assert (ca.weight, ca.replicas, ca.ready_replicas, ca.effective_weight) == (25, 1, 0, 0)
    assert ca.step_action == "setWeight"
    assert sim.deployments[old].replicas == 2  # surge: stable keeps its full size
    assert sim.conds()["Ready"] == ("False", "CanaryInProgress")
    assert sim.conds()["Reconciling"][0] == "True"
    assert sim.conds()["Progressing"][0] == "True"
    assert "step 1/4" in sim.cond("Progressing").message
    assert sim.status.phase == "Progressing"

    sim.tick()  # canary pod Ready -> setWeight done, pause starts
    ca = sim.status.canary
    assert ca is not None and ca.step == 1 and ca.effective_weight == 33 and ca.step_action == "pause"
    assert "33% effective" in sim.cond("Progressing").message and "replica ratio" in sim.cond("Progressing").message
    assert sim.status.stable is not None and sim.status.stable.weight == 67
    p = sim.tick(seconds=1)
    assert sim.status.canary is not None and sim.status.canary.step == 1
    assert p.requeue_after is not None and 0 < p.requeue_after <= 1
    sim.tick(seconds=1, settle=False)  # pause over -> setWeight 50 asks for 2 pods
    assert sim.status.canary is not None and sim.status.canary.step == 2
    assert sim.status.canary.replicas == 2
    sim.tick()  # Ready -> second pause
    assert sim.status.canary is not None and sim.status.canary.step == 3 and sim.status.canary.effective_weight == 50
    sim.tick(seconds=2)  # pause over -> all steps done; full size already Ready -> promoted
    st = sim.status
    assert st.canary is None
    assert st.stable is not None and st.stable.revision == new and st.stable.model_version == "2"
    assert st.last_known_good is not None and st.last_known_good.revision == old
    assert [r.revision for r in st.retiring] == [old]
    assert sim.conds()["Ready"] == ("True", "Serving")
    assert [h.action for h in st.history][-2:] == ["RolloutStarted", "Promoted"]
    assert sim.plans[-1].promoted
    # the old stable is out of the endpoint at once, kept warm, and scaled to zero after scaleDownDelay
    assert old in sim.plans[-1].out_of_rotation and sim.plans[-1].serving == {new}
    assert sim.deployments[old].replicas == 2
    sim.tick(seconds=29)
    assert sim.deployments[old].replicas == 2
    sim.tick(seconds=1)
    assert sim.deployments[old].replicas == 0
    assert sim.status.retiring == []
    assert "ScaledDown" in sim.reasons()
    # track Services follow the revisions; no pod template ever carries the track
    svcs = {o["metadata"]["name"]: o for o in sim.plans[-1].apply if o["kind"] == "Service"}
    assert svcs["fraud-stable"]["spec"]["selector"][LABEL_REVISION] == new
    assert svcs["fraud-canary"]["spec"]["selector"][LABEL_REVISION] == new
    for p in sim.plans:
        for o in p.apply:
            if o["kind"] == "Deployment":
                assert "track" not in json.dumps(o["spec"]["template"]).lower()
                assert o["metadata"]["labels"][LABEL_REVISION] == new or o["metadata"]["name"] == f"fraud-{old}"


def test_old_stable_deployment_is_scaled_never_reapplied() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    old = deploy(sim)
    sim.set_model("2", SHA_B)
    p = sim.tick()
    names = [o["metadata"]["name"] for o in p.apply if o["kind"] == "Deployment"]
    assert names == [f"fraud-{sim.rev}"]
    assert p.scale == {f"fraud-{old}": 2}


def test_rollout_only_or_replicas_change_restarts_nothing() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    rev = deploy(sim)
    sim.set_spec(["rollout", "steps"], [{"setWeight": 10}, {"pause": {}}])
    sim.set_spec(["rollout", "analysis"], ANALYSIS)
    sim.set_spec(["serving", "replicas"], 3)
    sim.tick(settle=False)
    assert sim.rev == rev
    assert sim.status.canary is None
    assert sim.deployments[rev].replicas == 3
    assert sim.status.observed_generation == 4
    sim.tick()
    assert sim.conds()["Ready"] == ("True", "Serving")


def test_pause_until_resumed_and_spec_paused() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.status.canary is not None and sim.status.canary.step == 1
    assert sim.conds()["Paused"] == ("True", "PauseStep")
    assert sim.conds()["Ready"][0] == "False" and sim.conds()["Reconciling"][0] == "True"
    assert sim.conds()["Stalled"][0] == "False"
    assert sim.status.phase == "Paused"
    assert "spec" in sim.cond("Paused").message
    sim.tick(seconds=3600)
    assert sim.status.canary is not None and sim.status.canary.step == 1  # no deadline while paused by a step
    assert sim.conds()["Stalled"][0] == "False"
    # resume: set spec.paused and clear it
    sim.set_spec(["paused"], True)
    sim.tick()
    assert sim.conds()["Paused"] == ("True", "PausedBySpec")
    assert sim.status.history[-1].action == "Paused"
    sim.set_spec(["paused"], False)
    sim.tick()  # resumed; setWeight 100 is the full size, already Ready -> promoted in the same tick
    assert [h.action for h in sim.status.history][-3:] == ["Paused", "Resumed", "Promoted"]
    assert sim.status.stable is not None and sim.status.stable.revision == new


def test_spec_paused_holds_a_timed_rollout_and_resumes() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"setWeight": 100}]))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.set_spec(["paused"], True)
    sim.tick()
    sim.tick(seconds=600)  # past the progress deadline too: paused never stalls
    ca = sim.status.canary
    assert ca is not None and ca.step == 0
    assert sim.conds()["Paused"] == ("True", "PausedBySpec")
    assert sim.conds()["Reconciling"][0] == "True" and sim.conds()["Stalled"][0] == "False"
    sim.set_spec(["paused"], False)
    sim.tick()
    assert sim.status.canary is not None and sim.status.canary.step == 1
    assert sim.conds()["Paused"] == ("False", "Running")


def test_approval() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"approval": {"message": "check the dashboard"}}, {"setWeight": 100}]))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.conds()["AwaitingApproval"] == ("True", "ApprovalStep")
    assert sim.conds()["Ready"] == ("False", "AwaitingApproval")
    assert sim.conds()["Reconciling"][0] == "True" and sim.conds()["Stalled"][0] == "False"
    assert f"modeldeploy.io/approve={new}" in sim.cond("AwaitingApproval").message
    assert "check the dashboard" in sim.cond("AwaitingApproval").message
    assert sim.status.phase == "AwaitingApproval"
    sim.annotate("modeldeploy.io/approve", "0000000000")  # another revision: nothing happens
    sim.tick(seconds=700)
    assert sim.conds()["AwaitingApproval"][0] == "True"
    assert sim.conds()["Stalled"][0] == "False"
    sim.annotate("modeldeploy.io/approve", new, manager="kubectl-annotate")
    sim.tick()
    approved = [h for h in sim.status.history if h.action == "Approved"]
    assert len(approved) == 1 and approved[0].author == "kubectl-annotate"
    assert sim.status.handled is not None and sim.status.handled.approve == new
    assert sim.conds()["AwaitingApproval"][0] == "False"
    sim.tick()
    assert sim.status.stable is not None and sim.status.stable.revision == new


def test_second_approval_needs_a_new_value_and_by_annotation_names_the_author() -> None:
    sim = Sim(make_md(steps=[{"approval": {}}, {"setWeight": 50}, {"approval": {}}]))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.annotate("modeldeploy.io/approve", new)  # approved ahead
    sim.annotate("modeldeploy.io/approve-by", "alice@example.com")
    sim.tick()
    sim.tick()  # one canary pod (for the contract check), then 2 pods for 50%
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.step == 2
    assert sim.conds()["AwaitingApproval"][0] == "True"
    sim.annotate("modeldeploy.io/approve", f"{new}/2")
    sim.tick()
    sim.tick()
    assert sim.status.stable is not None and sim.status.stable.revision == new
    authors = [h.author for h in sim.status.history if h.action == "Approved"]
    assert authors == ["alice@example.com", "alice@example.com"]


def rolled_back_contract(sim: Sim, stalled_reason: str, ready_reason: str = "RolledBack") -> None:
    c = sim.conds()
    assert c["Ready"] == ("False", ready_reason)
    assert c["Reconciling"][0] == "False"
    assert c["Stalled"] == ("True", stalled_reason)
    assert c["Degraded"] == ("True", stalled_reason)
    assert c["Available"][0] == "True"
    assert sim.status.phase == "RolledBack"


def test_abort_rolls_back_at_once_and_is_not_retried() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.deployments[new].replicas == 2
    sim.annotate("modeldeploy.io/abort", "true", manager="kubectl-annotate")
    p = sim.tick()
    st = sim.status
    assert st.canary is None and st.stable is not None and st.stable.revision == old
    assert st.rolled_back_revision is not None and st.rolled_back_revision.revision == new
    assert p.rollback == "Aborted"
    assert p.serving == {old} and new in p.out_of_rotation  # weight 0 at once
    assert st.history[-1].action == "Aborted" and st.history[-1].author == "kubectl-annotate"
    rolled_back_contract(sim, "Aborted")
    assert "modeldeploy.io/retry=" in sim.cond("Stalled").message
    # the aborted canary stays warm for scaleDownDelay, then goes to zero; it is not retried
    assert sim.deployments[new].replicas == 2
    for _ in range(3):
        sim.tick(seconds=15)
    assert sim.deployments[new].replicas == 0
    assert sim.status.canary is None
    rolled_back_contract(sim, "Aborted")
    n_events = len(sim.events)
    sim.tick(seconds=100)
    assert len(sim.events) == n_events  # a leftover annotation acts once


def test_retry_rolls_the_same_revision_out_again() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.annotate("modeldeploy.io/abort", "1")
    sim.tick()
    assert sim.status.rolled_back_revision is not None
    sim.annotate("modeldeploy.io/retry", "not-it")
    sim.tick()
    assert "RetryIgnored" in sim.reasons() and sim.status.canary is None
    sim.annotate("modeldeploy.io/retry", new, manager="argocd")
    sim.tick()
    st = sim.status
    assert st.rolled_back_revision is None
    # its pods are still warm (scale-down delay), so its first setWeight passes at once
    assert st.canary is not None and st.canary.revision == new and st.canary.step == 1
    assert [h.action for h in st.history][-2:] == ["Retried", "RolloutStarted"]
    assert st.history[-2].author == "argocd"
    assert sim.conds()["Reconciling"][0] == "True" and sim.conds()["Stalled"][0] == "False"


def test_spec_change_after_a_rollback_starts_a_new_rollout() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.annotate("modeldeploy.io/abort", "1")
    sim.tick()
    third = sim.set_model("3", SHA_C)
    sim.tick()
    assert sim.status.rolled_back_revision is None
    assert sim.status.canary is not None and sim.status.canary.revision == third


def test_canary_that_never_becomes_ready_stalls_at_the_progress_deadline() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.never_ready.add(new)
    sim.tick()
    for _ in range(5):
        p = sim.tick(seconds=10)
        assert p.requeue_after is not None and p.requeue_after <= 10
    assert sim.conds()["Stalled"][0] == "False"
    sim.tick(seconds=11)  # 61 s without progress
    c = sim.conds()
    assert c["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert c["Ready"] == ("False", "ProgressDeadlineExceeded")
    assert c["Reconciling"][0] == "False"
    assert c["Available"][0] == "True"
    assert sim.status.phase == "Failed"
    assert "0/2 pods Ready" in sim.cond("Stalled").message or "0/1 pods Ready" in sim.cond("Stalled").message
    assert sim.status.stable is not None and sim.status.stable.revision == old
    sim.tick(seconds=10)
    assert sim.reasons().count("ProgressDeadlineExceeded") == 1
    # when the pods come up after all, the rollout carries on
    sim.never_ready.clear()
    sim.tick()
    assert sim.conds()["Stalled"][0] == "False"
    assert sim.status.canary is not None and sim.status.canary.step == 1


def test_first_revision_that_never_becomes_ready_stalls() -> None:
    sim = Sim(make_md())
    sim.never_ready.add(sim.rev)
    sim.tick()
    sim.tick(seconds=61)
    c = sim.conds()
    assert c["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert c["Available"][0] == "False"


def test_spec_change_in_the_middle_of_a_rollout_supersedes_the_canary() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    old = deploy(sim)
    second = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.status.canary is not None and sim.status.canary.step == 1
    third = sim.set_model("3", SHA_C)
    p = sim.tick(settle=False)
    st = sim.status
    assert st.canary is not None and st.canary.revision == third and st.canary.step == 0
    assert [h.action for h in st.history][-2:] == ["Superseded", "RolloutStarted"]
    # the new canary takes no traffic before its model contract is read (its pods are not Ready yet)
    assert second in p.out_of_rotation and third in p.out_of_rotation and p.serving == {old}
    assert [r.revision for r in st.retiring] == [second]
    sim.tick(seconds=31)
    assert second not in sim.deployments  # a superseded canary is deleted after its delay
    # going back to the stable's spec drops the canary
    sim.set_model("1", SHA_A)
    sim.tick()
    assert sim.status.canary is None and sim.status.stable is not None and sim.status.stable.revision == old
    assert sim.conds()["Ready"] == ("True", "Serving")


def test_obsolete_revisions_are_deleted_and_known_ones_kept_at_zero() -> None:
    sim = Sim(make_md(steps=[]))
    first = deploy(sim)
    second = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert sim.status.stable is not None and sim.status.stable.revision == second
    third = sim.set_model("3", SHA_C)
    sim.tick()
    sim.tick()
    sim.tick(seconds=31)
    assert sim.status.stable is not None and sim.status.stable.revision == third
    assert sim.status.last_known_good is not None and sim.status.last_known_good.revision == second
    assert first not in sim.deployments  # deleted
    assert sim.deployments[second].replicas == 0  # kept at zero as last known good


def test_analysis_rolls_back_when_failures_reach_the_limit_not_one_before() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=ANALYSIS))
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    assert judging(sim.md, effective_for(sim.md.spec))
    assert sim.plans[-1].requeue_after == 0.0  # no analysis yet: a tick is due now
    sim.tick(verdict=verdict("Fail", failures=1, at=sim.now))
    assert sim.status.canary is not None and sim.status.rolled_back_revision is None
    assert sim.status.analysis is not None and sim.status.analysis.verdict == "Fail"
    assert "last analysis verdict: Fail" in sim.cond("Progressing").message
    p = sim.tick(seconds=5, verdict=verdict("Fail", failures=2, at=sim.now + timedelta(seconds=5)))
    st = sim.status
    assert p.rollback == "AnalysisFailed"
    assert st.canary is None and st.rolled_back_revision is not None and st.rolled_back_revision.revision == new
    assert p.serving == {old} and new in p.out_of_rotation
    rolled_back_contract(sim, "AnalysisFailed")
    assert "latencyP99Ms 80 > 50" in sim.cond("Stalled").message
    assert st.history[-1].action == "RolledBack" and st.history[-1].author == "modeldeploy"
    assert not judging(sim.md, effective_for(sim.md.spec))


def test_inconclusive_limit_pauses_and_a_pass_resumes() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}], analysis=ANALYSIS))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    sim.tick(verdict=verdict("Inconclusive", inconclusive=2, at=sim.now))
    assert sim.conds()["Paused"][0] == "False"
    sim.tick(seconds=5, verdict=verdict("Inconclusive", inconclusive=3, at=sim.now + timedelta(seconds=5)))
    assert sim.conds()["Paused"] == ("True", "AnalysisInconclusive")
    assert sim.conds()["Reconciling"][0] == "True" and sim.conds()["Stalled"][0] == "False"
    assert sim.status.canary is not None and sim.status.canary.step == 1
    assert judging(sim.md, effective_for(sim.md.spec))  # analysis goes on while held
    sim.tick(seconds=5, verdict=verdict("Pass", passes=1, at=sim.now + timedelta(seconds=5)))
    assert sim.conds()["Paused"][0] == "False"
    # the analysis step passed; setWeight 100 is the full size, already Ready; the last verdict is a Pass
    assert sim.status.stable is not None and sim.status.stable.revision == new


def test_with_analysis_no_data_never_promotes() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}], analysis=ANALYSIS))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    sim.tick()
    assert sim.status.canary is not None  # all steps done, no verdict yet
    assert "waits for a passing analysis" in sim.cond("Progressing").message
    sim.tick(seconds=5, verdict=verdict("Inconclusive", inconclusive=1, at=sim.now + timedelta(seconds=5)))
    assert sim.status.canary is not None
    sim.tick(seconds=5, verdict=verdict("Pass", passes=1, at=sim.now + timedelta(seconds=5)))
    assert sim.status.stable is not None and sim.status.stable.revision == new


def test_analysis_step_with_duration_needs_time_and_a_pass() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {"duration": "20s"}}], analysis=ANALYSIS))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    sim.tick(seconds=5, verdict=verdict("Pass", passes=1, at=sim.now + timedelta(seconds=5)))
    assert sim.status.canary is not None and sim.status.canary.step == 1
    sim.tick(seconds=16)
    assert sim.status.stable is not None and sim.status.stable.model_version == "2"


def test_promote_full_skips_the_steps_and_the_analysis() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 10}, {"pause": {}}, {"approval": {}}], analysis=ANALYSIS))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    sim.annotate("modeldeploy.io/promote-full", "yes", manager="ops-bot")
    sim.tick(settle=False)
    assert sim.status.canary is not None and sim.status.canary.replicas == 2
    sim.tick()
    assert sim.status.stable is not None and sim.status.stable.revision == new
    actions = [(h.action, h.author) for h in sim.status.history]
    assert ("PromotedFull", "ops-bot") in actions and actions[-1][0] == "Promoted"


def test_digest_mismatch_and_crash_loop_roll_back() -> None:
    for reason in ("DigestMismatch", "CanaryFailed"):
        sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
        deploy(sim)
        new = sim.set_model("2", SHA_B)
        sim.never_ready.add(new)
        sim.tick()
        sim.problems[new] = PodProblem(reason, f"{reason}: container runtime exited 4")
        p = sim.tick()
        assert p.rollback == reason
        rolled_back_contract(sim, reason, ready_reason=reason)
        assert sim.status.rolled_back_revision is not None


def test_first_revision_with_a_digest_mismatch_is_stalled_and_unavailable() -> None:
    sim = Sim(make_md())
    rev = sim.rev
    sim.never_ready.add(rev)
    sim.tick()
    sim.problems[rev] = PodProblem("DigestMismatch", "sha256 of the model differs")
    sim.tick()
    c = sim.conds()
    assert c["Stalled"] == ("True", "DigestMismatch") and c["Ready"][0] == "False" and c["Available"][0] == "False"


def test_policy_violations_stall_with_invalid_spec_and_create_nothing_new() -> None:
    policy = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "RolloutPolicy",
        "metadata": {"name": "strict"},
        "spec": {"tier": 3, "maxStepWeight": 20, "requireApproval": True},
    }
    sim = Sim(make_md(steps=[{"setWeight": 50}]), policies=[policy])
    p = sim.tick()
    assert not [o for o in p.apply if o["kind"] == "Deployment"]
    c = sim.conds()
    assert c["Stalled"] == ("True", "InvalidSpec")
    assert c["Ready"][0] == "False" and c["Reconciling"][0] == "False"
    msg = sim.cond("Stalled").message
    assert "setWeight" in msg and "strict" in msg and "approval" in msg.lower()
    assert sim.status.phase == "Failed"
    assert sim.reasons().count("InvalidSpec") == 1
    sim.tick()
    assert sim.reasons().count("InvalidSpec") == 1


def test_invalid_spec_keeps_what_serves() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    old = deploy(sim)
    sim.set_spec(["rollout", "steps"], [{"analysis": {}}])  # an analysis step with no analysis
    sim.set_model("2", SHA_B)
    p = sim.tick()
    assert sim.conds()["Stalled"] == ("True", "InvalidSpec")
    assert sim.conds()["Available"][0] == "True"
    assert p.scale == {f"fraud-{old}": 2} and not [o for o in p.apply if o["kind"] == "Deployment"]


def test_a_shadow_step_without_an_analysis_is_refused_and_stable_keeps_serving() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    old = deploy(sim)
    sim.set_spec(["rollout", "steps"], [{"shadow": {"duration": "1m"}}, {"setWeight": 50}])
    sim.set_model("2", SHA_B)
    p = sim.tick()
    assert sim.conds()["Stalled"] == ("True", "InvalidSpec")
    msg = sim.cond("Stalled").message
    assert "steps[0] is a shadow step" in msg and "no analysis is configured" in msg
    assert sim.conds()["Available"][0] == "True"
    assert p.scale == {f"fraud-{old}": 2} and not [o for o in p.apply if o["kind"] == "Deployment"]


def test_history_is_bounded() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    deploy(sim)
    for i in range(15):
        sim.set_model(str(i + 2), f"{i:064x}")
        sim.tick()
    assert len(sim.status.history) == 20
    assert sim.status.history[-1].action == "RolloutStarted"


def test_last_transition_time_is_kept_when_status_does_not_flip() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {"duration": "10s"}}, {"approval": {}}]))
    deploy(sim)
    ready_since = sim.cond("Ready").last_transition_time
    sim.tick(seconds=5)
    assert sim.cond("Ready").last_transition_time == ready_since
    sim.set_model("2", SHA_B)
    sim.tick(seconds=5)
    flipped = sim.cond("Ready").last_transition_time
    assert flipped != ready_since
    reconciling = sim.cond("Reconciling").last_transition_time
    sim.tick(seconds=5)  # step changes, Ready's message changes, status does not flip
    sim.tick(seconds=11)
    assert sim.cond("Ready").last_transition_time == flipped
    assert sim.cond("Reconciling").last_transition_time == reconciling
    assert sim.conds()["AwaitingApproval"][0] == "True"


# ------------------------------------------------------------------ DESIGN's status table, with kstatus


def _situations() -> dict[str, Sim]:
    out: dict[str, Sim] = {}
    s = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}, {"approval": {}}], analysis=ANALYSIS))
    deploy(s)
    out["steady"] = s
    s = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {"duration": "1m"}}]))
    deploy(s)
    s.set_model("2", SHA_B)
    s.tick()
    out["canary stepping"] = s
    s = Sim(make_md(steps=[{"setWeight": 50}, {"pause": {}}]))
    deploy(s)
    s.set_model("2", SHA_B)
    s.tick()
    s.tick()
    out["paused"] = s
    s = Sim(make_md(steps=[{"setWeight": 50}, {"approval": {}}]))
    deploy(s)
    s.set_model("2", SHA_B)
    s.tick()
    s.tick()
    out["awaiting approval"] = s
    s = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=ANALYSIS))
    deploy(s)
    s.set_model("2", SHA_B)
    s.tick()
    s.tick()
    s.tick(verdict=verdict("Fail", failures=2))
    out["rolled back"] = s
    s = Sim(make_md(steps=[{"analysis": {}}]))
    s.tick()
    out["invalid spec"] = s
    s = Sim(make_md())
    s.never_ready.add(s.rev)
    s.tick()
    s.problems[s.rev] = PodProblem("DigestMismatch", "sha256 mismatch")
    s.tick()
    out["digest mismatch"] = s
    s = Sim(make_md(steps=[{"setWeight": 50}]))
    deploy(s)
    s.never_ready.add(s.set_model("2", SHA_B))
    s.tick()
    s.tick(seconds=61)
    out["progress deadline"] = s
    return out


TABLE = {
    #  situation: (Ready, Reconciling, Stalled, Stalled reason or None, extra conditions True, kstatus)
    "steady": ("True", "False", "False", None, {"Available"}, "Current"),
    "canary stepping": ("False", "True", "False", None, {"Progressing", "Available"}, "InProgress"),
    "paused": ("False", "True", "False", None, {"Paused", "Progressing"}, "InProgress"),
    "awaiting approval": ("False", "True", "False", None, {"AwaitingApproval", "Progressing"}, "InProgress"),
    "rolled back": ("False", "False", "True", "AnalysisFailed", {"Available", "Degraded"}, "Failed"),
    "invalid spec": ("False", "False", "True", "InvalidSpec", set(), "Failed"),
    "digest mismatch": ("False", "False", "True", "DigestMismatch", {"Degraded"}, "Failed"),
    "progress deadline": ("False", "False", "True", "ProgressDeadlineExceeded", {"Available"}, "Failed"),
}


def _kstatus_available() -> bool:
    try:
        kstatus.binary()
    except FileNotFoundError:
        return False
    return True


@pytest.mark.parametrize("situation", list(TABLE))
def test_status_contract_table(situation: str) -> None:
    sim = _situations()[situation]
    ready, reconciling, stalled, stalled_reason, extra, kstat = TABLE[situation]
    c = sim.conds()
    assert len(c) == 8
    assert (c["Ready"][0], c["Reconciling"][0], c["Stalled"][0]) == (ready, reconciling, stalled)
    if stalled_reason:
        assert c["Stalled"][1] == stalled_reason
    for other in extra:
        assert c[other][0] == "True", (other, c[other])
    if situation == "rolled back":
        assert c["Ready"][1] == "RolledBack"
    for cnd in sim.status.conditions:
        assert cnd.reason.isalnum() and cnd.reason[0].isupper()
        if cnd.status == "True" and cnd.type not in ("Ready", "Available"):
            assert len(cnd.message) > 20, cnd
    assert sim.status.observed_generation == sim.obj["metadata"]["generation"]
    if _kstatus_available():
        assert kstatus.compute(sim.obj)[0] == kstat
