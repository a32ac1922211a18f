"""trafficRouting.gatewayAPI for real: the operator's HTTPRoute on the local cluster's Traefik, requests
counted by the model version that answered.

Traefik splits a weighted service by smooth weighted round robin, so its split is at least as tight
as independent draws; the tolerance is the binomial one (Z standard deviations of n draws at p), so
a correct split fails with probability below 1e-4 and a split off by a few points still fails.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from e2e.installed import InstalledOperator

from modeldeploy.localcluster.gateway import GatewayDataPlane
from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for
from modeldeploy.operator.api import ModelDeployment
from modeldeploy.operator.revision import revision_of

from ..operator.conftest import Model
from .conftest import GATEWAY_NAME, GATEWAY_NAMESPACE

pytestmark = pytest.mark.cluster

Z = 4.0
"""Standard deviations of tolerance: a two-sided false failure rate of 6e-5."""
ROUTE = "clf"
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}


def binomial_tolerance(n: int, p: float, z: float = Z) -> float:
    return z * math.sqrt(n * p * (1 - p))


class GatewayMdep:
    """A ModelDeployment routed by the Gateway, its model named uniquely (the route matches /v2/models/<name>)."""

    def __init__(self, cluster: ClusterHandle, gw: GatewayDataPlane, namespace: str) -> None:
        self.cluster = cluster
        self.gw = gw
        self.namespace = namespace
        self.name = "clf"
        self.model = f"clf-{secrets.token_hex(3)}"

    def manifest(self, m: Model, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "owner": "team-tests",
                "model": {"name": self.model, "version": m.version, "uri": m.uri, "sha256": m.sha256},
                "serving": {"replicas": 1},
                "rollout": {
                    "steps": steps,
                    "scaleDownDelay": "2s",
                    "progressDeadline": "60s",
                    "trafficRouting": {
                        "gatewayAPI": {
                            "httpRoute": ROUTE,
                            "gateway": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
                        }
                    },
                },
            },
        }

    def apply(self, m: Model, steps: list[dict[str, Any]]) -> str:
        manifest = self.manifest(m, steps)
        self.cluster.apply(manifest, field_manager="ml-engineer")
        return revision_of(ModelDeployment.from_wire(manifest).spec)

    def status(self) -> dict[str, Any]:
        obj = self.cluster.get_json("mdep", self.name, "-n", self.namespace)
        if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
            return {}
        status: dict[str, Any] = obj["status"]
        return status

    def annotate(self, key: str, value: str) -> None:
        self.cluster.kubectl("annotate", "mdep", self.name, "-n", self.namespace, f"{key}={value}", "--overwrite")

    # --- through the Gateway
    def versions(self, n: int) -> Counter[str]:
        """Model versions that answered n inference requests sent to the Gateway."""
        out: Counter[str] = Counter()
        with httpx.Client(trust_env=False, timeout=10.0) as c:
            for _ in range(n):
                r = c.post(f"{self.gw.url}/v2/models/{self.model}/infer", json=BODY)
                r.raise_for_status()
                out[str(r.json()["model_version"])] += 1
        return out

    def traefik_weights(self) -> dict[str, int]:
        """The weights Traefik applied to this route's backends (`/api/http/services`), by track."""
        out: dict[str, int] = {}
        for svc in self.gw.http_services():
            for child in (svc.get("weighted") or {}).get("services") or []:
                name = str(child.get("name", ""))
                for track in ("stable", "canary"):
                    if f"{self.namespace}-{self.name}-{track}-" in name:
                        out[track] = int(child.get("weight", 0))
        return out

    def traefik_servers(self, track: str) -> int:
        for svc in self.gw.http_services():
            if f"{self.namespace}-{self.name}-{track}-" in str(svc.get("name", "")):
                return len((svc.get("loadBalancer") or {}).get("servers") or [])
        return 0

    def wait_split(self, canary: int, timeout: float = 30) -> None:
        """Until Traefik applies `canary`% and, when positive, has the canary's pod as a server."""
        wait_for(
            lambda: (
                self.traefik_weights() == {"stable": 100 - canary, "canary": canary}
                and (canary == 0 or self.traefik_servers("canary") > 0)
            ),
            timeout,
            f"Traefik applying stable {100 - canary} / canary {canary} (log {self.gw.log_path})",
        )


