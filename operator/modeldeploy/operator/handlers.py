"""kopf wiring (thin): watch events in, one reconcile loop per ModelDeployment, the planner in the middle.

Every ModelDeployment gets its own asyncio task that runs `Operator.reconcile` and then sleeps
until the planner's `requeue_after` or a wake-up, whichever is first. Wake-ups come from watch
events: the ModelDeployment's spec, annotations or generation changing (a create, an update, a
control annotation, and the initial listing after an operator restart), its Deployments and
Pods changing (readiness, crashes), and any RolloutPolicy changing. So a create, an update, a
resume after restart and a timer all run the same level-based reconcile:

    observe -> analysis tick when due -> plan -> apply children -> relabel pods -> status -> events

The handlers register no on.create/on.update/daemon, so kopf adds no finalizer and writes
nothing to the objects; its progress and diff-base storages are still set to annotations with
our prefix, so a handler added later cannot write into `status`. The operator never writes `spec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
from pydantic import ValidationError

from . import conditions as cond
from . import manifests, metrics
from .analysis import Analyser, AnalysisTarget, Arm, analysis_due
from .api.base import GROUP, VERSION
from .api.resources import MODELDEPLOYMENT_PLURAL, ROLLOUTPOLICY_PLURAL, ModelDeployment, RolloutPolicy
from .api.status import AnalysisStatus, ModelDeploymentStatus
from .contract import ContractReading
from .kube import Credentials, Kube, KubeError, merge_patch
from .modelmeta import read_contract
from .observe import observe, pod_model_name, pod_url, ready_pod_urls, ready_pods, relabels
from .revision import revision_of
from .rollout import Plan, effective_for, judging, parse_time, plan, rfc3339

log = logging.getLogger("modeldeploy.operator")

RESYNC_S = 300.0
"""Reconcile at least this often even when nothing happens."""
MIN_INTERVAL_S = 0.05
"""Coalesce bursts of wake-ups."""
MAX_BACKOFF_S = 30.0
Key = tuple[str, str]


@dataclass
class _Loop:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    seen: tuple[Any, ...] | None = None
    applied: dict[str, str] = field(default_factory=dict)
    """Child path -> JSON of what we last applied (skip identical applies; reset on restart)."""


class _RoutesNotServedError(Exception):
    """The API server answered 404 to an HTTPRoute's server-side apply: no Gateway API CRDs (v1)."""


