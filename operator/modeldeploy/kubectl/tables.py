"""`kubectl modeldeploy list` and `history`: tables in kubectl's style, and history as JSON (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import render, timefmt


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, three spaces apart, as `kubectl get` prints them; the last column unpadded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)] + [r[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def list_rows(items: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool) -> str:
    """One row per ModelDeployment: what `kubectl get mdep -o wide` shows, and the step's action."""
    header = ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "VERDICT", "READY", "AGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = []
    for obj in items:
        meta = obj.get("metadata") or {}
        st = obj.get("status") or {}
        stable = st.get("stable") or {}
        canary = st.get("canary") or {}
        weight = f"{canary.get('weight', 0)}%/{canary.get('effectiveWeight', 0)}%" if canary else "-"
        row = [
            str(meta.get("name", "?")),
            str(st.get("phase") or "-"),
            str(stable.get("modelVersion") or "-"),
            str(canary.get("modelVersion") or "-"),
            weight,
            render.step_text(canary) if canary else "-",
            str((st.get("analysis") or {}).get("verdict") or "-"),
            str(render.condition(st, "Ready").get("status") or "-"),
            timefmt.age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return table(header, rows)


def history_table(obj: Mapping[str, Any], now: datetime) -> str:
    """Every history entry, oldest first: when, what, which revision, who, why, and the message."""
    entries = (obj.get("status") or {}).get("history") or []
    header = ["AGE", "TIME", "ACTION", "REVISION", "VERSION", "AUTHOR", "REASON", "MESSAGE"]
    rows = [
        [
            timefmt.age(h.get("time"), now),
            str(h.get("time", "")),
            str(h.get("action", "")),
            str(h.get("revision", "")),
            str(h.get("modelVersion") or "-"),
            str(h.get("author", "")),
            str(h.get("reason", "")),
            str(h.get("message", "")),
        ]
        for h in entries
        if isinstance(h, Mapping)
    ]
    return table(header, rows)


def history_json(obj: Mapping[str, Any]) -> str:
    """The history as the operator wrote it: a JSON array, oldest first."""
    entries = (obj.get("status") or {}).get("history") or []
    return json.dumps(entries, indent=2)
