"""`kubectl modeldeploy status NAME`: a ModelDeployment as a tree a person can decide from (pure).

`status_tree(obj, now, style)` is a function of the object as the API server returns it (wire
names, camelCase) and of `now`; nothing here reads a clock or the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import timefmt
from .style import PLAIN, Style

#: history entries `status` shows (the `history` command shows them all)
HISTORY_SHOWN = 5

CONDITION_ORDER = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Available",
    "Progressing",
    "Degraded",
    "Paused",
    "AwaitingApproval",
)


def _m(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    v = (obj or {}).get(key)
    return v if isinstance(v, Mapping) else {}


def _l(obj: Mapping[str, Any] | None, key: str) -> Sequence[Mapping[str, Any]]:
    v = (obj or {}).get(key)
    return [x for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []


def num(v: object, unit: str = "") -> str:
    """A measured number: `12`, `0.25`, `1.5e-05`; `-` when absent."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "-"
    if isinstance(v, int) or (float(v).is_integer() and abs(v) < 1e15):
        return f"{int(v)}{unit}"
    return f"{v:.4g}{unit}"


def padded(style: Style, word: str, width: int) -> str:
    """`word` in its colour, padded to `width` visible characters."""
    return style.word(word) + " " * max(0, width - len(word))


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    return next((c for c in _l(status, "conditions") if c.get("type") == ctype), {})


def step_text(canary: Mapping[str, Any]) -> str:
    """`step 2/4 (approval)`; `all 4 steps done` once the canary waits for promotion."""
    count = canary.get("stepCount") or 0
    step = canary.get("step") or 0
    if not count:
        return "no steps"
    if step >= count:
        return f"all {count} steps done"
    action = canary.get("stepAction") or "?"
    return f"step {step + 1}/{count} ({action})"


def headline(obj: Mapping[str, Any], style: Style = PLAIN) -> list[str]:
    meta = _m(obj, "metadata")
    spec = _m(obj, "spec")
    status = _m(obj, "status")
    phase = str(status.get("phase") or "Unknown")
    gen = meta.get("generation")
    observed = status.get("observedGeneration")
    lines = [
        f"Name:       {meta.get('namespace', '')}/{meta.get('name', '')}",
        f"Model:      {_m(spec, 'model').get('name', '?')}"
        f" (tier {spec.get('tier', 3)}, owner {spec.get('owner', '?')})",
        f"Phase:      {style.word(phase)}",
    ]
    if not status:
        lines.append("            the operator has not written a status yet")
    elif observed != gen:
        lines.append(f"            generation {gen} not observed yet (status describes {observed})")
    if spec.get("paused"):
        lines.append("Paused:     spec.paused is true (resume: kubectl modeldeploy resume)")
    if status.get("endpoint"):
        lines.append(f"Endpoint:   {status['endpoint']}")
    return lines


def revisions(status: Mapping[str, Any], now: datetime, style: Style = PLAIN) -> list[str]:
    stable = _m(status, "stable")
    canary = _m(status, "canary")
    rows: list[tuple[str, list[str]]] = []
    if stable:
        rows.append(
            (
                f"stable  version {stable.get('modelVersion', '?')}  revision {stable.get('revision', '?')}",
                [
                    f"replicas {num(stable.get('readyReplicas'))}/{num(stable.get('replicas'))} ready",
                    f"weight {num(stable.get('weight'), '%')}",
                    f"promoted {timefmt.age(stable.get('promotedAt'), now)} ago",
                ],
            )
        )
    if canary:
        weight = (
            f"weight {num(canary.get('weight'), '%')} requested, {num(canary.get('effectiveWeight'), '%')} effective"
        )
        if canary.get("weight") != canary.get("effectiveWeight"):
            weight += " (differs)"
        details = [
            f"replicas {num(canary.get('readyReplicas'))}/{num(canary.get('replicas'))} ready",
            weight,
            f"{step_text(canary)}, started {timefmt.age(canary.get('stepStartedAt'), now)} ago",
            f"rollout started {timefmt.age(canary.get('startedAt'), now)} ago,"
            f" last progress {timefmt.age(canary.get('lastProgressAt'), now)} ago",
        ]
        contract = _m(canary, "contract")
        if contract:
            if not contract.get("checked"):
                details.append("contract not checked yet (no traffic until it is)")
            elif contract.get("compatible"):
                details.append("contract compatible with stable")
            else:
                diffs = "; ".join(str(d) for d in contract.get("differences") or [])
                allowed = " (allowed: rollout.allowContractChange)" if contract.get("allowed") else ""
                details.append(style.paint(f"contract INCOMPATIBLE{allowed}: {diffs}", "bad"))
        rows.append(
            (f"canary  version {canary.get('modelVersion', '?')}  revision {canary.get('revision', '?')}", details)
        )
    for r in _l(status, "retiring"):
        rows.append(
            (
                f"retiring  version {r.get('modelVersion', '?')}  revision {r.get('revision', '?')}",
                [f"scaled to zero at {r.get('scaleDownAt', '?')}"],
            )
        )
    rb = _m(status, "rolledBackRevision")
    if rb:
        rows.append(
            (
                f"{style.word('RolledBack')}  version {rb.get('modelVersion', '?')}"
                f"  revision {rb.get('revision', '?')}",
                ["not retried until the spec changes or: kubectl modeldeploy retry"],
            )
        )
    if not rows:
        return ["Revisions:  none yet"]
    out = ["Revisions:"]
    for i, (head, details) in enumerate(rows):
        last = i == len(rows) - 1
        out.append(("└── " if last else "├── ") + head)
        pad = "    " if last else "│   "
        out.extend(pad + ("└── " if j == len(details) - 1 else "├── ") + d for j, d in enumerate(details))
    return out


