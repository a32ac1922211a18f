"""kopf wiring, the only module that imports kopf: login, indices, watch handlers, the operator in `memo`.

kopf's watches feed two things. Indices (`@kopf.index`) keep the Deployments and Pods the operator
owns (label `app.kubernetes.io/managed-by=modeldeploy`, keyed by namespace and owner) and every
RolloutPolicy, so a pass reads them from memory instead of listing them. Event handlers wake the
owner's loop: the ModelDeployment's spec, annotations or generation changing (a create, an update, a
control annotation, and the initial listing after a restart), its Deployments and Pods changing,
any RolloutPolicy changing, and any other child being deleted (which also drops it from the loop's
identical-apply cache, so a hand-deleted Service comes back at once). kopf updates an index before it
calls the event handlers of the same event, so a woken pass reads the change.

The handlers register no on.create/on.update/daemon, so kopf adds no finalizer and writes nothing
to the objects; its progress and diff-base storages are still set to annotations with our prefix,
so a handler added later cannot write into `status`. The operator never writes `spec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from .. import manifests, metrics
from ..analysis import Analyser
from ..api.base import GROUP, VERSION
from ..api.resources import MODELDEPLOYMENT_PLURAL, ROLLOUTPOLICY_PLURAL
from ..kube import Credentials, Kube
from ..kube.execauth import ExecCredential
from ..observe import deployment_fields, pod_fields
from . import pauses
from .leader import Elector
from .read import Indexed
from .reconcile import Operator

log = logging.getLogger("modeldeploy.operator")

PREFIX = "operator.modeldeploy.io"
MANAGED = {manifests.LABEL_MANAGED_BY: manifests.FIELD_MANAGER}
INDICES = ("owned_deployments", "owned_pods", "policies", "owned_autoscalers", "owned_budgets")
"""kopf passes each index to every handler as a keyword argument named by its id."""
#: children other than Deployments (which are indexed): a DELETED event drops the apply cache and wakes the owner
CHILDREN = (
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
)


@dataclass
class State:
    """What the handlers share, kept in kopf's `memo` (shallow-copied per object, so this one object is shared)."""

    creds: Credentials
    lease: LeaseRef | None = None
    """Where to hold the leader Lease; None: no leader election (one replica)."""
    operator: Operator | None = None
    elector: asyncio.Task[None] | None = None
    lag: asyncio.Task[None] | None = None
    collector: asyncio.Task[None] | None = None
    given: ExecCredential | None = None
    """The exec credential kopf was last given: asked again while it is still cached means a 401."""


def _state(memo: Any) -> State:
    state: State = memo.state
    return state


def _seen(body: Any) -> tuple[Any, ...]:
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("operator.")}
    return (meta.get("generation"), tuple(sorted(annotations.items())), meta.get("deletionTimestamp"))


def _owner(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str] | None:
    owner = (labels or {}).get(manifests.LABEL_INSTANCE)
    return None if not owner else (namespace or "", owner)


