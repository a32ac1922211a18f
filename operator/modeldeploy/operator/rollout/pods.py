"""The canary's pods at a weight, and what status says of them (pure)."""

from __future__ import annotations

import math
from typing import Any

from .shadow import shadowing
from .state import Rollout, Tick
from .weights import canary_replicas, effective_weight


def own_autoscaler(tick: Tick, r: Rollout) -> bool:
    """The canary has its own HorizontalPodAutoscaler: under autoscaling with gatewayAPI routing, where
    it runs at full size beside stable. (Under replica ratio its size is the step's share of stable's
    autoscaled size, so an autoscaler of its own would fight the ratio.)"""
    return tick.spec.serving.autoscaling is not None and tick.gateway and r.stable is not None


def target_replicas(tick: Tick, r: Rollout, weight: int) -> int:
    """Pods the canary should run at `weight` (under its own autoscaler: what the autoscaler chose)."""
    assert r.canary is not None
    scaling = tick.spec.serving.autoscaling
    if own_autoscaler(tick, r) and scaling is not None:
        seen = tick.observed.deployments.get(r.canary.revision)
        return seen.replicas if seen is not None and seen.replicas > 0 else scaling.min_replicas
    full = r.full_size(tick)
    step = shadowing(tick, r)
    if step is not None and not tick.gateway:
        # sized for the mirrored share of stable's load, at least one pod
        return max(1, math.ceil(step.percent * full / 100))
    return canary_replicas(weight, full, first=r.stable is None, gateway=tick.gateway)


def size_canary(tick: Tick, r: Rollout, weight: int) -> tuple[Rollout, bool]:
    """Ask for the canary's pods at `weight`; True when that many are Ready (and no more run)."""
    ca = r.canary
    assert ca is not None
    first = r.stable is None
    want = target_replicas(tick, r, weight)
    seen = tick.observed.deployments.get(ca.revision)
    ready = 0 if seen is None else seen.ready_replicas
    if r.stable is None:
        effective = 100
    elif shadowing(tick, r) is not None:
        effective = 0  # it answers mirrored copies only
    elif tick.gateway:
        effective = weight if ready >= want else 0
    else:
        effective = effective_weight(min(ready, want), tick.ready(r.stable.revision))
    steps = tick.rollout.steps
    update: dict[str, Any] = {
        "weight": 100 if first else weight,
        "replicas": want,
        "ready_replicas": ready,
        "effective_weight": effective,
        "step_action": steps[ca.step].action if not first and ca.step < ca.step_count else None,
    }
    if ready > ca.ready_replicas:
        update["last_progress_at"] = tick.now_s
    at_size = (
        seen is not None
        and seen.replicas == want
        and seen.up_to_date
        and ready >= want
        and (want > 0 or seen.ready_replicas == 0)
    )
    return r.with_canary(**update), at_size


def checked_in(tick: Tick, r: Rollout) -> Rollout:
    """A check that ran this tick is progress (for progressDeadline while the rollout waits on analysis)."""
    if tick.verdict is None or r.canary is None:
        return r
    return r.with_canary(last_progress_at=tick.now_s)
