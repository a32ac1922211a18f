"""Replica and weight arithmetic (pure).

Replica-ratio routing (the default): stable keeps its full size until promotion and the canary is
added beside it. For a requested weight w (0 < w < 100) and a full size of N pods, the canary gets
the number of pods c in 1..N whose share c/(N+c) is closest to w; ties go to fewer pods. So the
canary's share is coarse and never above 50% before promotion (1 pod beside 2 is 33%); status
shows the requested weight and the effective one (from Ready pods) side by side. Weight 0 is no
canary pod; the promotion scales the canary to N first.

Gateway API routing: the weight is exact, on an HTTPRoute's backendRefs, and the canary runs at
full size from the start, so every step moves traffic at once (2N pods during a rollout, as in a
blue-green deployment). After the last step the canary keeps the last setWeight's weight until the
promotion gives it 100%.
"""

from __future__ import annotations

from ..api.spec import Step


def replicas_for_weight(weight: int, full: int) -> int:
    """Canary pods for a requested weight beside `full` stable pods (replica ratio)."""
    if weight <= 0 or full <= 0:
        return 0
    if weight >= 100:
        return full
    return min(range(1, full + 1), key=lambda c: (abs(100 * c / (full + c) - weight), c))


def effective_weight(canary_ready: int, stable_ready: int) -> int:
    """The canary's share of Ready pods behind the endpoint, in percent."""
    total = canary_ready + stable_ready
    return 0 if total == 0 else round(100 * canary_ready / total)


def weight_at(steps: tuple[Step, ...], index: int) -> int:
    """The weight requested at step `index`: the last setWeight at or before it; 100 once past the end."""
    if index >= len(steps):
        return 100
    weight = 0
    for s in steps[: index + 1]:
        if s.set_weight is not None:
            weight = s.set_weight
    return weight


def promotion_weight(steps: tuple[Step, ...], gateway: bool) -> int:
    """The weight once every step is done, until the promotion: 100 under replica ratio (the canary
    scales to full size beside stable); under gatewayAPI the last setWeight's (0 when none)."""
    if not gateway:
        return 100
    return weight_at(steps, len(steps) - 1) if steps else 0


def requested_weight(steps: tuple[Step, ...], step: int, gateway: bool) -> int:
    """The weight requested at `step`, or the promotion weight once past the last step."""
    return promotion_weight(steps, gateway) if step >= len(steps) else weight_at(steps, step)


def canary_replicas(weight: int, full: int, *, first: bool, gateway: bool) -> int:
    """Pods the canary runs at `weight`: full size for a first revision or under gatewayAPI."""
    return full if first or gateway else replicas_for_weight(weight, full)
