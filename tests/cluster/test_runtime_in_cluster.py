"""The runtime as a Deployment on the local cluster: Available, inference through its Service,
its request counter in Prometheus for that pod."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for
from modeldeploy.runtime import contract

pytestmark = pytest.mark.cluster

MODEL = "iris"


def _classifier(path: Path) -> str:
    """input FP32 [N, 4] -> probabilities FP32 [N, 3] = softmax(x W + b); returns the file's sha256."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _manifests(model_uri: str, sha: str, replicas: int) -> list[dict[str, Any]]:
    port = contract.DEFAULT_PORT
    labels = {"app": "runtime", "model": MODEL}
    probe = {"httpGet": {"path": contract.model_ready_path(MODEL), "port": "http"}, "periodSeconds": 1}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "runtime"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(port),
                            "prometheus.io/path": contract.METRICS_PATH,
                        },
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": "runtime",
                                "image": contract.DEFAULT_IMAGE,
                                "args": [f"--model-uri={model_uri}", f"--sha256={sha}"],
                                "env": [
                                    {"name": contract.ENV_MODEL_NAME, "value": MODEL},
                                    {"name": contract.ENV_PORT, "value": str(port)},
                                    {
                                        "name": contract.ENV_HOST,
                                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                    },
                                ],
                                "ports": [{"name": "http", "containerPort": port}],
                                "volumeMounts": [
                                    {"name": "tmp", "mountPath": "/tmp"},
                                    {"name": "models", "mountPath": f"{contract.DEFAULT_PVC_ROOT}/models"},
                                ],
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "runAsUser": 65532,
                                    "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "readinessProbe": probe,
                                "livenessProbe": {
                                    "httpGet": {"path": contract.HEALTH_LIVE_PATH, "port": "http"},
                                    "periodSeconds": 2,
                                    "failureThreshold": 15,
                                },
                            }
                        ],
                        "volumes": [
                            {"name": "tmp", "emptyDir": {}},
                            {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "runtime"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]


def test_runtime_deployment_serves_inference_through_its_service_and_prometheus_counts_it(
    local_cluster: ClusterHandle, k8s_namespace: str
) -> None:
    c, ns = local_cluster, k8s_namespace
    model_path = c.files_dir(ns) / "model.onnx"
    sha = _classifier(model_path)
    c.apply(_manifests(c.model_uri(ns, model_path), sha, replicas=1), namespace=ns)

    def available() -> bool:
        d = c.api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/runtime").json()
        conds = {x["type"]: x["status"] for x in d.get("status", {}).get("conditions", [])}
        return conds.get("Available") == "True" and d["status"].get("availableReplicas") == 1

    try:
        wait_for(available, 90, "the runtime Deployment to become Available")
    except AssertionError:
        pods = c.api.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]
        logs = {p["metadata"]["name"]: c.pod_logs(ns, p["metadata"]["name"])[-3000:] for p in pods}
        raise AssertionError(f"not Available; pods: {[p['status'] for p in pods]}; logs: {logs}") from None

    pod = c.api.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "app=runtime"}).json()["items"][0]
    pod_name = pod["metadata"]["name"]
    ip = c.api.get(f"/api/v1/namespaces/{ns}/services/runtime").json()["spec"]["clusterIP"]
    body = {
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4, 1, 2, 3, 4]}]
    }
    requests = 5
    with httpx.Client(trust_env=False, timeout=10) as http:
        # kube-proxy programs the new endpoint a moment after it turns Ready
        wait_for(lambda: http.get(f"http://{ip}/v2/health/ready").status_code == 200, 15, "the Service to answer")
        for _ in range(requests):
            r = http.post(f"http://{ip}{contract.infer_path(MODEL)}", json=body)
            assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}["probabilities"]
    assert out["shape"] == [2, 3]
    probs = np.array(out["data"], dtype=np.float64).reshape(2, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    query = f'sum({contract.METRIC_REQUESTS_TOTAL}{{namespace="{ns}", pod="{pod_name}", code="200"}})'

    def counted() -> float | None:
        result = c.prometheus_query(query)
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= requests else None

    assert wait_for(counted, 60, f"Prometheus to return {query} >= {requests}") == requests
    series = c.prometheus_query(f'{contract.METRIC_REQUESTS_TOTAL}{{namespace="{ns}", pod="{pod_name}"}}')
    labels = series[0]["metric"]
    assert labels[contract.LABEL_MODEL] == MODEL
    assert labels["app"] == "runtime"  # pod labels become target labels