@pytest.fixture
def gmdep(
    local_cluster: ClusterHandle, gateway: GatewayDataPlane, k8s_namespace: str, operator: InstalledOperator
) -> GatewayMdep:
    return GatewayMdep(local_cluster, gateway, k8s_namespace)


def deploy_v1(g: GatewayMdep, v1: Model, steps: list[dict[str, Any]]) -> None:
    g.apply(v1, steps)
    wait_for(lambda: (g.status().get("stable") or {}).get("modelVersion") == "1", 90, "version 1 stable")
    # the route is Accepted by the Gateway and Traefik sends the model's requests to stable
    wait_for(lambda: g.versions(5) == {"1": 5}, 30, "version 1 answering through the Gateway")


def test_gateway_features_are_read_not_assumed(gateway: GatewayDataPlane) -> None:
    features = gateway.supported_features()
    assert "HTTPRoute" in features  # Traefik reports what it implements
    assert "HTTPRouteRequestMirror" not in features  # so a shadow step must not use the filter here


def test_weighted_split_then_promotion(gmdep: GatewayMdep, onnx_models: dict[str, Model]) -> None:
    g = gmdep
    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"approval": {}}]
    deploy_v1(g, onnx_models["1"], steps)
    route = g.cluster.get_json("httproute", ROUTE, "-n", g.namespace)
    parents = route["status"]["parents"]
    assert any(c["type"] == "Accepted" and c["status"] == "True" for c in parents[0]["conditions"])
    assert g.versions(50) == {"1": 50}

    rev2 = g.apply(onnx_models["2"], steps)
    wait_for(
        lambda: (g.status().get("canary") or {}).get("stepAction") == "approval",
        60,
        "canary at setWeight 20, awaiting approval",
    )
    ca = g.status()["canary"]
    assert (ca["weight"], ca["effectiveWeight"], ca["replicas"]) == (20, 20, 1)  # exact; full size (1 pod)
    assert g.status()["stable"]["weight"] == 80
    g.wait_split(20)
    n = 400
    counts = g.versions(n)
    assert set(counts) <= {"1", "2"}
    assert abs(counts["2"] - 0.2 * n) <= binomial_tolerance(n, 0.2), counts

    g.annotate("modeldeploy.io/approve", rev2)
    wait_for(lambda: (g.status().get("stable") or {}).get("modelVersion") == "2", 60, "version 2 promoted")
    g.wait_split(0)
    wait_for(lambda: g.versions(20) == {"2": 20}, 20, "only version 2 answering")
    assert g.versions(200) == {"2": 200}


def test_abort_sends_nothing_to_the_canary_at_once(gmdep: GatewayMdep, onnx_models: dict[str, Model]) -> None:
    g = gmdep
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}]
    deploy_v1(g, onnx_models["1"], steps)
    g.apply(onnx_models["2"], steps)
    wait_for(lambda: (g.status().get("canary") or {}).get("stepAction") == "approval", 60, "canary at 50%")
    g.wait_split(50)
    n = 100
    assert abs(g.versions(n)["2"] - 0.5 * n) <= binomial_tolerance(n, 0.5)

    t0 = time.monotonic()
    g.annotate("modeldeploy.io/abort", "test")
    # requests keep flowing; the first batch with no canary answer marks the moment traffic left it
    wait_for(lambda: g.versions(10).get("2", 0) == 0, 10, "no answer from the aborted canary")
    to_zero = time.monotonic() - t0
    assert g.versions(200) == {"1": 200}
    st = g.status()
    assert st.get("canary") is None and st["stable"]["modelVersion"] == "1" and st["stable"]["weight"] == 100
    assert st["history"][-1]["action"] == "Aborted"
    g.wait_split(0)
    assert to_zero < 5, f"canary traffic took {to_zero:.1f}s to stop"
