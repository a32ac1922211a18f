"""The leader elector of one replica: reads the Lease, decides (`election.decide`), writes, and turns the
work queue's loops on when it leads and off when it stops leading (`election` has the rules)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from .. import election, metrics
from ..kube import Conflict, KubeError
from .workqueue import WorkQueue

log = logging.getLogger("modeldeploy.operator.leader")


class LeaseClient(Protocol):
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def write_lease(
        self, namespace: str, name: str, spec: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None: ...


class Elector:
    """Campaigns for the Lease `namespace/name` as `identity`, every `election.RETRY_S`."""

    def __init__(self, kube: LeaseClient, queue: WorkQueue, namespace: str, name: str, identity: str) -> None:
        self.kube, self.queue = kube, queue
        self.namespace, self.name, self.identity = namespace, name, identity
        self.last_renewed: datetime | None = None

    async def step(self, now: datetime) -> None:
        """One round: read, decide, write; lead or follow accordingly."""
        try:
            lease = election.observed(await self.kube.get_lease(self.namespace, self.name))
            decision = election.decide(lease, self.identity, now, leading=self.queue.leading)
            if decision.action != "wait":
                assert decision.spec is not None
                version = lease.resource_version if lease is not None else None
                await self.kube.write_lease(self.namespace, self.name, decision.spec, version)
                self.last_renewed = now
                if not self.queue.leading:
                    log.info("%s leads (Lease %s/%s: %s)", self.identity, self.namespace, self.name, decision.why)
                    metrics.LEADER.set(1)
                    self.queue.lead()
                return
            if self.queue.leading:
                log.warning("%s no longer leads: %s", self.identity, decision.why)
                await self._follow()
        except Conflict:
            log.info("%s lost a race for Lease %s/%s", self.identity, self.namespace, self.name)
        except (KubeError, OSError) as err:
            log.warning("Lease %s/%s could not be read or written: %s", self.namespace, self.name, err)
        if self.queue.leading and not election.still_leading(self.last_renewed, now):
            log.warning("%s could not renew for %gs: it stops leading", self.identity, election.RENEW_DEADLINE_S)
            await self._follow()

    async def _follow(self) -> None:
        metrics.LEADER.set(0)
        self.last_renewed = None
        await self.queue.follow()

    async def run(self) -> None:
        """Campaign until cancelled."""
        while True:
            await self.step(datetime.now(UTC))
            await asyncio.sleep(election.RETRY_S)
