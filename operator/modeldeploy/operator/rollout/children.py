"""The objects a ModelDeployment owns, for a rollout state: what to apply, scale, delete, and which
revisions' pods serve (pure).

Under `serving.autoscaling` no Deployment is applied with `spec.replicas`: the HorizontalPodAutoscaler
owns stable's, and every other size goes through the scale subresource. A server-side apply that
stops naming a field its manager alone owned removes it (and a Deployment's replicas then default
to 1), so applying a promoted canary without the replicas it was applied with would shrink it to
one pod until the autoscaler caught up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import conditions as cond
from .. import manifests
from .pods import own_autoscaler
from .shadow import shadowing
from .state import Rollout, Tick

OPTIONAL_KINDS = (
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)


@dataclass(frozen=True)
class Children:
    apply: tuple[dict[str, Any], ...]
    scale: dict[str, int]
    delete: tuple[str, ...]
    delete_children: tuple[tuple[str, str, str], ...]
    serving: frozenset[str]
    out_of_rotation: frozenset[str]


def sizes(tick: Tick, r: Rollout) -> dict[str, int | None]:
    """Replicas per revision that should exist (None: the autoscaler decides)."""
    full = r.full_size(tick)
    out: dict[str, int | None] = {}
    if r.stable is not None:
        out[r.stable.revision] = None if tick.spec.serving.autoscaling is not None else full
    if r.canary is not None:
        out[r.canary.revision] = None if own_autoscaler(tick, r) else r.canary.replicas
    for entry in r.retiring:
        seen = tick.observed.deployments.get(entry.revision)
        out.setdefault(entry.revision, seen.replicas if seen else 0)
    for ref in (r.last_known_good, r.rolled_back):
        if ref is not None:
            out.setdefault(ref.revision, 0)
    return out


def children(tick: Tick, r: Rollout, situation: cond.Situation) -> Children:
    md, name = tick.md, tick.name
    autoscaled = tick.spec.serving.autoscaling is not None
    replicas = sizes(tick, r)
    apply: list[dict[str, Any]] = [manifests.service_account(md)]
    scale: dict[str, int] = {}
    if situation.state == "Stalled" and situation.reason == "InvalidSpec":
        # nothing new is created; what exists keeps its size
        for rev, n in replicas.items():
            if rev in tick.observed.deployments and n is not None:
                scale[manifests.deployment_name(name, rev)] = n
    else:
        for rev, n in replicas.items():
            if rev == tick.revision:
                apply.append(manifests.deployment(md, rev, None if autoscaled else n))
                if autoscaled and n is not None:
                    scale[manifests.deployment_name(name, rev)] = n
            elif rev in tick.observed.deployments and n is not None:
                scale[manifests.deployment_name(name, rev)] = n
    stable_rev = r.stable.revision if r.stable else (r.canary.revision if r.canary else tick.revision)
    apply.extend(manifests.services(md, stable_rev, r.canary.revision if r.canary else None))
    if tick.observed.gateway_api is not False:
        # the canary's routed share; 0 with no canary (a rollback or abort this tick) or no stable yet.
        # First in the plan: a rollback's weight 0 goes out before anything else, and the edge learns
        # from this apply (404) that the cluster has no Gateway API before it creates anything
        routed = r.canary.effective_weight if r.canary is not None and r.stable is not None else 0
        route = manifests.http_route(md, routed)
        if route is not None:
            apply.insert(0, route)
    wanted: set[tuple[str, str]] = set()
    autoscalers = []
    if r.stable is not None:
        autoscalers.append((r.stable.revision, "stable"))
    if r.canary is not None and own_autoscaler(tick, r):
        autoscalers.append((r.canary.revision, "canary"))
    for rev, track in autoscalers:
        hpa = manifests.autoscaler(md, rev, track)
        if hpa is not None:
            apply.append(hpa)
            wanted.add(("HorizontalPodAutoscaler", hpa["metadata"]["name"]))
    pdb = manifests.disruption_budget(md)
    if pdb is not None:
        apply.append(pdb)
        wanted.add(("PodDisruptionBudget", name))
    delete_children = tuple(
        (api_version, kind, child)
        for api_version, kind in OPTIONAL_KINDS
        for seen_kind, child in sorted(tick.observed.children)
        if seen_kind == kind and (kind, child) not in wanted
    )
    delete = tuple(
        manifests.deployment_name(name, rev) for rev in sorted(tick.observed.deployments) if rev not in replicas
    )
    live = r.canary is not None and not r.contract_held and shadowing(tick, r) is None
    canary_rev = r.canary.revision if live and r.canary is not None else None
    serving = frozenset(x for x in (stable_rev, canary_rev) if x)
    known = set(replicas) | set(tick.observed.deployments)
    return Children(
        apply=tuple(apply),
        scale=scale,
        delete=delete,
        delete_children=delete_children,
        serving=serving,
        out_of_rotation=frozenset(known - serving),
    )
