"""The edge under gatewayAPI routing: the HTTPRoute goes first and every pass; a 404 to it stalls the spec."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from modeldeploy.operator.controller import Loop as _Loop
from modeldeploy.operator.controller import Operator
from modeldeploy.operator.kube import Kube, KubeError

from .test_planner import make_md

ROUTING = {"gatewayAPI": {"httpRoute": "fraud-route", "gateway": {"name": "edge"}}}


class FakeKube:
    """The few calls `Operator.reconcile` makes, recorded; HTTPRoutes answer 404 unless `routes` is set."""

    def __init__(self, obj: dict[str, Any], routes: bool) -> None:
        self.obj = obj
        self.routes = routes
        self.applied: list[str] = []
        self.statuses: list[dict[str, Any]] = []

    @staticmethod
    def path_of(obj: dict[str, Any]) -> str:
        return f"{obj['kind']}/{obj['metadata']['name']}"

    async def get_md(self, namespace: str, name: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.obj))  # type: ignore[no-any-return]

    async def list_policies(self) -> list[dict[str, Any]]:
        return []

    async def list_objects(self, *_: Any) -> list[dict[str, Any]]:
        return []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "HTTPRoute" and not self.routes:
            raise KubeError(404, "PATCH /apis/gateway.networking.k8s.io/v1/...: the server could not find it")
        self.applied.append(self.path_of(obj))
        return obj

    async def scale(self, *_: Any) -> None:
        return None

    async def delete_deployment(self, *_: Any) -> None:
        return None

    async def delete_object(self, *_: Any) -> None:
        return None

    async def patch_pod(self, *_: Any) -> None:
        return None

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.statuses.append(patch)

    async def post_event(self, *_: Any) -> None:
        return None


def reconcile(kube: FakeKube, passes: int = 1) -> None:
    op = Operator(cast("Kube", kube))
    loop = _Loop()

    async def main() -> None:
        for _ in range(passes):
            await op.reconcile("ml", "fraud", loop)

    asyncio.run(main())


def test_route_applied_first_and_on_every_pass() -> None:
    kube = FakeKube(make_md(steps=[{"setWeight": 20}], trafficRouting=ROUTING), routes=True)
    reconcile(kube, passes=2)
    assert kube.applied[0] == "HTTPRoute/fraud-route"
    assert kube.applied.count("HTTPRoute/fraud-route") == 2  # not skipped as unchanged
    assert kube.applied.count("Service/fraud") == 1  # other children are


def test_no_gateway_api_crds_stalls_with_invalid_spec_and_creates_nothing_new() -> None:
    kube = FakeKube(make_md(steps=[{"setWeight": 20}], trafficRouting=ROUTING), routes=False)
    reconcile(kube)
    assert not [a for a in kube.applied if a.startswith(("Deployment/", "HTTPRoute/"))]
    (status,) = kube.statuses
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "Gateway API CRDs" in stalled["message"]