class Operator:
    """The reconcile loops of one operator process."""

    def __init__(self, kube: Kube, analyser: Analyser | None = None) -> None:
        self.kube = kube
        self.analyser = analyser
        self.loops: dict[Key, _Loop] = {}
        self._http: httpx.AsyncClient | None = None
        """For the model contract reads (`modelmeta`); made on first use."""

    # ------------------------------------------------------------------ scheduling

    def touch(self, key: Key, seen: tuple[Any, ...] | None = None) -> None:
        """Make sure the object's loop runs, and wake it (unless `seen` says nothing we read changed)."""
        loop = self.loops.get(key)
        if loop is None:
            loop = self.loops[key] = _Loop()
            loop.seen = seen
            loop.task = asyncio.create_task(self._run(key, loop), name=f"reconcile {key[0]}/{key[1]}")
            metrics.MANAGED.set(len(self.loops))
            return
        if seen is not None and seen == loop.seen:
            return
        if seen is not None:
            loop.seen = seen
        loop.wake.set()

    def wake_all(self) -> None:
        for loop in self.loops.values():
            loop.wake.set()

    async def forget(self, key: Key) -> None:
        loop = self.loops.pop(key, None)
        metrics.MANAGED.set(len(self.loops))
        metrics.forget(*key)
        if loop is not None and loop.task is not None:
            loop.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop.task

    async def stop(self) -> None:
        for key in list(self.loops):
            await self.forget(key)

    async def _run(self, key: Key, loop: _Loop) -> None:
        backoff = 1.0
        while True:
            loop.wake.clear()
            started = time.monotonic()
            try:
                requeue = await self.reconcile(key[0], key[1], loop)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                metrics.RECONCILE_ERRORS.labels(type(e).__name__).inc()
                log.exception("reconcile of %s/%s failed; retrying in %gs", key[0], key[1], backoff)
                requeue, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            timeout = RESYNC_S if requeue is None else max(requeue, MIN_INTERVAL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), timeout)
            await asyncio.sleep(MIN_INTERVAL_S)

    # ------------------------------------------------------------------ the reconcile

    async def reconcile(self, namespace: str, name: str, loop: _Loop | None = None) -> float | None:
        """One level-based pass; returns seconds until the next pass is needed (None: only on change)."""
        t0 = time.monotonic()
        now = datetime.now(UTC)
        obj = await self.kube.get_md(namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        try:
            md = ModelDeployment.from_wire(obj)
        except ValidationError as e:
            await self._unreadable(obj, e, now)
            return None
        policies = []
        for raw in await self.kube.list_policies():
            try:
                policies.append(RolloutPolicy.from_wire(raw))
            except ValidationError:
                log.warning("RolloutPolicy %s is not valid; ignored", raw.get("metadata", {}).get("name"))
        effective = effective_for(md.spec, policies)
        selector = manifests.instance_selector(name)
        deployments = await self.kube.list_objects("apps/v1", "deployments", namespace, selector)
        pods = await self.kube.list_objects("v1", "pods", namespace, selector)
        observed = observe(deployments, pods)
        reading = await self._read_contract(md, pods)
        if reading is not None:
            observed = dataclasses.replace(observed, contract=reading)

        verdict = None
        status = md.status
        if (
            self.analyser is not None
            and effective.analysis is not None
            and status is not None
            and status.stable is not None
            and status.canary is not None
            and judging(md, effective)
            and analysis_due(status.analysis, effective.analysis, now)
        ):
            target = AnalysisTarget(
                namespace=namespace,
                name=name,
                model=md.spec.model.name,
                stable=Arm(status.stable.revision, ready_pod_urls(pods, status.stable.revision)),
                canary=Arm(status.canary.revision, ready_pod_urls(pods, status.canary.revision)),
                since=parse_time(status.canary.step_started_at),
                phases=len(effective.steps) + 1,
            )
            try:
                verdict = await self.analyser.tick(effective.analysis, target, status.analysis, now)
            except Exception:
                log.exception("analysis of %s/%s failed; no verdict this tick", namespace, name)

        p = plan(md, effective, observed, verdict, now)
        observed_replicas = {d.revision: d.replicas for d in observed.deployments.values()}
        try:
            await self._apply(namespace, p, observed_replicas, loop)
        except _RoutesNotServedError:
            # the HTTPRoute's apply is the probe: the plan puts it first, so nothing else was applied
            p = plan(md, effective, dataclasses.replace(observed, gateway_api=False), verdict, now)
            await self._apply(namespace, p, observed_replicas, loop)
        for pod_name, value in relabels(pods, p.serving, p.out_of_rotation):
            await self.kube.label_pod(namespace, pod_name, {manifests.LABEL_SERVING: value})
        if p.rollback is not None:
            # the canary's weight is zero now: the route's apply and the pods' relabel are done
            metrics.ROLLBACK_SECONDS.observe(time.monotonic() - t0)
            since = rollback_seconds(p, datetime.now(UTC))
            if since is not None:
                metrics.ROLLBACK_FROM_FIRST_FAILURE.observe(since)
        await self._write_status(obj, p)
        for ev in p.events:
            log.info("%s/%s %s: %s", namespace, name, ev.reason, ev.message)
            try:
                await self.kube.post_event(obj, ev.type, ev.reason, ev.message)
            except KubeError as err:
                log.warning("could not post Event %s for %s/%s: %s", ev.reason, namespace, name, err)
        self._record_metrics(namespace, name, p, verdict)
        return p.requeue_after

    async def _read_contract(self, md: ModelDeployment, pods: list[dict[str, Any]]) -> ContractReading | None:
        """The spec's revision's model contract against stable's, while it is not stable, not checked
        yet, and has a Ready pod (`Observed.contract`); None when there is nothing to read."""
        status = md.status
        if status is None or status.stable is None:
            return None
        rev = revision_of(md.spec)
        if rev == status.stable.revision:
            return None
        ca = status.canary
        if ca is not None and ca.revision == rev and ca.contract is not None and ca.contract.checked:
            return None
        canary_pods = ready_pods(pods, rev, serving_only=False)  # held out of rotation until checked
        if not canary_pods:
            return None
        stable_pods = ready_pods(pods, status.stable.revision)
        if not stable_pods:
            return ContractReading(
                rev, unknown=f"no Ready pod of stable revision {status.stable.revision} to compare with"
            )
        canary_pod, stable_pod = canary_pods[0], stable_pods[0]
        if self._http is None:
            self._http = httpx.AsyncClient()
        return await read_contract(
            self._http,
            rev,
            stable=(pod_url(stable_pod), pod_model_name(stable_pod) or md.spec.model.name),
            canary=(pod_url(canary_pod), pod_model_name(canary_pod) or md.spec.model.name),
        )

    async def aclose(self) -> None:
        """Close the HTTP client the contract reads use."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _apply(self, namespace: str, p: Plan, observed_replicas: dict[str, int], loop: _Loop | None) -> None:
        cache = loop.applied if loop is not None else {}
        for child in p.apply:
            path = self.kube.path_of(child)
            text = json.dumps(child, sort_keys=True)
            rev = (child["metadata"].get("labels") or {}).get(manifests.LABEL_REVISION)
            exists = child["kind"] != "Deployment" or rev in observed_replicas
            # the HTTPRoute is applied on every pass: a hand edit of its weights is undone at the next one
            if cache.get(path) == text and exists and child["kind"] != "HTTPRoute":
                continue
            try:
                await self.kube.apply(child)
            except KubeError as e:
                if e.status == 404 and child["kind"] == "HTTPRoute":
                    raise _RoutesNotServedError(str(e)) from e
                raise
            cache[path] = text
        for dep_name, replicas in p.scale.items():
            rev = dep_name.rsplit("-", 1)[-1]
            if observed_replicas.get(rev) != replicas:
                await self.kube.scale(namespace, dep_name, replicas)
        for dep_name in p.delete:
            await self.kube.delete_deployment(namespace, dep_name)
            cache.pop(f"apis/apps/v1/namespaces/{namespace}/deployments/{dep_name}", None)

    async def _write_status(self, obj: dict[str, Any], p: Plan) -> None:
        old = obj.get("status") or {}
        new = p.status.wire()
        if new == old:
            return
        meta = obj["metadata"]
        await self.kube.patch_status(meta["namespace"], meta["name"], merge_patch(old, new))

    async def _unreadable(self, obj: dict[str, Any], error: ValidationError, now: datetime) -> None:
        """A ModelDeployment the API models refuse (the CRD should have): say so in status, touch nothing."""
        meta = obj["metadata"]
        message = f"The spec cannot be read: {error.error_count()} errors: " + "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in error.errors()[:5]
        )
        previous = ModelDeploymentStatus.model_validate(obj.get("status") or {}) if obj.get("status") else None
        s = cond.Situation(
            state="Stalled", reason="InvalidSpec", message=message, available=False, available_message=""
        )
        conditions = cond.compute(previous.conditions if previous else [], s, rfc3339(now), meta.get("generation"))
        status = {
            "observedGeneration": meta.get("generation"),
            "phase": "Failed",
            "conditions": [c.wire() for c in conditions],
        }
        old = obj.get("status") or {}
        if {k: old.get(k) for k in status} != status:
            await self.kube.patch_status(meta["namespace"], meta["name"], status)

    def _record_metrics(self, namespace: str, name: str, p: Plan, verdict: AnalysisStatus | None = None) -> None:
        ca = p.status.canary
        metrics.CANARY_WEIGHT.labels(namespace, name, "requested").set(ca.weight if ca else 0)
        metrics.CANARY_WEIGHT.labels(namespace, name, "effective").set(ca.effective_weight if ca else 0)
        metrics.set_conditions(namespace, name, ((c.type, c.status) for c in p.status.conditions))
        if verdict is not None and verdict.verdict is not None:
            metrics.ANALYSIS_VERDICTS.labels(namespace, name, verdict.verdict).inc()
        if p.rollback is not None:
            metrics.ROLLOUTS.labels(namespace, name, p.rollback).inc()
            metrics.ROLLBACKS.labels(namespace, name, p.rollback).inc()
        if p.promoted:
            metrics.ROLLOUTS.labels(namespace, name, "Promoted").inc()


def rollback_seconds(p: Plan, now: datetime) -> float | None:
    """Seconds from the first failed check of the failure run that rolled the canary back
    (`status.analysis.firstFailureAt`) to `now`; None when this plan rolls nothing back on analysis."""
    analysis = p.status.analysis
    if p.rollback != "AnalysisFailed" or analysis is None:
        return None
    first = parse_time(analysis.first_failure_at or analysis.last_run_at)
    return None if first is None else max(0.0, (now - first).total_seconds())


# ---------------------------------------------------------------------------------------- kopf


def _seen(body: Any) -> tuple[Any, ...]:
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("operator.")}
    return (meta.get("generation"), tuple(sorted(annotations.items())), meta.get("deletionTimestamp"))


def register(registry: kopf.OperatorRegistry, creds: Credentials, state: dict[str, Any]) -> None:
    """Register the handlers on `registry`; `state["operator"]` holds the Operator once started."""

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.modeldeploy.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="operator.modeldeploy.io", key="last-handled-configuration"
        )
        settings.persistence.finalizer = "operator.modeldeploy.io/kopf-finalizer"
        settings.posting.enabled = False  # we post our own Events
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        kube = Kube(creds)
        state["operator"] = Operator(kube, Analyser())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        op: Operator | None = state.get("operator")
        if op is not None:
            await op.stop()
            await op.aclose()
            if op.analyser is not None:
                await op.analyser.aclose()
            await op.kube.aclose()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_file,
            insecure=creds.insecure,
            token=creds.bearer(),
            certificate_path=creds.cert_file,
            private_key_path=creds.key_file,
            default_namespace=creds.namespace,
        )

    @kopf.on.event(GROUP, VERSION, MODELDEPLOYMENT_PLURAL, registry=registry)
    async def modeldeployment(type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        op: Operator = state["operator"]
        key = (namespace or "", name)
        if type == "DELETED":
            await op.forget(key)
            return
        op.touch(key, _seen(body))

    @kopf.on.event(GROUP, VERSION, ROLLOUTPOLICY_PLURAL, registry=registry)
    async def rolloutpolicy(type: str, **_: Any) -> None:
        if type is not None:  # not the initial listing
            state["operator"].wake_all()

    managed = {manifests.LABEL_MANAGED_BY: manifests.FIELD_MANAGER}

    @kopf.on.event("apps", "v1", "deployments", labels=managed, registry=registry)
    async def deployment(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        _wake_owner(state, namespace, labels)

    @kopf.on.event("", "v1", "pods", labels={manifests.LABEL_NAME: manifests.APP_NAME}, registry=registry)
    async def pod(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        _wake_owner(state, namespace, labels)


def _wake_owner(state: dict[str, Any], namespace: str | None, labels: Mapping[str, str]) -> None:
    op: Operator | None = state.get("operator")
    owner = (labels or {}).get(manifests.LABEL_INSTANCE)
    if op is None or not owner:
        return
    loop = op.loops.get((namespace or "", owner))
    if loop is not None:
        loop.wake.set()
