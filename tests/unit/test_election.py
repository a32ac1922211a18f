"""Leader election on a Lease: the decisions (pure, with `now`), and two electors sharing one Lease through
a stand-in for the API server's compare-and-swap (the cluster test runs it on the real one)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.operator import election
from modeldeploy.operator.controller.leader import Elector
from modeldeploy.operator.controller.workqueue import Loop, WorkQueue
from modeldeploy.operator.kube import Conflict

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease(holder: str | None, renewed: datetime, transitions: int = 0) -> election.Observed:
    return election.Observed(holder, renewed, election.LEASE_DURATION_S, transitions, "7")


def test_decisions() -> None:
    assert election.decide(None, "a", T0, leading=False).action == "create"
    assert election.decide(lease("a", T0), "a", T0 + timedelta(seconds=2), leading=True).action == "renew"
    held = election.decide(lease("b", T0), "a", T0 + timedelta(seconds=9), leading=False)
    assert held.action == "wait" and "held by b" in held.why
    take = election.decide(lease("b", T0, 3), "a", T0 + timedelta(seconds=10), leading=False)
    assert take.action == "take" and take.spec is not None and take.spec["leaseTransitions"] == 4
    assert take.spec["holderIdentity"] == "a"
    assert election.decide(lease(None, T0), "a", T0, leading=False).action == "take"


def test_a_leader_that_cannot_renew_stops_before_a_standby_may_take_over() -> None:
    assert election.still_leading(T0, T0 + timedelta(seconds=election.RENEW_DEADLINE_S - 0.1))
    assert not election.still_leading(T0, T0 + timedelta(seconds=election.RENEW_DEADLINE_S))
    assert election.RENEW_DEADLINE_S < election.LEASE_DURATION_S


class LeaseStore:
    """Stand-in for the API server's Lease: resourceVersion compare-and-swap, and a switch to fail writes."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.versions = itertools.count(1)
        self.down: set[str] = set()

    def client(self, who: str) -> Any:
        store = self

        class Client:
            async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
                if who in store.down:
                    raise OSError("connection refused")
                return store.obj

            async def write_lease(
                self, namespace: str, name: str, spec: dict[str, Any], resource_version: str | None
            ) -> dict[str, Any] | None:
                if who in store.down:
                    raise OSError("connection refused")
                current = None if store.obj is None else store.obj["metadata"]["resourceVersion"]
                if current != resource_version:
                    raise Conflict(409, "the object has been modified")
                store.obj = {"metadata": {"resourceVersion": str(next(store.versions))}, "spec": spec}
                return store.obj

        return Client()


async def until(check: Any, what: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # poll


def test_a_standby_takes_over_within_12_s_of_the_leaders_loss() -> None:
    async def main() -> None:
        passes: list[str] = []

        def queue(who: str) -> WorkQueue:
            async def run_pass(namespace: str, name: str, loop: Loop) -> float | None:
                passes.append(who)
                return None

            q = WorkQueue(run_pass, leading=False)
            q.touch(("ml", "fraud"))
            return q

        store = LeaseStore()
        qa, qb = queue("a"), queue("b")
        a = Elector(store.client("a"), qa, "ns", "op", "a")
        b = Elector(store.client("b"), qb, "ns", "op", "b")
        now = T0
        await a.step(now)
        await b.step(now)
        assert qa.leading and not qb.leading and qa.loops and not qb.loops
        await until(lambda: passes == ["a"], "a's loop runs its first pass")
        for _ in range(5):  # a renews, b stands by
            now += timedelta(seconds=election.RETRY_S)
            await a.step(now)
            await b.step(now)
        assert qa.leading and not qb.leading and passes and set(passes) == {"a"}
        lost = now
        store.down.add("a")  # the leader's node is gone
        while not qb.leading:
            now += timedelta(seconds=election.RETRY_S)
            await a.step(now)
            await b.step(now)
        assert (now - lost).total_seconds() <= election.LEASE_DURATION_S + election.RETRY_S
        assert not qa.leading and not qa.loops  # it stopped on its own, before b took over
        await until(lambda: passes[-1] == "b", "b's loop runs its first pass")
        assert qb.known == {("ml", "fraud"): None}
        assert store.obj is not None and store.obj["spec"]["leaseTransitions"] == 1
        await qb.stop()

    asyncio.run(main())