async def connection_info(state: State) -> kopf.ConnectionInfo:
    """kopf's login from our credentials; an exec plugin's credential with its expiry (kopf logs in again
    then, and on a 401, when the plugin is re-run)."""
    creds = state.creds
    cert_data = key_data = None
    expiration = None
    provider = creds.exec
    if provider is not None:
        cred = provider.cached()
        if cred is None or cred is state.given:
            cred = await asyncio.to_thread(provider.refresh, cred)
        state.given = cred
        expiration = cred.expiration
        cert_data, key_data = cred.client_certificate_data, cred.client_key_data
    token = await asyncio.to_thread(creds.bearer)
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_file,
        insecure=creds.insecure,
        token=token,
        certificate_path=None if cert_data else creds.cert_file,
        private_key_path=None if key_data else creds.key_file,
        certificate_data=cert_data,
        private_key_data=key_data,
        default_namespace=creds.namespace,
        expiration=expiration,
    )


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the handlers on `registry`; they find the shared `State` in `memo.state`."""

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{PREFIX}/kopf-finalizer"
        settings.posting.enabled = False  # we post our own Events
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        state = _state(memo)
        kube = Kube(state.creds)
        deployments, pods, policies, autoscalers, budgets = (kwargs[i] for i in INDICES)
        source = Indexed(deployments, pods, policies, confirm=kube.list_policies, children=(autoscalers, budgets))
        state.operator = op = Operator(kube, Analyser(), source)
        state.lag = asyncio.create_task(pauses.watch_lag(), name="event loop lag")
        state.collector = asyncio.create_task(pauses.tend_collector(), name="garbage collector")
        if state.lease is None:
            metrics.LEADER.set(1)
        else:
            op.queue.leading = False  # until the Lease is ours
            metrics.LEADER.set(0)
            elector = Elector(kube, op.queue, state.lease.namespace, state.lease.name, state.lease.identity)
            state.elector = asyncio.create_task(elector.run(), name="leader election")

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state = _state(memo)
        for task in (state.elector, state.lag, state.collector):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        op = state.operator
        if op is not None:
            await op.aclose()

    @kopf.on.login(registry=registry)
    async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        return await connection_info(_state(memo))

    # --- indices: what a pass reads without a list call (async: kopf runs a sync handler in a thread,
    # a hop per watch event that costs more than the function)
    @kopf.index("apps", "v1", "deployments", labels=MANAGED, registry=registry, id=INDICES[0])
    async def owned_deployments(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> Any:
        key = _owner(namespace, labels)
        return None if key is None else {key: deployment_fields(body)}

    @kopf.index("", "v1", "pods", labels=MANAGED, registry=registry, id=INDICES[1])
    async def owned_pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> Any:
        key = _owner(namespace, labels)
        return None if key is None else {key: pod_fields(body)}

    @kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED, registry=registry, id=INDICES[3])
    async def owned_autoscalers(namespace: str | None, labels: Mapping[str, str], name: str, **_: Any) -> Any:
        key = _owner(namespace, labels)
        return None if key is None else {key: ("HorizontalPodAutoscaler", name)}

    @kopf.index("policy", "v1", "poddisruptionbudgets", labels=MANAGED, registry=registry, id=INDICES[4])
    async def owned_budgets(namespace: str | None, labels: Mapping[str, str], name: str, **_: Any) -> Any:
        key = _owner(namespace, labels)
        return None if key is None else {key: ("PodDisruptionBudget", name)}

    @kopf.index(GROUP, VERSION, ROLLOUTPOLICY_PLURAL, registry=registry, id=INDICES[2])
    async def policies(body: kopf.Body, **_: Any) -> Any:
        return {None: dict(body)}

    # --- wake-ups
    @kopf.on.event(GROUP, VERSION, MODELDEPLOYMENT_PLURAL, registry=registry)
    async def modeldeployment(
        type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
    ) -> None:
        op = _state(memo).operator
        if op is None:
            return
        key = (namespace or "", name)
        if type == "DELETED":
            await op.queue.forget(key)
            return
        op.queue.touch(key, _seen(body))

    @kopf.on.event(GROUP, VERSION, ROLLOUTPOLICY_PLURAL, registry=registry)
    async def rolloutpolicy(type: str, memo: kopf.Memo, **_: Any) -> None:
        op = _state(memo).operator
        if op is not None and type is not None:  # not the initial listing
            if isinstance(op.source, Indexed):
                op.source.changed()
            op.queue.wake_all()

    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED, registry=registry)
    async def deployment(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
        _wake(memo, namespace, labels)

    @kopf.on.event("", "v1", "pods", labels=MANAGED, registry=registry)
    async def pod(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
        _wake(memo, namespace, labels)

    for group, version, plural in CHILDREN:

        @kopf.on.event(group, version, plural, labels=MANAGED, registry=registry, id=f"child-{plural}")
        async def child(
            type: str, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
        ) -> None:
            if type == "DELETED" or (type == "MODIFIED" and edited_by_another(body)):
                _wake(memo, namespace, labels, dropped=Kube.path_of(dict(body)))


def edited_by_another(body: Mapping[str, Any]) -> bool:
    """A child whose spec (not status) another field manager has written to: drift to repair at once."""
    entries = (body.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") != manifests.FIELD_MANAGER and not e.get("subresource") for e in entries)


def _wake(memo: Any, namespace: str | None, labels: Mapping[str, str], dropped: str | None = None) -> None:
    op = _state(memo).operator
    key = _owner(namespace, labels)
    if op is not None and key is not None:
        op.queue.wake(key, dropped)


@dataclass(frozen=True)
class LeaseRef:
    """The leader Lease (coordination.k8s.io/v1) and this replica's identity in it."""

    namespace: str
    name: str
    identity: str


def run(creds: Credentials, namespaces: list[str], liveness: str | None, lease: LeaseRef | None = None) -> None:
    """Run the operator until it is stopped (SIGINT, SIGTERM); with `lease`, reconcile only while leading."""
    registry = kopf.OperatorRegistry()
    register(registry)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
            memo=kopf.Memo(state=State(creds, lease)),
        )
    )
