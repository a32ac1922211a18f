"""Cluster add-ons the launcher installs: CoreDNS as a Deployment (cluster DNS for the pods).

CoreDNS is built from its Go module and packed as a local image (hack/cluster/build-node.sh). It
runs as uid 65532 on port 1053 (no capability to bind 53); its Service maps 53 to it at
DNS_SERVICE_IP, the kubelet's `clusterDNS`. Only the cluster domain is answered: nothing exists
outside this machine to forward to.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from .paths import CLUSTER_DOMAIN, DNS_SERVICE_IP, coredns_image

NAMESPACE: Final = "kube-system"
FIELD_MANAGER: Final = "modeldeploy-localcluster"
Obj = dict[str, Any]

COREFILE: Final = f""".:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    reload
}}
"""


def coredns_objects() -> list[Obj]:
    _, image = coredns_image()
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
                                ],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**meta, "name": "kube-dns", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]


def _path(obj: Obj) -> str:
    group_version: str = obj["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    plural = obj["kind"].lower() + "s"  # true of every kind applied here
    ns = obj["metadata"].get("namespace")
    return (
        f"{base}/namespaces/{ns}/{plural}/{obj['metadata']['name']}"
        if ns
        else f"{base}/{plural}/{obj['metadata']['name']}"
    )


def apply(api: httpx.Client, objects: list[Obj]) -> None:
    """Server-side apply each object (field manager FIELD_MANAGER)."""
    for obj in objects:
        r = api.patch(
            _path(obj),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            json=obj,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if r.status_code >= 300:
            raise RuntimeError(f"applying {obj['kind']} {obj['metadata']['name']} failed: {r.status_code} {r.text}")


def coredns_ready(api: httpx.Client) -> bool:
    r = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/coredns")
    return r.status_code == 200 and (r.json().get("status") or {}).get("readyReplicas", 0) >= 1
