"""The controller over a fake Kube: durability of a rollback (hole 3), policies read fail closed (hole 6),
loops and metrics of gone objects and deleted children (hole 8), the contract read's back-off (hole 9)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest

from modeldeploy.operator import manifests, metrics
from modeldeploy.operator.analysis import Analyser
from modeldeploy.operator.contract import ContractReading
from modeldeploy.operator.controller import Loop, ObjectGone, Operator, reconcile, wiring
from modeldeploy.operator.controller.read import NOT_SERVED, Indexed, Snapshot, policy_inputs
from modeldeploy.operator.controller.wiring import edited_by_another
from modeldeploy.operator.controller.workqueue import APPLY_RESYNC_S
from modeldeploy.operator.kube import NotFound, ServerError
from modeldeploy.operator.policy import Unreadable

from .test_operator_metrics import FakeAnalyser
from .test_planner import ANALYSIS, SHA_B, Sim, deploy, make_md, verdict

ROUTING = {"gatewayAPI": {"httpRoute": "fraud-route", "gateway": {"name": "edge"}}}


class Kube:
    """Records every call in order; `status_failures` status writes fail first; policies and lists as set."""

    def __init__(self, obj: dict[str, Any] | None, policies: list[dict[str, Any]] | None = None) -> None:
        """`policies` None: the RolloutPolicy API is not served (404)."""
        self.obj = obj
        self.policies = policies
        self.calls: list[tuple[str, Any]] = []
        self.status_failures = 0
        self.pods: list[dict[str, Any]] = []

    @staticmethod
    def path_of(obj: dict[str, Any]) -> str:
        return f"{obj['kind']}/{obj['metadata']['name']}"

    async def get_md(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None if self.obj is None else json.loads(json.dumps(self.obj))

    async def list_policies(self) -> list[dict[str, Any]]:
        if self.policies is None:
            raise NotFound(404, "GET /apis/modeldeploy.io/v1alpha1/rolloutpolicies: the server could not find it")
        return self.policies

    async def list_objects(self, api_version: str, plural: str, *_: Any) -> list[dict[str, Any]]:
        return self.pods if plural == "pods" else []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", obj))
        return obj

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.calls.append(("scale", (name, replicas)))

    async def delete_deployment(self, namespace: str, name: str) -> None:
        self.calls.append(("delete", name))

    async def patch_pod(
        self, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str | None] | None = None
    ) -> None:
        self.calls.append(("label", (name, labels)))

    async def delete_object(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", name))

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        if self.status_failures > 0:
            self.status_failures -= 1
            raise ServerError(503, "PATCH .../status: etcdserver: request timed out")
        self.calls.append(("status", patch))

    async def post_event(self, *_: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def applied(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for c, o in self.calls if c == "apply" and (kind is None or o["kind"] == kind)]

    def statuses(self) -> list[dict[str, Any]]:
        return [p for c, p in self.calls if c == "status"]


def operator(kube: Kube, analyser: Any = None) -> Operator:
    return Operator(kube, cast("Analyser | None", analyser))


def run(op: Operator, loop: Loop | None = None) -> float | None:
    return asyncio.run(op.reconcile("ml", "fraud", loop or Loop()))


# ------------------------------------------------------------------------------ hole 3: durability


def gateway_canary_one_failure_behind() -> dict[str, Any]:
    """Under gatewayAPI routing, the canary at 50% in its analysis step, one failed check behind it."""
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=ANALYSIS, trafficRouting=ROUTING))
    deploy(sim)
    sim.set_model("2", SHA_B)
    sim.tick()
    sim.tick()
    first = datetime.now(UTC) - timedelta(seconds=6)
    sim.tick(verdict=verdict("Fail", failures=1, at=first).model_copy(update={"first_failure_at": first.isoformat()}))
    assert sim.status.canary is not None and sim.status.canary.weight == 50
    return sim.obj


def canary_weight(route: dict[str, Any]) -> int:
    refs = route["spec"]["rules"][0]["backendRefs"]
    return int(next(r["weight"] for r in refs if r["name"].endswith("-canary")))


def test_rollback_status_is_written_before_the_routing_change_and_a_failed_write_changes_no_routing() -> None:
    kube = Kube(gateway_canary_one_failure_behind(), [])
    kube.status_failures = 1
    with pytest.raises(ServerError):
        run(operator(kube, FakeAnalyser("Fail")))
    assert kube.calls == [], "a rollback whose status write failed sent no routing change"

    # the next pass re-plans from the status it reads (still the canary at 50%) and completes the rollback
    run(operator(kube, FakeAnalyser("Fail")))
    kinds = [c if c != "apply" else o["kind"] for c, o in kube.calls]
    assert kinds.index("status") < kinds.index("HTTPRoute"), kinds
    (status,) = kube.statuses()
    assert status["phase"] == "RolledBack" and status["rolledBackRevision"], status
    assert canary_weight(kube.applied("HTTPRoute")[-1]) == 0


def test_a_plan_without_rollback_still_writes_status_last() -> None:
    kube = Kube(make_md(steps=[{"setWeight": 20}], trafficRouting=ROUTING), [])
    run(operator(kube))
    assert kube.calls[-1][0] == "status" and kube.applied("HTTPRoute")


# --------------------------------------------------------------------- hole 6: policies fail closed


INVALID_POLICY = {
    "apiVersion": "modeldeploy.io/v1alpha1",
    "kind": "RolloutPolicy",
    "metadata": {"name": "standard"},
    "spec": {"tier": 3, "defaultSteps": "not-a-list"},
}


def test_policy_inputs_pass_the_unreadable_on() -> None:
    policies, unreadable = policy_inputs([INVALID_POLICY])
    assert policies == []
    (u,) = unreadable
    assert (u.name, u.tier) == ("standard", 3) and "defaultSteps" in u.reason
    assert policy_inputs(None) == ([], [Unreadable(None, None, NOT_SERVED)])


@pytest.mark.parametrize("policies", [[INVALID_POLICY], None], ids=["invalid-policy", "api-not-served"])
def test_an_unreadable_policy_holds_the_rollout_instead_of_running_unbounded(
    policies: list[dict[str, Any]] | None,
) -> None:
    kube = Kube(make_md(steps=[{"setWeight": 20}]), policies=policies)
    run(operator(kube))
    assert not kube.applied("Deployment"), "nothing is deployed while the governing policy cannot be read"
    (status,) = kube.statuses()
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec", stalled
    assert ("standard" if policies else "not served") in stalled["message"]


# ------------------------------------------------------------------ hole 8: gone objects, children


def test_forget_drops_every_per_object_series() -> None:
    for ns, name in (("gone", "md"), ("kept", "md")):
        metrics.series(metrics.CANARY_WEIGHT, ns, name, "requested").set(10)
        metrics.set_conditions(ns, name, [("Ready", "True")])
        metrics.series(metrics.ROLLOUTS, ns, name, "Promoted").inc()
        metrics.series(metrics.ANALYSIS_VERDICTS, ns, name, "Pass").inc()
        metrics.series(metrics.ROLLBACKS, ns, name, "AnalysisFailed").inc()
    metrics.forget("gone", "md")

    def series(ns: str) -> list[str]:
        return [
            f"{s.name}{s.labels}"
            for family in metrics.REGISTRY.collect()
            for s in family.samples
            if s.labels.get("namespace") == ns and s.labels.get("name") == "md"
        ]

    assert series("gone") == []
    assert len(series("kept")) >= 5


async def poll(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # poll


def test_a_loop_whose_object_is_gone_ends_and_forgets_its_metrics_without_a_deleted_event() -> None:
    metrics.series(metrics.CANARY_WEIGHT, "ml", "fraud", "requested").set(20)
    op = operator(Kube(None, []))

    async def main() -> None:
        op.queue.touch(("ml", "fraud"))
        task = op.loops[("ml", "fraud")].task
        assert task is not None
        await poll(task.done, "the loop to end")
        assert ("ml", "fraud") not in op.loops

    asyncio.run(main())
    labels = {"namespace": "ml", "name": "fraud", "kind": "requested"}
    assert metrics.REGISTRY.get_sample_value("modeldeploy_operator_canary_weight_percent", labels) is None
    with pytest.raises(ObjectGone):
        run(op)


def drive(op: Operator, body: Callable[[Loop], Awaitable[None]]) -> None:
    async def main() -> None:
        op.queue.touch(("ml", "fraud"))
        try:
            await body(op.loops[("ml", "fraud")])
        finally:
            await op.queue.stop()

    asyncio.run(main())


def test_a_deleted_child_leaves_the_apply_cache_and_is_applied_again() -> None:
    kube = Kube(make_md(steps=[{"setWeight": 20}]), [])
    op = operator(kube)

    def services() -> int:
        return sum(1 for o in kube.applied("Service") if o["metadata"]["name"] == "fraud")

    passes = 0
    inner = op.queue.run_pass

    async def counted(namespace: str, name: str, loop: Loop) -> float | None:
        nonlocal passes
        try:
            return await inner(namespace, name, loop)
        finally:
            passes += 1

    op.queue.run_pass = counted

    async def body(loop: Loop) -> None:
        await poll(lambda: services() == 1, "the first pass")
        n = passes
        loop.wake.set()  # a pass with nothing deleted applies nothing again
        await poll(lambda: passes > n, "a second pass")
        assert services() == 1
        op.queue.wake(("ml", "fraud"), dropped_child=Kube.path_of({"kind": "Service", "metadata": {"name": "fraud"}}))
        await poll(lambda: services() == 2, "the deleted Service applied again")

    drive(op, body)


def test_the_apply_cache_expires_at_the_resync() -> None:
    kube = Kube(make_md(steps=[{"setWeight": 20}]), [])
    op = operator(kube)

    async def body(loop: Loop) -> None:
        await poll(lambda: len(kube.applied("ServiceAccount")) == 1, "the first pass")
        loop.applied_since -= APPLY_RESYNC_S * 1.2  # as if the (jittered) apply resync period had passed
        loop.wake.set()
        await poll(lambda: len(kube.applied("ServiceAccount")) == 2, "every child applied again")

    drive(op, body)


# ----------------------------------------------------------------------- hole 9: contract back-off


def test_contract_delay_doubles_from_2s_to_60s() -> None:
    assert [reconcile.contract_delay(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]


def pod(name: str, rev: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {manifests.LABEL_REVISION: rev}},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_an_unreadable_contract_is_retried_with_backoff_not_every_2s(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Sim(make_md(steps=[{"setWeight": 20}]))
    stable = deploy(sim)
    canary = sim.set_model("2", SHA_B)
    md = sim.md
    snap = Snapshot(sim.obj, md, None, [], [], [], [pod("s", stable, "10.0.0.1"), pod("c", canary, "10.0.0.2")])
    clock = [1000.0]
    reads: list[float] = []
    answer = [ContractReading(canary, unknown="connection refused")]

    async def read_contract(*_: Any, **__: Any) -> ContractReading:
        reads.append(clock[0] - 1000.0)
        return answer[0]

    monkeypatch.setattr(reconcile, "read_contract", read_contract)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    op, loop = operator(Kube(sim.obj, [])), Loop()
    handed: list[ContractReading | None] = []
    for t in range(0, 200):  # a pass every second: what a 2 s requeue or a burst of pod events gives
        clock[0] = 1000.0 + t
        handed.append(asyncio.run(op.read_contract(md, snap, loop)))
    assert reads == [0, 2, 6, 14, 30, 62, 122, 182]
    assert all(r is not None and r.unknown == "connection refused" for r in handed)  # status does not flap
    answer[0] = ContractReading(canary)
    clock[0] = 1000.0 + 242
    assert asyncio.run(op.read_contract(md, snap, loop)) == ContractReading(canary)
    assert loop.contract is None  # a reading resets the back-off


# ------------------------------------------------------------------------------------------ wiring


def test_startup_finds_the_indices_under_the_names_kopf_gives_them() -> None:
    registry = kopf.OperatorRegistry()
    wiring.register(registry)
    ids = {h.id for h in registry._indexing.get_all_handlers()}
    assert ids == set(wiring.INDICES)


def test_an_empty_policy_index_is_confirmed_once_and_again_after_a_policy_event_not_per_pass() -> None:
    calls: list[int | None] = []

    async def confirm(limit: int | None = None) -> list[dict[str, Any]]:
        calls.append(limit)
        return []

    async def main() -> None:
        source = Indexed({}, {}, {}, confirm=confirm)
        for _ in range(5):
            assert await source.policies() == []
        source.changed()  # e.g. the last policy was deleted, or the CRD with them
        assert await source.policies() == []

    asyncio.run(main())
    assert calls == [1, 1]


def test_a_child_edited_by_another_manager_is_drift_its_status_is_not() -> None:
    ours = {"manager": "modeldeploy", "operation": "Apply"}
    status = {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"}
    assert not edited_by_another({"metadata": {"managedFields": [ours, status]}})
    hand = {"manager": "kubectl-edit", "operation": "Update"}
    assert edited_by_another({"metadata": {"managedFields": [ours, hand]}})
