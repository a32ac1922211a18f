"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it (decisions pure).

Every replica of the operator watches and keeps its caches warm; only the holder of the Lease runs
reconcile loops. The holder renews `spec.renewTime` every `RETRY_S`; a standby takes the Lease over
once `renewTime + leaseDurationSeconds` has passed without a renewal, so a leader's loss is taken
over within `LEASE_DURATION_S + RETRY_S` (12 s). A holder that cannot renew for `RENEW_DEADLINE_S`
stops leading (its loops stop) before a standby may take over, so two leaders never act at once as
long as clocks agree within `LEASE_DURATION_S - RENEW_DEADLINE_S`. Writes are compare-and-swap on
`metadata.resourceVersion`: of two standbys taking over at once, one gets a 409 Conflict and waits.
Everything a rollout needs is in status, so a new leader resumes every rollout where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

LEASE_DURATION_S = 10.0
RENEW_DEADLINE_S = 7.0
RETRY_S = 2.0


def micro_time(t: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Observed:
    """The Lease as read (None fields: absent)."""

    holder: str | None
    renew_time: datetime | None
    duration_s: float
    transitions: int
    resource_version: str | None


def observed(lease: dict[str, Any] | None) -> Observed | None:
    """A Lease object from the API as `Observed`; None when it does not exist."""
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    return Observed(
        holder=spec.get("holderIdentity") or None,
        renew_time=parse_micro_time(spec.get("renewTime")),
        duration_s=float(spec.get("leaseDurationSeconds") or LEASE_DURATION_S),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


Action = Literal["create", "renew", "take", "wait"]


@dataclass(frozen=True)
class Decision:
    action: Action
    spec: dict[str, Any] | None = None
    """The Lease spec to write (create, renew, take)."""
    why: str = ""


def decide(lease: Observed | None, me: str, now: datetime, *, leading: bool) -> Decision:
    """What a candidate does with the Lease it just read."""
    stamp = micro_time(now)
    fresh = {"holderIdentity": me, "leaseDurationSeconds": int(LEASE_DURATION_S), "renewTime": stamp}
    if lease is None:
        return Decision("create", {**fresh, "acquireTime": stamp, "leaseTransitions": 0}, "no Lease yet")
    if lease.holder == me:
        return Decision("renew", {**fresh, "leaseTransitions": lease.transitions}, "held by this replica")
    expires = (lease.renew_time or now) + timedelta(seconds=lease.duration_s)
    if lease.holder is None or now >= expires:
        who = lease.holder or "nobody"
        return Decision(
            "take",
            {**fresh, "acquireTime": stamp, "leaseTransitions": lease.transitions + 1},
            f"held by {who}, not renewed since {lease.renew_time}",
        )
    return Decision("wait", None, f"held by {lease.holder} until at least {expires.isoformat()}")


def still_leading(last_renewed: datetime | None, now: datetime) -> bool:
    """A leader whose last successful renewal is older than RENEW_DEADLINE_S stops leading."""
    return last_renewed is not None and (now - last_renewed).total_seconds() < RENEW_DEADLINE_S
