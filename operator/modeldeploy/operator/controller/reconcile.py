"""One level-based pass over a ModelDeployment, as a table of contents:

    read      the object (GET), its policies, Deployments and Pods (watch caches)   read.read
    contract  the canary's model contract from its pods, backed off while unknown   Operator.read_contract
    analyse   one analysis check when due                                           Operator.analyse
    plan      the pure rollout phases                                                rollout.plan
    enact     children, routing, status (first on a rollback), Events, metrics      enact.enact

A create, an update, a watch event, a timer and a restart all run the same pass.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from .. import metrics
from ..analysis import Analyser, AnalysisTarget, Arm, analysis_due
from ..analysis.target import ShadowGate
from ..api.resources import ModelDeployment
from ..api.status import AnalysisStatus
from ..contract import ContractReading
from ..modelmeta import read_contract
from ..observe import observe, pod_model_name, pod_url, ready_pod_urls, ready_pods
from ..policy import EffectiveRollout
from ..revision import revision_of
from ..rollout import Plan, effective_for, judging, parse_time, plan
from . import enact as act
from .read import Listing, Snapshot, Source, read
from .workqueue import ContractRetry, Loop, WorkQueue

log = logging.getLogger("modeldeploy.operator")

CONTRACT_BACKOFF_S = (2.0, 60.0)
"""The model contract read of one canary revision, while it cannot be read: retried after 2 s, doubling to 60 s."""


def contract_delay(failures: int) -> float:
    """Seconds before the next contract read after `failures` unknown readings in a row (2, 4, ... 60)."""
    first, cap = CONTRACT_BACKOFF_S
    return float(min(cap, first * 2 ** max(0, failures - 1)))


def shadow_gate(effective: EffectiveRollout, step: int) -> ShadowGate | None:
    """The agreement gate while the canary is at a shadow step."""
    steps = effective.steps
    shadow = steps[step].shadow if 0 <= step < len(steps) else None
    return None if shadow is None else ShadowGate(min_agreement_percent=shadow.min_agreement_percent)


class Operator:
    """The reconcile loops of one operator process."""

    def __init__(self, kube: Any, analyser: Analyser | None = None, source: Source | None = None) -> None:
        self.kube = kube
        self.analyser = analyser
        self.source: Source = source or Listing(kube)
        self.queue = WorkQueue(self.reconcile)
        self._http: httpx.AsyncClient | None = None
        """For the model contract reads (`modelmeta`); made on first use."""

    @property
    def loops(self) -> dict[tuple[str, str], Loop]:
        return self.queue.loops

    async def reconcile(self, namespace: str, name: str, loop: Loop | None = None) -> float | None:
        """One pass; returns seconds until the next pass is needed (None: only on change). Raises
        `ObjectGone` when the ModelDeployment no longer exists."""
        started, now = time.monotonic(), datetime.now(UTC)
        loop = loop if loop is not None else Loop()
        snap = await read(self.kube, self.source, namespace, name)
        if snap is None:
            return None
        if snap.md is None:
            assert snap.invalid is not None
            await act.write_unreadable(self.kube, snap.obj, snap.invalid, now)
            return None
        md = snap.md
        effective = effective_for(md.spec, snap.policies, snap.unreadable)
        observed = dataclasses.replace(observe(snap.deployments, snap.pods), children=snap.children)
        reading = await self.read_contract(md, snap, loop)
        if reading is not None:
            observed = dataclasses.replace(observed, contract=reading)
        verdict = await self.analyse(md, effective, snap, now)
        p = plan(md, effective, observed, verdict, now)
        enact = functools.partial(
            act.enact,
            self.kube,
            snap.obj,
            deployments=snap.deployments,
            pods=snap.pods,
            applied=loop.applied,
            started=started,
        )
        try:
            await enact(p)
        except act.RoutesNotServedError:
            # the HTTPRoute's apply is the probe: the plan puts it first, so no other child was applied
            p = plan(md, effective, dataclasses.replace(observed, gateway_api=False), verdict, now)
            await enact(p)
        act.record_metrics(namespace, name, p, verdict)
        metrics.set_info(namespace, name, md.spec.owner, md.spec.tier)
        return self._requeue(p, loop)

    def _requeue(self, p: Plan, loop: Loop) -> float | None:
        """The plan's requeue, but no sooner than the next contract read while that is backed off (a watch
        event still wakes the loop at once)."""
        retry = loop.contract
        if p.requeue_after is None or retry is None or retry.failures == 0:
            return p.requeue_after
        return max(p.requeue_after, retry.next_at - time.monotonic())

    async def analyse(
        self, md: ModelDeployment, effective: Any, snap: Snapshot, now: datetime
    ) -> AnalysisStatus | None:
        """One analysis check when one is wanted and due; None otherwise or when it failed."""
        status = md.status
        if (
            self.analyser is None
            or effective.analysis is None
            or status is None
            or status.stable is None
            or status.canary is None
            or not judging(md, effective)
            or not analysis_due(status.analysis, effective.analysis, now)
        ):
            return None
        meta = snap.obj["metadata"]
        target = AnalysisTarget(
            namespace=meta["namespace"],
            name=meta["name"],
            model=md.spec.model.name,
            stable=Arm(status.stable.revision, ready_pod_urls(snap.pods, status.stable.revision)),
            canary=Arm(status.canary.revision, ready_pod_urls(snap.pods, status.canary.revision, serving_only=False)),
            since=parse_time(status.canary.step_started_at),
            phases=len(effective.steps) + 1,
            shadow=shadow_gate(effective, status.canary.step),
        )
        try:
            return await self.analyser.tick(effective.analysis, target, status.analysis, now)
        except Exception:
            log.exception("analysis of %s/%s failed; no verdict this tick", meta["namespace"], meta["name"])
            return None

    async def read_contract(self, md: ModelDeployment, snap: Snapshot, loop: Loop) -> ContractReading | None:
        """The spec's revision's model contract against stable's, while it is not stable, not checked yet,
        and has a Ready pod; None when there is nothing to read. A reading that comes back unknown is
        retried after `contract_delay` (the last one is handed back meanwhile)."""
        status = md.status
        if status is None or status.stable is None:
            return None
        rev = revision_of(md.spec)
        ca = status.canary
        if rev == status.stable.revision or (
            ca is not None and ca.revision == rev and ca.contract is not None and ca.contract.checked
        ):
            loop.contract = None
            return None
        canary_pods = ready_pods(snap.pods, rev, serving_only=False)  # held out of rotation until checked
        if not canary_pods:
            return None
        retry = loop.contract if loop.contract is not None and loop.contract.revision == rev else ContractRetry(rev)
        loop.contract = retry
        if retry.failures and time.monotonic() < retry.next_at:
            last: ContractReading | None = retry.last
            return last
        stable_pods = ready_pods(snap.pods, status.stable.revision)
        if not stable_pods:
            reading = ContractReading(
                rev, unknown=f"no Ready pod of stable revision {status.stable.revision} to compare with"
            )
        else:
            canary_pod, stable_pod = canary_pods[0], stable_pods[0]
            if self._http is None:
                self._http = httpx.AsyncClient()
            reading = await read_contract(
                self._http,
                rev,
                stable=(pod_url(stable_pod), pod_model_name(stable_pod) or md.spec.model.name),
                canary=(pod_url(canary_pod), pod_model_name(canary_pod) or md.spec.model.name),
            )
        if reading.unknown is None:
            loop.contract = None
        else:
            retry.failures += 1
            retry.next_at = time.monotonic() + contract_delay(retry.failures)
            retry.last = reading
        return reading

    async def aclose(self) -> None:
        """Stop every loop and close the HTTP clients."""
        await self.queue.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.analyser is not None:
            await self.analyser.aclose()
        await self.kube.aclose()
