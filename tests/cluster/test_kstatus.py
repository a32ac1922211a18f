"""kstatus readings (sigs.k8s.io/cli-utils status.Compute) of real objects from the local cluster."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.localcluster import kstatus
from modeldeploy.localcluster.paths import pause_image
from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

#: the node's sandbox image: a container that only waits for its signal
PAUSE = pause_image()[1]


def test_kstatus_reads_conditions_and_generations() -> None:
    base: dict[str, Any] = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t", "generation": 2}}
    assert kstatus.compute({**base, "status": {"observedGeneration": 1}})[0] == "InProgress"
    ready = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
    assert kstatus.compute({**base, "status": ready}) == ("Current", "Resource is Ready")
    stalled = {"observedGeneration": 2, "conditions": [{"type": "Stalled", "status": "True", "message": "no model"}]}
    assert kstatus.compute({**base, "status": stalled}) == ("Failed", "no model")
    status, message = kstatus.compute({**base, "metadata": {"name": "t", "generation": 1}, "status": {}})
    assert status == "Current", message  # no conditions and nothing to wait for


@pytest.mark.cluster
def test_kstatus_of_a_deployment_goes_from_in_progress_to_current(
    local_cluster: ClusterHandle, k8s_namespace: str
) -> None:
    c, ns = local_cluster, k8s_namespace
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "k"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "k"}},
            "template": {
                "metadata": {"labels": {"app": "k"}},
                "spec": {"containers": [{"name": "m", "image": PAUSE, "imagePullPolicy": "Never"}]},
            },
        },
    }
    applied = c.apply(dep, namespace=ns)[0]
    assert c.kstatus(applied)[0] == "InProgress"

    def current() -> bool:
        obj = c.api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/k").json()
        return c.kstatus(obj)[0] == "Current"

    wait_for(current, 60, "kstatus Current for the Deployment")
