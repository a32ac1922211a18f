"""What one pass reads: the ModelDeployment itself (a GET: its status must be the one we last wrote),
and its Deployments, Pods and the RolloutPolicies from a `Source`: kopf's watch caches in the
operator (`Indexed`), or plain lists (`Listing`: tests, a CLI).

Policy reads fail closed: a RolloutPolicy that does not parse is passed on as `policy.Unreadable`
(with its tier when that much reads), and a RolloutPolicy API that is not served (no CRD) as
`Unreadable(None, None, ...)`, never as "no policy".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from .. import manifests
from ..api.resources import ModelDeployment, RolloutPolicy
from ..kube import NotFound
from ..policy import Unreadable
from .workqueue import ObjectGone

NOT_SERVED = "the RolloutPolicy API is not served"
Raw = dict[str, Any]


class KubeReads(Protocol):
    async def get_md(self, namespace: str, name: str) -> Raw | None: ...
    async def list_policies(self) -> list[Raw]: ...
    async def list_objects(
        self, api_version: str, plural: str, namespace: str, selector: dict[str, str]
    ) -> list[Raw]: ...


class Source(Protocol):
    """Where a pass reads the objects it does not GET."""

    async def policies(self) -> list[Raw]:
        """Every RolloutPolicy as the API returns it; `kube.NotFound` when the API is not served."""
        ...

    async def deployments(self, namespace: str, name: str) -> list[Raw]: ...
    async def pods(self, namespace: str, name: str) -> list[Raw]: ...
    async def children(self, namespace: str, name: str) -> frozenset[tuple[str, str]]:
        """(kind, name) of the HorizontalPodAutoscalers and PodDisruptionBudgets it owns."""
        ...


class Listing:
    """Lists through the API on every call."""

    def __init__(self, kube: KubeReads) -> None:
        self.kube = kube

    async def policies(self) -> list[Raw]:
        return await self.kube.list_policies()

    async def deployments(self, namespace: str, name: str) -> list[Raw]:
        sel = manifests.instance_selector(name)
        return await self.kube.list_objects("apps/v1", "deployments", namespace, sel)

    async def pods(self, namespace: str, name: str) -> list[Raw]:
        return await self.kube.list_objects("v1", "pods", namespace, manifests.instance_selector(name))

    async def children(self, namespace: str, name: str) -> frozenset[tuple[str, str]]:
        sel = manifests.instance_selector(name)
        hpas = await self.kube.list_objects("autoscaling/v2", "horizontalpodautoscalers", namespace, sel)
        pdbs = await self.kube.list_objects("policy/v1", "poddisruptionbudgets", namespace, sel)
        return frozenset(
            [("HorizontalPodAutoscaler", str(o["metadata"]["name"])) for o in hpas]
            + [("PodDisruptionBudget", str(o["metadata"]["name"])) for o in pdbs]
        )


class Indexed:
    """kopf's indices (Mapping of key -> the values of every object under it): Deployments and Pods keyed
    by (namespace, owner name), policies under the key None. When the policy index is empty, one list
    call (`limit=1`) tells "none exist" from "the API is not served"."""

    def __init__(
        self,
        deployments: Mapping[Any, Iterable[Raw]],
        pods: Mapping[Any, Iterable[Raw]],
        policies: Mapping[Any, Iterable[Raw]],
        confirm: Any,
        children: Iterable[Mapping[Any, Iterable[tuple[str, str]]]] = (),
    ) -> None:
        self._deployments, self._pods, self._policies, self._confirm = deployments, pods, policies, confirm
        self._children = tuple(children)
        self._none_confirmed = False

    async def policies(self) -> list[Raw]:
        cached = list(self._policies.get(None, ()))
        if cached:
            return cached
        if self._none_confirmed:
            return []
        listed: list[Raw] = await self._confirm(limit=1)  # raises NotFound when the API is not served
        if not listed:
            self._none_confirmed = True  # until a RolloutPolicy event (`changed`): no list call per pass
            return listed
        every: list[Raw] = await self._confirm()  # the index is not warm yet
        return every

    def changed(self) -> None:
        """A RolloutPolicy came, changed or went (also all of them, with their CRD): confirm again."""
        self._none_confirmed = False

    async def deployments(self, namespace: str, name: str) -> list[Raw]:
        return list(self._deployments.get((namespace, name), ()))

    async def pods(self, namespace: str, name: str) -> list[Raw]:
        return list(self._pods.get((namespace, name), ()))

    async def children(self, namespace: str, name: str) -> frozenset[tuple[str, str]]:
        return frozenset(child for index in self._children for child in index.get((namespace, name), ()))


def policy_inputs(raws: Iterable[Raw] | None) -> tuple[list[RolloutPolicy], list[Unreadable]]:
    """The policies that parse, and the ones that do not as `Unreadable`; `None` (the API is not served) is
    one `Unreadable(None, None, NOT_SERVED)`."""
    if raws is None:
        return [], [Unreadable(None, None, NOT_SERVED)]
    policies, unreadable = [], []
    for raw in raws:
        try:
            policies.append(RolloutPolicy.from_wire(raw))
        except ValidationError as e:
            name = (raw.get("metadata") or {}).get("name")
            tier = (raw.get("spec") or {}).get("tier")
            first = e.errors()[0] if e.errors() else None
            where = ".".join(str(x) for x in first["loc"]) if first else ""
            unreadable.append(
                Unreadable(
                    str(name) if name else None,
                    tier if isinstance(tier, int) and not isinstance(tier, bool) and 1 <= tier <= 3 else None,
                    f"{e.error_count()} invalid fields" + (f" ({where}: {first['msg']})" if first else ""),
                )
            )
    return policies, unreadable


@dataclass(frozen=True)
class Snapshot:
    """What one pass knows of the world."""

    obj: Raw
    """The ModelDeployment as read (its status is what the status write patches from)."""
    md: ModelDeployment | None
    """None when the API models refuse it (`invalid` says why)."""
    invalid: ValidationError | None
    policies: list[RolloutPolicy]
    unreadable: list[Unreadable]
    deployments: list[Raw]
    pods: list[Raw]
    children: frozenset[tuple[str, str]] = frozenset()
    """(kind, name) of the optional children that exist (HPAs, PDBs)."""


async def read(kube: KubeReads, source: Source, namespace: str, name: str) -> Snapshot | None:
    """The ModelDeployment and what it needs; None while it is being deleted; `ObjectGone` once it is gone."""
    obj = await kube.get_md(namespace, name)
    if obj is None:
        raise ObjectGone(f"{namespace}/{name}")
    if obj["metadata"].get("deletionTimestamp"):
        return None
    try:
        md = ModelDeployment.from_wire(obj)
    except ValidationError as e:
        return Snapshot(obj, None, e, [], [], [], [])
    try:
        raws: list[Raw] | None = await source.policies()
    except NotFound:
        raws = None
    policies, unreadable = policy_inputs(raws)
    return Snapshot(
        obj,
        md,
        None,
        policies,
        unreadable,
        await source.deployments(namespace, name),
        await source.pods(namespace, name),
        await source.children(namespace, name),
    )
