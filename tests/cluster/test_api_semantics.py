"""API server behaviour the operator relies on, shown against the real local API server.

CRD schema + CEL admission, the status subresource, server-side apply conflicts between field
managers, and owner-reference garbage collection: each is a place where an emulator goes wrong.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.localcluster.paths import pause_image
from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

#: the node's sandbox image: a container that only waits for its signal
PAUSE = pause_image()[1]

pytestmark = pytest.mark.cluster

GROUP = "tests.modeldeploy.io"
PLURAL = "widgets"
CEL_MESSAGE = "minReplicas must not exceed maxReplicas"


def _crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "minReplicas": {"type": "integer", "minimum": 0},
                                        "maxReplicas": {"type": "integer", "minimum": 0},
                                        "color": {"type": "string"},
                                    },
                                    "x-kubernetes-validations": [
                                        {"rule": "self.minReplicas <= self.maxReplicas", "message": CEL_MESSAGE}
                                    ],
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"observed": {"type": "integer"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widget_crd(local_cluster: ClusterHandle) -> Iterator[str]:
    local_cluster.apply(_crd())

    def established() -> bool:
        crd = local_cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}").json()
        conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
        return conds.get("Established") == "True"

    wait_for(established, 30, "the Widget CRD to be Established")
    wait_for(lambda: local_cluster.api.get(f"/apis/{GROUP}/v1").status_code == 200, 30, "the Widget API to be served")
    yield f"/apis/{GROUP}/v1"
    local_cluster.api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}")


def _widget(name: str, lo: int, hi: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"minReplicas": lo, "maxReplicas": hi, **spec},
    }


def test_cel_rule_rejects_an_invalid_object_with_the_api_servers_message(
    local_cluster: ClusterHandle, widget_crd: str, k8s_namespace: str
) -> None:
    r = local_cluster.api.post(f"{widget_crd}/namespaces/{k8s_namespace}/{PLURAL}", json=_widget("bad", 5, 2))
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert CEL_MESSAGE in status["message"]
    assert any(CEL_MESSAGE in c.get("message", "") for c in status["details"]["causes"])

    # the same rejection through kubectl, as a person would see it
    proc = local_cluster.kubectl(
        "apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(_widget("bad", 5, 2)), check=False
    )
    assert proc.returncode != 0
    assert CEL_MESSAGE in proc.stderr

    # and the valid twin is accepted
    r = local_cluster.api.post(f"{widget_crd}/namespaces/{k8s_namespace}/{PLURAL}", json=_widget("good", 2, 5))
    assert r.status_code == 201, r.text


def test_status_subresource_write_cannot_change_spec(
    local_cluster: ClusterHandle, widget_crd: str, k8s_namespace: str
) -> None:
    base = f"{widget_crd}/namespaces/{k8s_namespace}/{PLURAL}"
    created = local_cluster.api.post(base, json=_widget("w", 1, 3, color="blue")).json()
    assert "status" not in created or not created["status"]

    obj = dict(created)
    obj["spec"] = {**created["spec"], "color": "red", "maxReplicas": 9}
    obj["status"] = {"observed": 7}
    r = local_cluster.api.put(f"{base}/w/status", json=obj)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["status"] == {"observed": 7}
    assert after["spec"] == created["spec"], "a status write must not change spec"
    assert after["metadata"]["generation"] == created["metadata"]["generation"]

    # and the main resource ignores status
    obj = dict(after)
    obj["status"] = {"observed": 100}
    obj["spec"] = {**after["spec"], "color": "green"}
    r = local_cluster.api.put(f"{base}/w", json=obj)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == {"observed": 7}
    assert r.json()["spec"]["color"] == "green"
    assert r.json()["metadata"]["generation"] == created["metadata"]["generation"] + 1


def test_server_side_apply_by_a_second_field_manager_conflicts(
    local_cluster: ClusterHandle, widget_crd: str, k8s_namespace: str
) -> None:
    url = f"{widget_crd}/namespaces/{k8s_namespace}/{PLURAL}/ssa"
    headers = {"Content-Type": "application/apply-patch+yaml"}

    def apply(manager: str, hi: int, force: bool = False) -> Any:
        params = {"fieldManager": manager, **({"force": "true"} if force else {})}
        body = json.dumps(_widget("ssa", 1, hi))
        return local_cluster.api.patch(url, content=body, headers=headers, params=params)

    assert apply("alice", 5).status_code == 201
    r = apply("bob", 7)
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "Conflict"
    assert "alice" in r.json()["message"]
    assert ".spec.maxReplicas" in r.json()["message"]

    # kubectl reports the same conflict
    proc = local_cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=bob",
        "-n",
        k8s_namespace,
        "-f",
        "-",
        input=json.dumps(_widget("ssa", 1, 7)),
        check=False,
    )
    assert proc.returncode != 0
    assert "conflict" in proc.stderr.lower()

    # forcing takes the field over
    r = apply("bob", 7, force=True)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["maxReplicas"] == 7
    owners = {m["manager"] for m in r.json()["metadata"]["managedFields"] if "f:maxReplicas" in json.dumps(m)}
    assert owners == {"bob"}


def test_deleting_an_owner_garbage_collects_its_children(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    api = local_cluster.api
    base = f"/api/v1/namespaces/{k8s_namespace}/configmaps"
    owner = api.post(base, json={"metadata": {"name": "owner"}, "data": {"a": "1"}}).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    children = [f"child-{i}-{secrets.token_hex(2)}" for i in range(3)]
    for name in children:
        r = api.post(base, json={"metadata": {"name": name, "ownerReferences": [ref]}, "data": {}})
        assert r.status_code == 201, r.text
    orphan = api.post(base, json={"metadata": {"name": "unowned"}, "data": {}})
    assert orphan.status_code == 201

    assert api.delete(f"{base}/owner").status_code == 200
    wait_for(
        lambda: all(api.get(f"{base}/{n}").status_code == 404 for n in children),
        60,
        "the garbage collector to delete the owner's children",
    )
    assert api.get(f"{base}/unowned").status_code == 200


def test_foreground_deletion_of_a_deployment_removes_its_pods_first(
    local_cluster: ClusterHandle, k8s_namespace: str
) -> None:
    """Owner chain Deployment -> ReplicaSet -> Pod, with the node agent terminating the processes."""
    local_cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sleeper", "namespace": k8s_namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "sleeper"}},
                "template": {
                    "metadata": {"labels": {"app": "sleeper"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{"name": "main", "image": PAUSE, "imagePullPolicy": "Never"}],
                    },
                },
            },
        }
    )
    pods = f"/api/v1/namespaces/{k8s_namespace}/pods"

    def running() -> bool:
        items = local_cluster.api.get(pods).json()["items"]
        return len(items) == 2 and all(p["status"].get("phase") == "Running" for p in items)

    wait_for(running, 60, "2 running pods")
    r = local_cluster.api.request(
        "DELETE",
        f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments/sleeper",
        json={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
    )
    assert r.status_code in (200, 202), r.text
    wait_for(
        lambda: (
            local_cluster.api.get(f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments/sleeper").status_code == 404
        ),
        60,
        "the Deployment to be gone after its ReplicaSet and pods",
    )
    assert local_cluster.api.get(pods).json()["items"] == []
