"""The children: names, labels, owner references, the runtime's contract, and no track in any pod template."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator import manifests as m
from modeldeploy.operator.api import ModelDeployment
from modeldeploy.runtime import contract


def md(**serving: Any) -> ModelDeployment:
    return ModelDeployment.from_wire(
        {
            "metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1", "generation": 1},
            "spec": {
                "owner": "team",
                "model": {
                    "name": "fraud-scorer",
                    "version": "7",
                    "uri": "pvc://models/fraud/7.onnx",
                    "sha256": "a" * 64,
                    "lineage": {"datasetVersion": "2026-01", "codeCommit": "abc"},
                    "credentialsSecretRef": {"name": "creds"},
                },
                "serving": {"replicas": 2, **serving},
            },
        }
    )


def env(dep: dict[str, Any]) -> dict[str, Any]:
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_deployment_runs_the_runtime_by_its_contract() -> None:
    d = m.deployment(md(threads=2, batching={"maxBatchSize": 16, "maxDelayMs": 2}), "abc123", 2)
    assert d["metadata"]["name"] == "fraud-abc123" and d["spec"]["replicas"] == 2
    pod = d["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["image"] == contract.DEFAULT_IMAGE
    e = env(d)
    assert e[contract.ENV_MODEL_NAME] == "fraud-scorer"
    assert e[contract.ENV_MODEL_VERSION] == "7"
    assert e[contract.ENV_REVISION] == "abc123"
    assert e[contract.ENV_MODEL_SHA256] == "a" * 64
    assert e[contract.ENV_HOST] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert e[contract.ENV_INTRA_OP_THREADS] == "2" and e[contract.ENV_MAX_BATCH_SIZE] == "16"
    assert contract.ENV_TRACK not in e
    assert c["readinessProbe"]["httpGet"]["path"] == contract.HEALTH_READY_PATH
    assert c["livenessProbe"]["httpGet"]["path"] == contract.HEALTH_LIVE_PATH
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["serviceAccountName"] == "fraud-runtime"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "model", "mountPath": "/mnt/models/models", "readOnly": True} in c["volumeMounts"]
    assert c["envFrom"] == [{"secretRef": {"name": "creds"}}]
    labels = pod["metadata"]["labels"]
    assert labels[m.LABEL_INSTANCE] == "fraud" and labels[m.LABEL_REVISION] == "abc123"
    assert labels[m.LABEL_MODEL_VERSION] == "7" and labels[m.LABEL_SERVING] == "true"
    assert "track" not in str(pod).lower()
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8080"
    assert ann["prometheus.io/path"] == "/metrics"
    assert ann["modeldeploy.io/sha256"] == "a" * 64 and ann["modeldeploy.io/dataset-version"] == "2026-01"
    assert d["spec"]["selector"]["matchLabels"] == m.revision_selector("fraud", "abc123")
    owner = d["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "u-1" and owner["controller"] and owner["kind"] == "ModelDeployment"


def test_replicas_left_to_the_autoscaler() -> None:
    d = m.deployment(md(), "r", None)
    assert "replicas" not in d["spec"]


def test_services_select_serving_pods_and_revisions() -> None:
    endpoint, stable, canary = m.services(md(), "s1", "c1")
    assert endpoint["metadata"]["name"] == "fraud"
    assert endpoint["spec"]["selector"] == {**m.instance_selector("fraud"), m.LABEL_SERVING: "true"}
    assert stable["spec"]["selector"][m.LABEL_REVISION] == "s1"
    assert canary["spec"]["selector"][m.LABEL_REVISION] == "c1"
    assert m.services(md(), "s1", None)[2]["spec"]["selector"][m.LABEL_REVISION] == "s1"
    assert m.endpoint("fraud", "ml") == "http://fraud.ml.svc:8080"


def test_service_account_hpa_pdb() -> None:
    sa = m.service_account(md())
    assert sa["automountServiceAccountToken"] is False and sa["metadata"]["name"] == "fraud-runtime"
    assert m.autoscaler(md(), "s1") is None and m.disruption_budget(md()) is None
    scaled = ModelDeployment.from_wire(
        {
            **md().model_dump(by_alias=True, exclude_none=True),
            "spec": {
                **md().spec.wire(),
                "serving": {"autoscaling": {"minReplicas": 2, "maxReplicas": 5}, "podDisruptionBudget": {}},
            },
        }
    )
    hpa = m.autoscaler(scaled, "s1")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "fraud-s1" and hpa["spec"]["maxReplicas"] == 5
    pdb = m.disruption_budget(scaled)
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1


def test_label_values_are_made_valid() -> None:
    assert m.label_value("1.2+build/7") == "1.2_build_7"
    assert m.label_value("-x-") == "x"
    assert len(m.label_value("v" * 100)) == 63


def test_latency_buckets_reach_the_runtime_in_seconds() -> None:
    e = env(m.deployment(md(latencyBucketsMs=[10, 25, 40, 100]), "abc123", 2))
    assert e[contract.ENV_LATENCY_BUCKETS] == "0.01,0.025,0.04,0.1"
    assert contract.ENV_LATENCY_BUCKETS not in env(m.deployment(md(), "abc123", 2))
