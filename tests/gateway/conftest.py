"""The Gateway API data plane on the local cluster: Traefik (built by hack/cluster/build-traefik.sh), the
Gateway API CRDs, GatewayClass `traefik` and one Gateway `edge` for every test of the session.

The operator's fixtures (CRDs, ONNX models, the operator installed by helm) are the ones of tests/operator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.operator.conftest import (  # noqa: F401 - fixtures and the report hook, shared with tests/operator
    crds,
    onnx_models,
    operator,
    pytest_runtest_makereport,
)

from modeldeploy.localcluster.gateway import GatewayDataPlane, GatewayError, prerequisites
from modeldeploy.localcluster.pytest_plugin import LOCAL_ONLY, ClusterHandle, wait_for

GATEWAY_NAMESPACE = "modeldeploy-gateway"
GATEWAY_NAME = "edge"


@pytest.fixture(scope="session")
def gateway(local_cluster: ClusterHandle) -> Iterator[GatewayDataPlane]:
    if not local_cluster.local:
        pytest.skip(LOCAL_ONLY)
    """Traefik serving Gateway `modeldeploy-gateway/edge` (port 80 on 10.244.0.80), stopped at session end."""
    problems = prerequisites()
    if problems:
        pytest.fail("the Gateway API data plane cannot run here: " + "; ".join(problems), pytrace=False)
    plane = GatewayDataPlane(local_cluster, local_cluster.state_dir / "logs")
    try:
        plane.start()
    except (GatewayError, AssertionError) as e:
        pytest.fail(f"Traefik did not start: {e}\n{plane.log_tail()}", pytrace=False)
    try:
        r = local_cluster.api.post(
            "/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        )
        assert r.status_code in (201, 409), r.text
        wait_for(
            lambda: local_cluster.api.get(f"/api/v1/namespaces/{GATEWAY_NAMESPACE}").status_code == 200,
            30,
            f"namespace {GATEWAY_NAMESPACE}",
        )
        plane.create_gateway(GATEWAY_NAME, GATEWAY_NAMESPACE)
        yield plane
    finally:
        plane.stop()
