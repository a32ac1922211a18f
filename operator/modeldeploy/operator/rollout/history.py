"""The audit trail in status: at most `MAX_HISTORY` entries, never dropping the ones the rollout reads (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from ..api.status import MAX_HISTORY, HistoryAction, HistoryEntry

MARKERS: tuple[frozenset[HistoryAction], ...] = (
    frozenset({"Paused", "Resumed"}),
    frozenset({"PromotedFull"}),
    frozenset({"RolledBack", "Aborted"}),
)
"""Entries the planner reads back: whether spec.paused was already recorded (and a pause step resumed),
whether promote-full was asked for the canary, why a revision was rolled back. The newest of each
kind survives trimming however many entries came after it."""


def trim(entries: Sequence[HistoryEntry], limit: int = MAX_HISTORY) -> tuple[HistoryEntry, ...]:
    """The newest `limit` entries, keeping the newest entry of each marker kind."""
    if len(entries) <= limit:
        return tuple(entries)
    keep: set[int] = set()
    for kinds in MARKERS:
        last = next((i for i in range(len(entries) - 1, -1, -1) if entries[i].action in kinds), None)
        if last is not None:
            keep.add(last)
    others = [i for i in range(len(entries)) if i not in keep]
    keep.update(others[len(others) - (limit - len(keep)) :])
    return tuple(entries[i] for i in sorted(keep))


def last_of(entries: Sequence[HistoryEntry], *actions: HistoryAction) -> HistoryEntry | None:
    """The newest entry with one of `actions`."""
    return next((h for h in reversed(entries) if h.action in actions), None)
