"""The node agent behaves like a kubelet where the operator can tell: restarts, image errors,
probes, downward API, volumes, graceful deletion, and Service traffic through the proxy."""

from __future__ import annotations

import collections
import json
import time
from typing import Any

import httpx
import pytest

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

pytestmark = pytest.mark.cluster

EXEC_IMAGE = "modeldeploy.local/exec:1"


def _pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", **container}], **spec},
    }


def _get_pod(c: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    r = c.api.get(f"/api/v1/namespaces/{ns}/pods/{name}")
    r.raise_for_status()
    pod: dict[str, Any] = r.json()
    return pod


def _container_status(c: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    statuses = _get_pod(c, ns, name)["status"].get("containerStatuses") or [{}]
    status: dict[str, Any] = statuses[0]
    return status


def test_a_crashed_container_is_restarted_with_back_off(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    c, ns = local_cluster, k8s_namespace
    c.apply(_pod("crasher", {"image": EXEC_IMAGE, "command": ["sh", "-c", "echo started; exit 3"]}), namespace=ns)

    def restarted() -> dict[str, Any] | None:
        s = _container_status(c, ns, "crasher")
        return s if s.get("restartCount", 0) >= 1 and s.get("lastState", {}).get("terminated") else None

    s = wait_for(restarted, 30, "a restart of the crashed container")
    assert s["lastState"]["terminated"]["exitCode"] == 3
    assert s["lastState"]["terminated"]["reason"] == "Error"

    def backing_off() -> bool:
        s = _container_status(c, ns, "crasher")
        return (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"

    wait_for(backing_off, 30, "CrashLoopBackOff")
    pod = _get_pod(c, ns, "crasher")
    assert pod["status"]["phase"] == "Running"  # as a kubelet reports a pod in CrashLoopBackOff
    ready = {x["type"]: x["status"] for x in pod["status"]["conditions"]}["Ready"]
    assert ready == "False"
    assert "started" in c.pod_logs(ns, "crasher")
    # kubectl logs goes API server -> the agent's /containerLogs on the node address
    assert c.kubectl("logs", "-n", ns, "crasher").stdout.strip() == "started"
    assert c.kubectl("logs", "-n", ns, "crasher", "--previous").stdout.strip() == "started"
    events = c.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=crasher")["items"]
    assert {"Started", "BackOff"} <= {e["reason"] for e in events}


def test_an_unknown_image_fails_the_pod_with_err_image_pull(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    c, ns = local_cluster, k8s_namespace
    c.apply(_pod("nginx", {"image": "docker.io/library/nginx:1.27"}), namespace=ns)

    def pull_failed() -> dict[str, Any] | None:
        s = _container_status(c, ns, "nginx")
        waiting = s.get("state", {}).get("waiting") or {}
        return waiting if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

    waiting = wait_for(pull_failed, 30, "ErrImagePull")
    assert "nginx" in waiting["message"]
    assert _get_pod(c, ns, "nginx")["status"]["phase"] == "Pending"
    assert _container_status(c, ns, "nginx")["restartCount"] == 0


def test_downward_api_probes_volumes_and_graceful_deletion(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    c, ns = local_cluster, k8s_namespace
    c.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"greeting": "hello"}},
            _pod(
                "web",
                {
                    "image": EXEC_IMAGE,
                    # the server only answers once /data/who exists: readiness follows it
                    "command": [
                        "sh",
                        "-c",
                        'printf "%s %s %s %s" "$POD_NAME" "$POD_NS" "$APP" "$GREETING" > /data/who.tmp'
                        " && mv /data/who.tmp /data/who"
                        ' && exec python3 -m http.server --bind "$POD_IP" 8080 --directory /data',
                    ],
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                    ],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/who", "port": "http"}, "periodSeconds": 1},
                    "livenessProbe": {
                        "httpGet": {"path": "/", "port": 8080},
                        "periodSeconds": 1,
                        "failureThreshold": 3,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
                },
                volumes=[{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
                terminationGracePeriodSeconds=3,
            ),
        ],
        namespace=ns,
    )

    def ready() -> dict[str, Any] | None:
        pod = _get_pod(c, ns, "web")
        conds = {x["type"]: x["status"] for x in pod["status"].get("conditions", [])}
        return pod if conds.get("Ready") == "True" else None

    pod = wait_for(ready, 60, "pod web Ready")
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.244.") and pod["status"]["podIPs"] == [{"ip": ip}]
    assert pod["status"]["hostIP"] == "10.244.0.1"
    assert pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    with httpx.Client(trust_env=False, timeout=5) as http:
        assert http.get(f"http://{ip}:8080/who").text == f"web {ns} web hello"

    # the configMap volume follows the ConfigMap
    vol = next(c.state_dir.glob(f"pods/{pod['metadata']['uid']}/volumes/cfg"))
    assert (vol / "greeting").read_text() == "hello"
    c.api.patch(
        f"/api/v1/namespaces/{ns}/configmaps/cfg",
        content=json.dumps({"data": {"greeting": "bonjour"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    wait_for(lambda: (vol / "greeting").read_text() == "bonjour", 30, "the configMap volume to be updated")

    # deletion: SIGTERM (http.server exits at once), then the agent removes the pod
    assert c.api.delete(f"/api/v1/namespaces/{ns}/pods/web").status_code == 200
    wait_for(lambda: c.api.get(f"/api/v1/namespaces/{ns}/pods/web").status_code == 404, 30, "pod web to be gone")
    with httpx.Client(trust_env=False, timeout=2) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://{ip}:8080/who")


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(
    local_cluster: ClusterHandle, k8s_namespace: str
) -> None:
    c, ns = local_cluster, k8s_namespace
    c.apply(
        _pod(
            "stubborn",
            {"image": EXEC_IMAGE, "command": ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]},
            terminationGracePeriodSeconds=2,
        ),
        namespace=ns,
    )
    wait_for(lambda: _container_status(c, ns, "stubborn").get("state", {}).get("running"), 30, "stubborn running")
    t0 = time.monotonic()
    c.api.delete(f"/api/v1/namespaces/{ns}/pods/stubborn")
    wait_for(lambda: c.api.get(f"/api/v1/namespaces/{ns}/pods/stubborn").status_code == 404, 30, "stubborn gone")
    assert 1.5 <= time.monotonic() - t0 < 15


def _echo_deployment(name: str, replicas: int, track: str) -> dict[str, Any]:
    """Pods that answer GET /name with their pod name (a file written into an emptyDir)."""
    labels = {"app": "echo", "track": track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": EXEC_IMAGE,
                            "command": [
                                "sh",
                                "-c",
                                'echo "$POD_NAME" > /www/name'
                                ' && exec python3 -m http.server --bind "$POD_IP" 8080 --directory /www',
                            ],
                            "env": [
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/name", "port": "http"}, "periodSeconds": 1},
                            "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                        }
                    ],
                    "volumes": [{"name": "www", "emptyDir": {}}],
                },
            },
        },
    }


ECHO_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "echo"},
    "spec": {"selector": {"app": "echo"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def _serve_echo(c: ClusterHandle, ns: str, deployments: dict[str, int]) -> str:
    """Apply the deployments and the Service; wait until every replica is an endpoint; return the ClusterIP."""
    c.apply([*(_echo_deployment(n, r, n) for n, r in deployments.items()), ECHO_SERVICE], namespace=ns)
    total = sum(deployments.values())

    def ready_endpoints() -> bool:
        slices = c.api.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            params={"labelSelector": "kubernetes.io/service-name=echo"},
        ).json()["items"]
        eps = [e for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")]
        return len(eps) == total

    wait_for(ready_endpoints, 60, f"{total} ready endpoints in the EndpointSlices")
    ip: str = c.api.get(f"/api/v1/namespaces/{ns}/services/echo").json()["spec"]["clusterIP"]
    assert ip.startswith("10.96.")
    return ip


def _spread(ip: str, connections: int, pods: int) -> collections.Counter[str]:
    """Pod name -> connections answered, once the proxy's own watch has caught up with all pods."""

    def sample() -> collections.Counter[str] | None:
        seen: collections.Counter[str] = collections.Counter()
        for _ in range(connections):
            with httpx.Client(trust_env=False, timeout=5) as http:  # a new connection each time
                seen[http.get(f"http://{ip}/name").text.strip()] += 1
        return seen if len(seen) == pods else None

    return wait_for(sample, 30, f"traffic reaching all {pods} pods")


def test_service_traffic_is_spread_evenly_over_ready_endpoints(
    local_cluster: ClusterHandle, k8s_namespace: str
) -> None:
    ip = _serve_echo(local_cluster, k8s_namespace, {"echo": 3})
    seen = _spread(ip, 30, 3)
    assert sorted(seen.values()) == [10, 10, 10], seen


def test_service_traffic_follows_the_replica_ratio(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    """One Service over a 3-replica stable and a 1-replica canary: 3/4 and 1/4 of the connections."""
    ip = _serve_echo(local_cluster, k8s_namespace, {"stable": 3, "canary": 1})
    seen = _spread(ip, 40, 4)
    by_track = collections.Counter(
        {t: sum(n for pod, n in seen.items() if pod.startswith(t)) for t in ("stable", "canary")}
    )
    assert by_track == {"stable": 30, "canary": 10}, seen


def test_a_failing_liveness_probe_restarts_the_container(local_cluster: ClusterHandle, k8s_namespace: str) -> None:
    c, ns = local_cluster, k8s_namespace
    server = 'exec python3 -m http.server --bind "$POD_IP" 8080'
    c.apply(
        _pod(
            "unhealthy",
            {
                "image": EXEC_IMAGE,
                "command": ["sh", "-c", server],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "livenessProbe": {
                    "httpGet": {"path": "/missing", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 2,
                },
            },
            terminationGracePeriodSeconds=1,
        ),
        namespace=ns,
    )

    def restarted() -> dict[str, Any] | None:
        s = _container_status(c, ns, "unhealthy")
        return s if s.get("restartCount", 0) >= 1 else None

    s = wait_for(restarted, 60, "a restart after the liveness probe failed")
    assert s["lastState"]["terminated"]["exitCode"] != 0
