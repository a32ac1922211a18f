"""The real operator (`python -m modeldeploy.operator`) against the local cluster, with real runtime pods."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from e2e.installed import InstalledOperator
from tests.runtime import models

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for
from modeldeploy.operator.api import ModelDeployment
from modeldeploy.operator.revision import revision_of

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster


def reconciles(op: InstalledOperator) -> float:
    for line in op.metrics().splitlines():
        if line.startswith("modeldeploy_operator_reconcile_duration_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def rev(m: Mdep, manifest: dict[str, Any]) -> str:
    return revision_of(ModelDeployment.from_wire(manifest).spec)


def test_deploy_serve_columns_kstatus_and_gc(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    v1 = onnx_models["1"]
    manifest = mdep.manifest(v1, steps=[])
    mdep.apply(v1, steps=[])
    # kubectl wait returns once the first revision is Ready and stable
    local_cluster.kubectl(
        "wait", "--for=condition=Ready", f"mdep/{mdep.name}", "-n", mdep.namespace, "--timeout=90s", timeout=100
    )
    obj = mdep.get()
    st = obj["status"]
    r1 = rev(mdep, manifest)
    assert st["stable"]["revision"] == r1 and st["stable"]["modelVersion"] == "1"
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert st["endpoint"] == f"http://clf.{mdep.namespace}.svc:8080"
    assert local_cluster.kstatus(obj)[0] == "Current"
    # inference through the endpoint's ClusterIP, and through the stable track's Service
    out = mdep.infer()
    assert out["outputs"][0]["shape"] == [1, 3]
    assert mdep.infer("clf-stable")["outputs"][0]["name"] == "probabilities"
    # the printer columns
    table = local_cluster.kubectl("get", "mdep", "-n", mdep.namespace).stdout
    header, row = table.splitlines()[:2]
    for column in ("TIER", "MODEL", "STABLE", "CANARY", "WEIGHT", "STEP", "READY"):
        assert column in header
    assert "classifier" in row and "True" in row
    wide = local_cluster.kubectl("get", "mdep", "-n", mdep.namespace, "-o", "wide").stdout
    assert "PHASE" in wide.splitlines()[0] and "Healthy" in wide.splitlines()[1]
    # the children, owned by the ModelDeployment
    deps = mdep.deployments()
    assert [d["metadata"]["name"] for d in deps] == [f"clf-{r1}"]
    pod_spec = deps[0]["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False and pod_spec["serviceAccountName"] == "clf-runtime"
    owner = deps[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ModelDeployment" and owner["uid"] == obj["metadata"]["uid"]
    svcs = local_cluster.get_json("services", "-n", mdep.namespace, "-l", "app.kubernetes.io/instance=clf")["items"]
    assert sorted(s["metadata"]["name"] for s in svcs) == ["clf", "clf-canary", "clf-stable"]
    events = local_cluster.get_json("events", "-n", mdep.namespace, "--field-selector", "involvedObject.name=clf")
    assert "Deployed" in {e["reason"] for e in events["items"]}
    assert "modeldeploy_operator_reconcile_duration_seconds" in operator.metrics()
    # the operator wrote no annotation, finalizer or spec
    assert not [k for k in obj["metadata"].get("annotations", {}) if "kopf" in k or "operator." in k]
    assert not obj["metadata"].get("finalizers")
    # deleting the ModelDeployment removes its children (owner references, garbage collection)
    local_cluster.kubectl("delete", "mdep", mdep.name, "-n", mdep.namespace, "--wait=true", timeout=60)
    wait_for(lambda: not mdep.deployments() and not mdep.pods(), timeout=60, what="children garbage-collected")
    wait_for(
        lambda: (
            not local_cluster.get_json("services", "-n", mdep.namespace, "-l", "app.kubernetes.io/instance=clf")[
                "items"
            ]
        ),
        timeout=30,
        what="services garbage-collected",
    )


def test_rollout_with_approval_to_promotion(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "2s"}}, {"approval": {}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    r1 = mdep.status()["stable"]["revision"]
    manifest = mdep.manifest(onnx_models["2"], steps=steps)
    r2 = rev(mdep, manifest)
    mdep.apply(onnx_models["2"], steps=steps)
    obj = mdep.wait_cond("Reconciling", "True")
    assert local_cluster.kstatus(obj)[0] == "InProgress"
    obj = mdep.wait_cond("AwaitingApproval", "True")
    st = obj["status"]
    assert st["canary"]["revision"] == r2 and st["canary"]["step"] == 2
    assert st["canary"]["weight"] == 50 and st["canary"]["effectiveWeight"] == 50
    assert local_cluster.kstatus(obj)[0] == "InProgress"
    assert mdep.cond("Ready")["status"] == "False"
    assert f"modeldeploy.io/approve={r2}" in mdep.cond("AwaitingApproval")["message"]
    # both revisions serve behind the endpoint; the track Services select one each
    mdep.wait_serves("2", "clf-canary")
    mdep.wait_serves("1", "clf-stable")
    mdep.annotate("modeldeploy.io/approve", r2)
    local_cluster.kubectl(
        "wait", "--for=condition=Ready", f"mdep/{mdep.name}", "-n", mdep.namespace, "--timeout=90s", timeout=100
    )
    st = mdep.status()
    assert st["stable"]["revision"] == r2 and "canary" not in st
    assert st["lastKnownGood"]["revision"] == r1
    approved = [h for h in st["history"] if h["action"] == "Approved"]
    assert len(approved) == 1 and approved[0]["author"] == "kubectl-annotate"
    assert [h["action"] for h in st["history"]][-1] == "Promoted"
    mdep.wait_serves("2")
    # the old stable is scaled to zero after scaleDownDelay (2s)
    wait_for(
        lambda: (
            {d["metadata"]["name"]: d["spec"]["replicas"] for d in mdep.deployments()}
            == {f"clf-{r1}": 0, f"clf-{r2}": 1}
        ),
        timeout=60,
        what="old stable scaled to zero",
    )
    assert local_cluster.kstatus(mdep.get())[0] == "Current"


def test_abort_rolls_back_and_reads_failed(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    r1 = mdep.status()["stable"]["revision"]
    mdep.apply(onnx_models["2"], steps=steps)
    obj = mdep.wait_cond("Paused", "True", "PauseStep")
    assert local_cluster.kstatus(obj)[0] == "InProgress"
    r2 = obj["status"]["canary"]["revision"]
    mdep.annotate("modeldeploy.io/abort", "true")
    obj = mdep.wait_cond("Stalled", "True", "Aborted", timeout=30)
    assert local_cluster.kstatus(obj)[0] == "Failed"
    c = {x["type"]: (x["status"], x["reason"]) for x in obj["status"]["conditions"]}
    assert c["Ready"] == ("False", "RolledBack") and c["Degraded"][0] == "True" and c["Available"][0] == "True"
    assert c["Reconciling"][0] == "False"
    assert obj["status"]["rolledBackRevision"]["revision"] == r2
    assert obj["status"]["stable"]["revision"] == r1
    # the canary's pods are out of the endpoint at once, then scaled to zero
    wait_for(
        lambda: all(
            p["metadata"]["labels"].get("modeldeploy.io/serving") == "false"
            for p in mdep.pods()
            if p["metadata"]["labels"]["modeldeploy.io/revision"] == r2
        ),
        timeout=10,
        what="canary pods out of rotation",
    )
    mdep.wait_serves("1")
    wait_for(
        lambda: {d["metadata"]["name"]: d["spec"]["replicas"] for d in mdep.deployments()}[f"clf-{r2}"] == 0,
        timeout=30,
        what="canary scaled to zero",
    )
    # not retried: nothing changes until the spec changes or the retry annotation names it
    mdep.annotate("modeldeploy.io/retry", r2)
    obj = mdep.wait_cond("Reconciling", "True", timeout=30)
    assert obj["status"]["canary"]["revision"] == r2


def test_digest_mismatch_stalls_and_never_serves(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    mdep.apply(onnx_models["1"], steps=[{"setWeight": 50}])
    mdep.wait_cond("Ready", "True")
    bad = Model("2", onnx_models["2"].uri, onnx_models["1"].sha256, onnx_models["2"].path)
    mdep.apply(bad, steps=[{"setWeight": 50}])
    obj = mdep.wait_cond("Stalled", "True", "DigestMismatch", timeout=60)
    assert local_cluster.kstatus(obj)[0] == "Failed"
    assert "sha256" in mdep.cond("Stalled")["message"]
    assert mdep.cond("Available")["status"] == "True"
    assert mdep.infer()["model_version"] == "1"


def test_invalid_spec_reads_failed(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    # an analysis step without analysis: the planner refuses it
    mdep.apply(onnx_models["1"], steps=[{"analysis": {}}])
    obj = mdep.wait_cond("Stalled", "True", "InvalidSpec", timeout=30)
    assert local_cluster.kstatus(obj)[0] == "Failed"
    assert "analysis" in mdep.cond("Stalled")["message"]
    assert not mdep.deployments()


def test_operator_killed_mid_rollout_resumes_at_the_same_step(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"pause": {"duration": "1s"}},
        {"approval": {}},
        {"setWeight": 100},
    ]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    mdep.apply(onnx_models["2"], steps=steps)
    before = mdep.wait_cond("AwaitingApproval", "True")["status"]
    operator.kill()
    names_before = sorted(d["metadata"]["name"] for d in mdep.deployments())
    r2 = before["canary"]["revision"]
    operator.start()
    # the restarted operator reads the same step back from status: nothing is restarted or duplicated
    wait_for(lambda: reconciles(operator) >= 1, timeout=30, what="the restarted operator's first reconcile")
    st = mdep.status()
    assert st["canary"]["step"] == before["canary"]["step"] == 2
    assert st["canary"]["startedAt"] == before["canary"]["startedAt"]
    assert st["canary"]["stepStartedAt"] == before["canary"]["stepStartedAt"]
    mdep.annotate("modeldeploy.io/approve", r2)
    mdep.wait_cond("Ready", "True")
    st = mdep.status()
    assert st["stable"]["revision"] == r2
    assert sorted(d["metadata"]["name"] for d in mdep.deployments()) == names_before
    rs = local_cluster.get_json("replicasets", "-n", mdep.namespace, "-l", "app.kubernetes.io/instance=clf")["items"]
    assert len(rs) == 2
    actions = [h["action"] for h in st["history"]]
    assert actions.count("RolloutStarted") == 2 and actions.count("Approved") == 1 and actions.count("Promoted") == 1


def test_kubectl_wait_returns_when_rollout_completes(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    mdep.apply(onnx_models["3"], steps=steps)
    mdep.wait_cond("Ready", "False")  # observedGeneration caught up, rollout in progress
    proc = local_cluster.kubectl(
        "wait", "--for=condition=Ready", f"mdep/{mdep.name}", "-n", mdep.namespace, "--timeout=90s", timeout=100
    )
    assert proc.returncode == 0
    st = mdep.status()
    assert st["stable"]["modelVersion"] == "3" and "canary" not in st


def test_analysis_rolls_back_an_erroring_canary_within_seconds(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    """The handler ticks the Analyser when due; a canary answering 500s is rolled back on the judged Fail."""
    d = onnx_models["1"].path.parent
    path = d / "erroring.onnx"
    sha = models.write_model(path, models.erroring_classifier(1))
    path.chmod(0o644)
    bad = Model("9", local_cluster.model_uri(mdep.namespace, path), sha, path)
    analysis = {
        "interval": "1s",
        "window": "5s",
        "minRequests": 5,
        "failureLimit": 2,
        "inconclusiveLimit": 1000,
        "slo": {"errorRatePercent": 5},
        "provider": {"pods": {}},
    }
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"analysis": {}}]
    mdep.apply(onnx_models["1"], steps=steps, analysis=analysis)
    mdep.wait_cond("Ready", "True")
    stop = threading.Event()
    codes: list[int] = []

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=5) as c:
            ip = local_cluster.get_json("service", mdep.name, "-n", mdep.namespace)["spec"]["clusterIP"]
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
            while not stop.is_set():
                try:
                    # a new connection per request: the Service balances connections, not requests
                    r = c.post(
                        f"http://{ip}:8080/v2/models/classifier/infer", json=body, headers={"Connection": "close"}
                    )
                    codes.append(r.status_code)
                except httpx.HTTPError:
                    codes.append(0)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        mdep.apply(bad, steps=steps, analysis=analysis)
        obj = mdep.wait_cond("Stalled", "True", "AnalysisFailed", timeout=60)
    finally:
        stop.set()
        t.join(timeout=10)
    st = obj["status"]
    assert st["analysis"]["verdict"] == "Fail" and st["analysis"]["consecutiveFailures"] >= 2
    assert st["rolledBackRevision"]["modelVersion"] == "9"
    assert mdep.cond("Ready")["reason"] == "RolledBack"
    assert local_cluster.kstatus(obj)[0] == "Failed"
    assert 500 in codes  # the canary did take traffic and failed it
    rolled = next(h for h in reversed(st["history"]) if h["action"] == "RolledBack")
    assert "failureLimit 2" in rolled["message"]
    assert mdep.infer()["model_version"] == "1"