def _arm(name: str, arm: Mapping[str, Any]) -> str:
    return (
        f"{name:<7} requests {num(arm.get('requests'))}, errors {num(arm.get('errors'))}"
        f" ({num(arm.get('errorRatePercent'), '%')}), 4xx {num(arm.get('clientErrors'))},"
        f" p50 {num(arm.get('latencyP50Ms'), 'ms')}, p99 {num(arm.get('latencyP99Ms'), 'ms')},"
        f" rejected {num(arm.get('inputRejectionPercent'), '%')}"
    )


def analysis(status: Mapping[str, Any], now: datetime, style: Style = PLAIN) -> list[str]:
    a = _m(status, "analysis")
    if not a:
        return ["Analysis:   no check has run yet"]
    verdict = str(a.get("verdict") or "none")
    out = [
        f"Analysis:   last verdict {style.word(verdict)}, {timefmt.age(a.get('lastRunAt'), now)} ago,"
        f" over {a.get('window') or '?'}; {num(a.get('consecutiveFailures'))} failed and"
        f" {num(a.get('consecutiveInconclusive'))} inconclusive in a row, {num(a.get('passes'))} passed this step",
    ]
    arms = _m(a, "arms")
    for name in ("stable", "canary"):
        if name in arms:
            out.append("├── " + _arm(name, _m(arms, name)))
    checks = _l(a, "checks")
    for i, c in enumerate(checks):
        last = i == len(checks) - 1 and not a.get("message")
        limit = (
            f" (limit {c.get('comparator', '<=')} {num(c.get('threshold'))})" if c.get("threshold") is not None else ""
        )
        line = f"{padded(style, str(c.get('verdict', '?')), 12)} {c.get('metric', '?')} {num(c.get('value'))}{limit}"
        out.append(("└── " if last else "├── ") + line.rstrip())
        if c.get("message"):
            out.append(("    " if last else "│   ") + "    " + str(c["message"]))
    if a.get("message"):
        out.append("└── " + str(a["message"]))
    return out


def conditions(status: Mapping[str, Any], style: Style = PLAIN) -> list[str]:
    conds = sorted(
        _l(status, "conditions"),
        key=lambda c: CONDITION_ORDER.index(c.get("type")) if c.get("type") in CONDITION_ORDER else 99,
    )
    if not conds:
        return []
    out = ["Conditions:"]
    for c in conds:
        msg = str(c.get("message") or "")
        out.append(f"  {c.get('type', '?'):<17}{padded(style, str(c.get('status', '?')), 6)} {c.get('reason', '')}")
        if msg and (c.get("status") == "True" or c.get("type") == "Ready"):
            out.append(f"      {msg}")
    return out


def history_line(h: Mapping[str, Any], now: datetime, style: Style = PLAIN) -> str:
    version = f" v{h['modelVersion']}" if h.get("modelVersion") else ""
    return (
        f"{timefmt.age(h.get('time'), now) + ' ago':<10} {style.word(str(h.get('action', '?')))}"
        f" {h.get('revision', '?')}{version} by {h.get('author', '?')}: {h.get('message', '')}"
    )


def history(status: Mapping[str, Any], now: datetime, style: Style = PLAIN, shown: int = HISTORY_SHOWN) -> list[str]:
    entries = _l(status, "history")
    if not entries:
        return []
    out = [f"History (last {min(shown, len(entries))} of {len(entries)}, newest last):"]
    out.extend("  " + history_line(h, now, style) for h in entries[-shown:])
    return out


def next_action(obj: Mapping[str, Any]) -> list[str]:
    """What a person can do now, as plugin commands."""
    name = _m(obj, "metadata").get("name", "NAME")
    status = _m(obj, "status")
    if condition(status, "AwaitingApproval").get("status") == "True":
        return [f"Next:       kubectl modeldeploy approve {name}   (or abort {name})"]
    paused = condition(status, "Paused")
    if paused.get("status") == "True" and paused.get("reason") in ("PauseStep", "PausedBySpec"):
        return [f"Next:       kubectl modeldeploy resume {name}   (or promote --full, abort)"]
    if _m(status, "rolledBackRevision") and not _m(status, "canary"):
        return [f"Next:       kubectl modeldeploy retry {name}   (after fixing the cause), or change spec.model"]
    return []


def status_tree(obj: Mapping[str, Any], now: datetime, style: Style = PLAIN) -> str:
    """The whole `status` text, lines joined by newlines, no trailing newline."""
    status = _m(obj, "status")
    sections = [
        headline(obj, style),
        revisions(status, now, style),
        analysis(status, now, style) if _m(status, "canary") or _m(status, "analysis") else [],
        conditions(status, style),
        history(status, now, style),
        next_action(obj),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s)
