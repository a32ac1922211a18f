"""Carry a plan out: apply children, scale, delete, relabel pods, write status, post Events, record metrics.

Order matters for durability. A plan that rolls back or aborts (`Plan.rollback`) writes the status
that records it first, then changes routing (HTTPRoute weights, Services, pod labels, scale): if the
write fails, traffic stays where it was and the next pass plans again from the status it reads; if a
routing call fails after it, the next pass plans from the rolled-back status and finishes the job.
Every other plan changes the world first and then records it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from .. import conditions as cond
from .. import manifests, metrics
from ..api.status import AnalysisStatus, ModelDeploymentStatus
from ..kube import KubeError, merge_patch
from ..observe import pod_changes
from ..rollout import Plan, parse_time, rfc3339

log = logging.getLogger("modeldeploy.operator")
Raw = dict[str, Any]


class KubeWrites(Protocol):
    @staticmethod
    def path_of(obj: Raw) -> str: ...
    async def apply(self, obj: Raw) -> Raw | None: ...
    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...
    async def delete_deployment(self, namespace: str, name: str) -> None: ...
    async def delete_object(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...
    async def patch_pod(
        self, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str | None] | None = None
    ) -> None: ...
    async def patch_status(self, namespace: str, name: str, patch: Raw) -> Raw | None: ...
    async def post_event(self, md: Raw, type_: str, reason: str, message: str) -> None: ...


class RoutesNotServedError(Exception):
    """The API server answered 404 to an HTTPRoute's server-side apply: no Gateway API CRDs (v1)."""


async def enact(
    kube: KubeWrites,
    obj: Raw,
    p: Plan,
    *,
    deployments: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    applied: dict[str, str],
    started: float,
) -> None:
    """Everything `p` asks for, status first when it rolls back (see the module's docstring)."""
    namespace = obj["metadata"]["namespace"]
    replicas = {
        (d.get("metadata") or {}).get("labels", {}).get(manifests.LABEL_REVISION, ""): int(
            (d.get("spec") or {}).get("replicas", 1)
        )
        for d in deployments
    }
    if p.rollback is not None:
        await write_status(kube, obj, p)
    await apply_children(kube, namespace, p, replicas, applied)
    mirroring = p.status.stable.revision if p.status.stable is not None else None
    for change in pod_changes(
        pods, serving=p.serving, out=p.out_of_rotation, tracks=p.tracks, mirror=p.mirror, mirroring=mirroring
    ):
        await kube.patch_pod(namespace, change.name, change.labels, change.annotations)
    if p.rollback is not None:
        # the canary's weight is zero now: the route's apply and the pods' relabel are done
        metrics.ROLLBACK_SECONDS.observe(time.monotonic() - started)
        since = rollback_seconds(p, datetime.now(UTC))
        if since is not None:
            metrics.ROLLBACK_FROM_FIRST_FAILURE.observe(since)
    else:
        await write_status(kube, obj, p)
    await post_events(kube, obj, p)


async def apply_children(
    kube: KubeWrites, namespace: str, p: Plan, observed_replicas: dict[str, int], cache: dict[str, str]
) -> None:
    """Server-side apply what changed since our last apply (the HTTPRoute on every pass: a hand edit of
    its weights is undone at the next one), then scale and delete Deployments and delete the optional
    children the spec dropped. Existing Deployments are scaled before the apply: under autoscaling the
    apply carries no replicas, and the scale subresource (an update, not an apply) keeps owning them."""
    scaled = set()
    for dep_name, replicas in p.scale.items():
        dep_rev = dep_name.rsplit("-", 1)[-1]
        if dep_rev in observed_replicas and observed_replicas[dep_rev] != replicas:
            await kube.scale(namespace, dep_name, replicas)
            scaled.add(dep_name)
    for child in p.apply:
        path = kube.path_of(child)
        text = json.dumps(child, sort_keys=True)
        rev = (child["metadata"].get("labels") or {}).get(manifests.LABEL_REVISION)
        exists = child["kind"] != "Deployment" or rev in observed_replicas
        if cache.get(path) == text and exists and child["kind"] != "HTTPRoute":
            continue
        try:
            await kube.apply(child)
        except KubeError as e:
            if e.status == 404 and child["kind"] == "HTTPRoute":
                raise RoutesNotServedError(str(e)) from e
            raise
        cache[path] = text
    for dep_name, replicas in p.scale.items():
        rev = dep_name.rsplit("-", 1)[-1]
        if dep_name not in scaled and observed_replicas.get(rev) != replicas:
            await kube.scale(namespace, dep_name, replicas)
    for dep_name in p.delete:
        await kube.delete_deployment(namespace, dep_name)
        cache.pop(f"apis/apps/v1/namespaces/{namespace}/deployments/{dep_name}", None)
    for api_version, kind, child_name in p.delete_children:
        await kube.delete_object(api_version, kind, namespace, child_name)
        cache.pop(
            kube.path_of(
                {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace, "name": child_name}}
            ),
            None,
        )


