"""Two operator replicas with leader election on the local cluster: the leader's pod is killed in the middle
of a canary, the standby takes the Lease over and resumes the canary at the same step, with no duplicate
child and no decision lost or taken twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.installed import InstalledOperator

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster

TAKEOVER_S = 15.0


@pytest.fixture
def two_operators(
    local_cluster: ClusterHandle, k8s_namespace: str, crds: None, tmp_path: Path
) -> Iterator[InstalledOperator]:
    op = InstalledOperator(
        local_cluster, k8s_namespace, tmp_path / "operator.log", replicas=2, leaderElection={"enabled": True}
    ).start()
    wait_for(lambda: len(ready(op)) == 2, 120, "both operator replicas Ready")
    yield op
    op.stop()


def ready(op: InstalledOperator) -> list[str]:
    out = []
    for pod in op.pods():
        conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if conditions.get("Ready") == "True":
            out.append(str(pod["metadata"]["name"]))
    return out


def holder(cluster: ClusterHandle, op: InstalledOperator) -> str | None:
    lease: dict[str, Any] = cluster.get_json("lease", op.deployment, "-n", op.namespace)
    name = lease.get("spec", {}).get("holderIdentity")
    return str(name) if name else None


def test_a_standby_resumes_the_canary_at_the_same_step_within_15s(
    local_cluster: ClusterHandle, two_operators: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    op = two_operators
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}, {"pause": {"duration": "1s"}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    mdep.apply(onnx_models["2"], steps=steps)
    before = mdep.wait_cond("AwaitingApproval", "True")["status"]
    leader = wait_for(lambda: holder(local_cluster, op), 30, "a Lease holder")
    assert leader in ready(op)
    names_before = sorted(d["metadata"]["name"] for d in mdep.deployments())

    local_cluster.kubectl("delete", "pod", leader, "-n", op.namespace, "--grace-period=0", "--force", "--wait=false")
    killed = time.monotonic()
    mdep.annotate("modeldeploy.io/approve", before["canary"]["revision"])  # a decision made while nobody leads

    def resumed() -> dict[str, Any] | None:
        st = mdep.status()
        ca = st.get("canary") or {}
        done = ca.get("step", 0) > before["canary"]["step"] or st.get("stable", {}).get("revision") == ca.get(
            "revision", before["canary"]["revision"]
        )
        return st if done else None

    st = wait_for(resumed, TAKEOVER_S + 5, "the standby to act on the approval")
    took = time.monotonic() - killed
    new = holder(local_cluster, op)
    assert new is not None and new != leader
    print(f"\nleader {leader} killed; {new} acted on the approval {took:.1f}s later")
    assert took <= TAKEOVER_S, f"the canary resumed {took:.1f}s after the leader's loss"
    # it resumed from status: the same rollout, not a new one
    hist = st["history"]
    assert [h["action"] for h in hist].count("Approved") == 1
    assert [h["action"] for h in hist].count("RolloutStarted") == 2
    if st.get("canary"):
        assert st["canary"]["startedAt"] == before["canary"]["startedAt"]
    mdep.wait_cond("Ready", "True")
    st = mdep.status()
    assert st["stable"]["revision"] == before["canary"]["revision"]
    assert [h["action"] for h in st["history"]].count("Promoted") == 1
    assert sorted(d["metadata"]["name"] for d in mdep.deployments()) == names_before
    rs = local_cluster.get_json("replicasets", "-n", mdep.namespace, "-l", "app.kubernetes.io/instance=clf")["items"]
    assert len(rs) == 2
