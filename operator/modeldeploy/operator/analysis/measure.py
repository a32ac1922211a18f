"""Turning a provider's raw counts into the per-arm numbers the status shows. Pure."""

from __future__ import annotations

from ..api.status import ArmMeasurement
from .samples import RawArm
from .stats import histogram_quantile, histogram_total


def total_requests(arm: RawArm) -> float:
    """Requests answered, every status code; the latency histogram's count when no code was seen."""
    by_code = sum(arm.requests_by_code.values())
    return by_code if by_code > 0 else histogram_total(arm.duration_buckets)


def server_errors(arm: RawArm) -> float:
    """Requests answered 5xx (the runtime answers a timeout with 503/504, so timeouts count here)."""
    return sum(v for code, v in arm.requests_by_code.items() if code.startswith("5"))


def client_errors(arm: RawArm) -> float:
    """Requests answered 4xx: the client's fault, counted apart and never as errors."""
    return sum(v for code, v in arm.requests_by_code.items() if code.startswith("4"))


def rejections(arm: RawArm) -> float:
    """Requests rejected as bad input, all reasons."""
    return sum(arm.rejections_by_reason.values())


def latency_ms(q: float, arm: RawArm) -> float | None:
    """The q-quantile of request latency in milliseconds (PromQL's histogram_quantile), None without data."""
    seconds = histogram_quantile(q, arm.duration_buckets)
    return None if seconds is None else seconds * 1000


def _percent(part: float, whole: float) -> float | None:
    return None if whole <= 0 else 100 * part / whole


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def arm_measurement(arm: RawArm) -> ArmMeasurement:
    """The numbers of one arm over the window, rounded for people."""
    n = total_requests(arm)
    return ArmMeasurement(
        requests=round(n, 1),
        errors=round(server_errors(arm), 1),
        client_errors=round(client_errors(arm), 1),
        error_rate_percent=_rounded(_percent(server_errors(arm), n)),
        latency_p50_ms=_rounded(latency_ms(0.5, arm)),
        latency_p99_ms=_rounded(latency_ms(0.99, arm)),
        input_rejection_percent=_rounded(_percent(rejections(arm), n)),
    )
