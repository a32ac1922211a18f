"""RFC 3339 times as the operator writes them, and ages as kubectl prints them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse(value: object) -> datetime | None:
    """An RFC 3339 timestamp (`2026-01-01T00:00:00Z`, with or without fractions), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """`4s`, `3m12s`, `2h5m`, `3d4h`: kubectl's style, two units at most."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def age(value: object, now: datetime) -> str:
    """How long ago `value` was (`12s`), `?` when it is not a time."""
    t = parse(value)
    if t is None:
        return "?"
    return duration((now - t).total_seconds())


def rfc3339(now: datetime) -> str:
    """`now` in UTC to the second, as the API server writes times."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
