"""Fixtures for the operator on the local cluster: CRDs, small ONNX models on a volume, the operator
installed by its Helm chart from its image (one release per test namespace)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.installed import InstalledOperator
from tests.runtime import models

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

ROOT = Path(__file__).resolve().parents[2]
#: deadline for the data plane to follow a routing change the operator has made: the EndpointSlice
#: controller, then kube-proxy (0.2-0.3 s measured on the local node), and after a promotion the
#: replaced revision's pods leaving the Service once `scaleDownDelay` (2 s here) has passed
DATAPLANE_S = 15.0


@dataclass(frozen=True)
class Model:
    version: str
    uri: str
    sha256: str
    path: Path


@pytest.fixture(scope="session")
def crds(local_cluster: ClusterHandle) -> None:
    """The CRDs from crds/, applied and Established."""
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        local_cluster.apply(path.read_text(), field_manager="modeldeploy-tests", force_conflicts=True)
        name = path.name.removesuffix(".yaml")

        def established(crd: str = name) -> bool:
            # `kubectl wait` errors out while a new CRD has no conditions yet: poll instead
            conditions = local_cluster.get_json("crd", crd).get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, 60, f"CRD {name} Established")


@pytest.fixture
def onnx_models(local_cluster: ClusterHandle, k8s_namespace: str) -> dict[str, Model]:
    """Versions 1..3 of a tiny classifier (different seeds) in the cluster's files directory, which
    the test namespace's pods read through the PersistentVolumeClaim `models` (`pvc://models/...`)."""
    d = local_cluster.files_dir("test-models")
    out: dict[str, Model] = {}
    for version, seed in (("1", 1), ("2", 2), ("3", 3)):
        path = d / f"classifier-{version}.onnx"
        sha = models.write_model(path, models.classifier(seed))
        path.chmod(0o644)
        out[version] = Model(version, local_cluster.model_uri(k8s_namespace, path), sha, path)
    return out


@pytest.fixture
def operator(
    local_cluster: ClusterHandle, k8s_namespace: str, crds: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[InstalledOperator]:
    op = InstalledOperator(local_cluster, k8s_namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write(f"\n--- operator log ({op.log_path}) ---\n{op.log()[-6000:]}\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep


class Mdep:
    """Helpers for one ModelDeployment in a test namespace."""

    def __init__(self, cluster: ClusterHandle, namespace: str, name: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name

    def manifest(
        self, m: Model, steps: list[dict[str, Any]] | None = None, replicas: int = 1, **rollout: Any
    ) -> dict[str, Any]:
        r: dict[str, Any] = {"scaleDownDelay": "2s", "progressDeadline": "90s", **rollout}
        if steps is not None:
            r["steps"] = steps
        return {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "owner": "team-tests",
                "model": {"name": "classifier", "version": m.version, "uri": m.uri, "sha256": m.sha256},
                "serving": {"replicas": replicas},
                "rollout": r,
            },
        }

    def apply(self, m: Model, steps: list[dict[str, Any]] | None = None, replicas: int = 1, **rollout: Any) -> None:
        self.cluster.apply(self.manifest(m, steps, replicas, **rollout), field_manager="ml-engineer")

    def get(self) -> dict[str, Any]:
        return self.cluster.get_json("mdep", self.name, "-n", self.namespace)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get().get("status") or {}
        return status

    def cond(self, ctype: str) -> dict[str, Any]:
        for c in self.status().get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return {}

    def wait_cond(self, ctype: str, status: str, reason: str | None = None, timeout: float = 90) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            obj = self.get()
            if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
                return {}
            for c in obj["status"].get("conditions") or []:
                if c["type"] == ctype and c["status"] == status and (reason is None or c["reason"] == reason):
                    return obj
            return {}

        return wait_for(check, timeout=timeout, what=f"{self.name} {ctype}={status} {reason or ''}")

    def annotate(self, key: str, value: str) -> None:
        self.cluster.kubectl("annotate", "mdep", self.name, "-n", self.namespace, f"{key}={value}", "--overwrite")

    def deployments(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get_json(
            "deployments", "-n", self.namespace, "-l", f"app.kubernetes.io/instance={self.name}"
        )["items"]
        return items

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get_json(
            "pods", "-n", self.namespace, "-l", f"app.kubernetes.io/instance={self.name}"
        )["items"]
        return items

    def infer(self, service: str | None = None) -> dict[str, Any]:
        svc = self.cluster.get_json("service", service or self.name, "-n", self.namespace)
        ip = svc["spec"]["clusterIP"]
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}

        def answer() -> dict[str, Any]:
            # kube-proxy programs a new endpoint a moment after it turns Ready: poll, do not assume
            r = httpx.post(f"http://{ip}:8080/v2/models/classifier/infer", json=body, timeout=10, trust_env=False)
            r.raise_for_status()
            result: dict[str, Any] = r.json()
            return result

        return wait_for(answer, timeout=15, what=f"an answer from Service {svc['metadata']['name']}")

    def wait_serves(self, version: str, service: str | None = None, timeout: float = DATAPLANE_S) -> None:
        """Ten answers in a row through the Service come from `version`, within `timeout` of now.

        After a promotion, rollback or relabelling, the EndpointSlice controller and kube-proxy
        take a moment to move the Service's traffic, and a replaced revision's pods leave it as
        they terminate: poll until the answers agree.
        """

        def agree() -> bool:
            return all(self.infer(service)["model_version"] == version for _ in range(10))

        wait_for(agree, timeout, f"ten answers in a row from version {version} through {service or self.name}")


@pytest.fixture
def mdep(local_cluster: ClusterHandle, k8s_namespace: str) -> Mdep:
    return Mdep(local_cluster, k8s_namespace, "clf")


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)[-3000:]
