"""Children deleted by hand come back (issue 12 hole 8): the operator watches what it owns, and a
DELETED event drops the child from its identical-apply cache and wakes the owner's loop."""

from __future__ import annotations

import pytest
from e2e.installed import InstalledOperator

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster


def test_a_hand_deleted_service_and_service_account_are_recreated(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    mdep.apply(onnx_models["1"])
    ns = mdep.namespace

    def uid(kind: str, name: str) -> str:
        r = local_cluster.api.get(f"/api/v1/namespaces/{ns}/{kind}/{name}")
        return str(r.json()["metadata"]["uid"]) if r.status_code == 200 else ""

    children = (("services", mdep.name), ("serviceaccounts", f"{mdep.name}-runtime"))
    before: dict[tuple[str, str], str] = {}
    for c in children:
        before[c] = wait_for(lambda c=c: uid(*c), 60, f"{c[0]}/{c[1]} created")  # type: ignore[misc]
    for kind, name in children:
        r = local_cluster.api.delete(f"/api/v1/namespaces/{ns}/{kind}/{name}")
        assert r.status_code == 200, r.text
    for c in children:

        def recreated(c: tuple[str, str] = c) -> str:
            u = uid(*c)
            return u if u and u != before[c] else ""

        # the resync is 5 minutes: coming back within 30 s is the watch's doing
        wait_for(recreated, 30, f"{c[0]}/{c[1]} re-created")
