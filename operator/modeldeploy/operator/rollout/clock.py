"""Time as the rollout writes and reads it: RFC 3339 in status, seconds in messages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(t: datetime) -> str:
    """`2026-01-01T12:00:00Z`: the form status times are written in."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """A status time back to a datetime (UTC when it names no zone); None when unset or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds(value: float) -> str:
    """A duration for a message: `30s`, `0.5s`."""
    return f"{value:g}s"


def since(text: str | None, now: datetime) -> float | None:
    """Seconds from a status time to `now`; None when the time is unset or unreadable."""
    t = parse_time(text)
    return None if t is None else (now - t).total_seconds()
