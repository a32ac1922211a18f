"""What only a real node shows: the kubelet's memory limits and OOM kills, the runtime under the
manifests' securityContext (uid 65532, read-only root), cluster DNS through CoreDNS, and the
chart's RBAC as the API server enforces it for the operator's ServiceAccount."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e.installed import InstalledOperator

from modeldeploy.localcluster.pytest_plugin import ClusterHandle

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster


def test_canary_oom_killed_by_its_memory_limit_fails_with_the_reason(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    mdep.apply(onnx_models["1"], steps=[{"setWeight": 50}])
    mdep.wait_cond("Ready", "True")
    small = mdep.manifest(onnx_models["2"], steps=[{"setWeight": 50}])
    # far below what Python and onnxruntime need to start: the kernel kills it while it loads
    small["spec"]["serving"]["resources"] = {"requests": {"memory": "16Mi"}, "limits": {"memory": "24Mi"}}
    local_cluster.apply(small, field_manager="ml-engineer")
    obj = mdep.wait_cond("Stalled", "True", "CanaryFailed", timeout=90)
    message = mdep.cond("Stalled")["message"]
    assert "OOMKilled" in message and "24Mi" in message, message
    assert local_cluster.kstatus(obj)[0] == "Failed"
    # the kubelet reported it, not a guess: the canary pod's container was OOM-killed
    canary = obj["status"]["canary"]["revision"] if obj["status"].get("canary") else None
    pods = [
        p
        for p in mdep.pods()
        if p["metadata"]["labels"]["modeldeploy.io/revision"] != obj["status"]["stable"]["revision"]
    ]
    assert pods, f"no canary pod (canary {canary})"
    reasons = {
        ((cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") or {}).get("reason")
        for p in pods
        for cs in p["status"].get("containerStatuses") or []
    }
    assert "OOMKilled" in reasons
    # stable keeps serving every request
    assert mdep.cond("Available")["status"] == "True"
    assert mdep.infer()["model_version"] == "1"


def _exec(cluster: ClusterHandle, namespace: str, pod: str, code: str) -> dict[str, Any]:
    out = cluster.kubectl("exec", "-n", namespace, pod, "-c", "runtime", "--", "python", "-c", code, timeout=60)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_model_pod_runs_as_65532_on_a_read_only_root_and_resolves_services_through_coredns(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    mdep.apply(onnx_models["1"], steps=[{"setWeight": 50}])
    mdep.wait_cond("Ready", "True")
    pod = mdep.pods()[0]["metadata"]["name"]
    service_ip = local_cluster.get_json("service", mdep.name, "-n", mdep.namespace)["spec"]["clusterIP"]
    api_ip = local_cluster.get_json("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    code = (
        "import json, os, socket\n"
        "try:\n    open('/written-by-test', 'w'); ro = None\nexcept OSError as e:\n    ro = e.strerror\n"
        "tmp = os.access('/tmp', os.W_OK)\n"
        f"addr = socket.gethostbyname('{mdep.name}.{mdep.namespace}.svc')\n"
        "api = socket.gethostbyname('kubernetes.default.svc.cluster.local')\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'ro': ro, 'tmp': tmp, 'addr': addr, 'api': api}))"
    )
    seen = _exec(local_cluster, mdep.namespace, pod, code)
    assert seen["uid"] == 65532 and seen["gid"] == 65532
    assert seen["ro"] == "Read-only file system"
    assert seen["tmp"] is True  # the emptyDir the manifests mount
    assert seen["addr"] == service_ip
    assert seen["api"] == api_ip


# (verb, resource[/subresource], namespaced, allowed). What the operator's code calls, from
# modeldeploy.operator.kube and kopf's watches and indices, and what it must never be able to do.
OPERATOR_ACCESS: list[tuple[str, str, bool, bool]] = [
    ("get", "modeldeployments.modeldeploy.io", True, True),
    ("list", "modeldeployments.modeldeploy.io", True, True),
    ("watch", "modeldeployments.modeldeploy.io", True, True),
    ("patch", "modeldeployments.modeldeploy.io/status", True, True),
    ("list", "rolloutpolicies.modeldeploy.io", False, True),
    ("watch", "rolloutpolicies.modeldeploy.io", False, True),
    ("create", "deployments.apps", True, True),
    ("patch", "deployments.apps", True, True),
    ("delete", "deployments.apps", True, True),
    ("patch", "deployments.apps/scale", True, True),
    ("list", "pods", True, True),
    ("watch", "pods", True, True),
    ("watch", "services", True, True),  # a child deleted by hand wakes its owner
    ("watch", "serviceaccounts", True, True),
    ("watch", "horizontalpodautoscalers.autoscaling", True, True),
    ("watch", "poddisruptionbudgets.policy", True, True),
    ("patch", "pods", True, True),
    ("create", "services", True, True),
    ("patch", "services", True, True),
    ("patch", "serviceaccounts", True, True),
    ("patch", "horizontalpodautoscalers.autoscaling", True, True),
    ("patch", "poddisruptionbudgets.policy", True, True),
    ("delete", "horizontalpodautoscalers.autoscaling", True, True),
    ("delete", "poddisruptionbudgets.policy", True, True),
    ("create", "events", True, True),
    # never
    ("update", "modeldeployments.modeldeploy.io", True, False),  # the operator never writes spec
    ("delete", "modeldeployments.modeldeploy.io", True, False),
    ("get", "secrets", True, False),
    ("list", "secrets", True, False),
    ("create", "pods", True, False),
    ("create", "pods/exec", True, False),
    ("delete", "pods", True, False),
    ("patch", "nodes", False, False),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", False, False),
    ("patch", "roles.rbac.authorization.k8s.io", True, False),
    ("create", "rolloutpolicies.modeldeploy.io", False, False),
    ("delete", "namespaces", False, False),
    ("create", "serviceaccounts/token", True, False),
]


def test_the_chart_rbac_grants_the_operator_what_its_code_uses_and_nothing_it_must_not_have(
    local_cluster: ClusterHandle, operator: InstalledOperator, k8s_namespace: str
) -> None:
    account = f"system:serviceaccount:{k8s_namespace}:{operator.release}"
    wrong: list[str] = []
    for verb, resource, namespaced, allowed in OPERATOR_ACCESS:
        kind, _, sub = resource.partition("/")  # kubectl reads "a/b" as resource a named b
        args = ["auth", "can-i", verb, kind, f"--as={account}", *([f"--subresource={sub}"] if sub else [])]
        args += ["-n", k8s_namespace] if namespaced else []
        answer = local_cluster.kubectl(*args, check=False).stdout.strip()
        if answer != ("yes" if allowed else "no"):
            wrong.append(f"{verb} {resource}: {answer} (want {'yes' if allowed else 'no'})")
    assert not wrong, wrong
    # namespaced rights stop at the watched namespace
    other = local_cluster.kubectl(
        "auth", "can-i", "patch", "deployments.apps", f"--as={account}", "-n", "default", check=False
    )
    assert other.stdout.strip() == "no"