async def write_status(kube: KubeWrites, obj: Raw, p: Plan) -> None:
    """The one status write of a pass: the merge patch from the status read to the plan's (none if equal).
    `obj["status"]` becomes the written status, so a second call in the same pass writes nothing."""
    old = obj.get("status") or {}
    new = p.status.wire()
    if new == old:
        return
    meta = obj["metadata"]
    await kube.patch_status(meta["namespace"], meta["name"], merge_patch(old, new))
    obj["status"] = new


async def post_events(kube: KubeWrites, obj: Raw, p: Plan) -> None:
    meta = obj["metadata"]
    for ev in p.events:
        log.info("%s/%s %s: %s", meta["namespace"], meta["name"], ev.reason, ev.message)
        try:
            await kube.post_event(obj, ev.type, ev.reason, ev.message)
        except KubeError as err:
            log.warning("could not post Event %s for %s/%s: %s", ev.reason, meta["namespace"], meta["name"], err)


async def write_unreadable(kube: KubeWrites, obj: Raw, error: ValidationError, now: datetime) -> None:
    """A ModelDeployment the API models refuse (the CRD should have): say so in status, touch nothing."""
    meta = obj["metadata"]
    message = f"The spec cannot be read: {error.error_count()} errors: " + "; ".join(
        f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in error.errors()[:5]
    )
    previous = ModelDeploymentStatus.model_validate(obj.get("status") or {}) if obj.get("status") else None
    s = cond.Situation(state="Stalled", reason="InvalidSpec", message=message, available=False, available_message="")
    conditions = cond.compute(previous.conditions if previous else [], s, rfc3339(now), meta.get("generation"))
    status = {
        "observedGeneration": meta.get("generation"),
        "phase": "Failed",
        "conditions": [c.wire() for c in conditions],
    }
    old = obj.get("status") or {}
    if {k: old.get(k) for k in status} != status:
        await kube.patch_status(meta["namespace"], meta["name"], status)


def record_metrics(namespace: str, name: str, p: Plan, verdict: AnalysisStatus | None = None) -> None:
    ca = p.status.canary
    metrics.series(metrics.CANARY_WEIGHT, namespace, name, "requested").set(ca.weight if ca else 0)
    metrics.series(metrics.CANARY_WEIGHT, namespace, name, "effective").set(ca.effective_weight if ca else 0)
    metrics.set_conditions(namespace, name, ((c.type, c.status) for c in p.status.conditions))
    if verdict is not None and verdict.verdict is not None:
        metrics.series(metrics.ANALYSIS_VERDICTS, namespace, name, verdict.verdict).inc()
    if p.rollback is not None:
        metrics.series(metrics.ROLLOUTS, namespace, name, p.rollback).inc()
        metrics.series(metrics.ROLLBACKS, namespace, name, p.rollback).inc()
    if p.promoted:
        metrics.series(metrics.ROLLOUTS, namespace, name, "Promoted").inc()


def rollback_seconds(p: Plan, now: datetime) -> float | None:
    """Seconds from the first failed check of the failure run that rolled the canary back
    (`status.analysis.firstFailureAt`) to `now`; None when this plan rolls nothing back on analysis."""
    analysis = p.status.analysis
    if p.rollback != "AnalysisFailed" or analysis is None:
        return None
    first = parse_time(analysis.first_failure_at or analysis.last_run_at)
    return None if first is None else max(0.0, (now - first).total_seconds())
