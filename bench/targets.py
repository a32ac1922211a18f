#!/usr/bin/env python3
"""The targets of issue 4, as ratios within one run, from a run directory of bench/run.sh.

    python3 bench/targets.py /tmp/bench-results/<ts>      # prints a Markdown table

Reads results.jsonl (../shared/bench/run_matrix.py) and compare.txt (bench/compare.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load(run: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    matrix = [json.loads(ln) for ln in (run / "results.jsonl").read_text().splitlines() if ln.strip()]
    compare: list[dict[str, Any]] = []
    cfile = run / "compare.txt"
    if cfile.exists():
        compare = [json.loads(ln) for ln in cfile.read_text().splitlines() if ln.startswith("{")]
    return matrix, compare


def cell(rows: list[dict[str, Any]], server: str, model: str, conc: int) -> dict[str, Any] | None:
    for r in rows:
        if (
            r.get("server") == server
            and r.get("model") == model
            and r.get("concurrency") == conc
            and r.get("mode") == "wrk-pinned"
        ):
            return r
    return None


def main() -> None:
    run = Path(sys.argv[1])
    matrix, compare = load(run)

    def p50(server: str, model: str, conc: int = 1) -> float | None:
        r = cell(matrix, server, model, conc)
        return None if r is None else float(r["p50_us"])

    def rps(server: str, model: str, conc: int) -> float | None:
        r = cell(matrix, server, model, conc)
        return None if r is None else float(r["rps"])

    def cmp(server: str, model: str, body: str, conc: int, key: str) -> float | None:
        for r in compare:
            if (r["server"], r["model"], r["body"], r["conc"]) == (server, model, body, conc):
                return float(r[key])
        return None

    hwm = next(
        (
            r["mem_after"]["main_hwm_kib"] / 1024
            for r in matrix
            if r.get("kind") == "server" and r["server"] == "project" and r["model"] == "tiny"
        ),
        None,
    )
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(name: str, target: str, value: float | None, ok: bool | None, fmt: str) -> None:
        rows.append((name, target, "n/a" if value is None else fmt.format(value), ok))

    pt, bt = p50("project", "tiny"), p50("baseline", "tiny")
    ratio = pt / bt if pt and bt else None
    add(
        "tiny, c=1, JSON: p50 project / baseline",
        "<= 1.25x",
        ratio,
        None if ratio is None else ratio <= 1.25,
        "{:.2f}x",
    )
    peers = [p for p in (p50("kserve-tuned", "tiny"), p50("mlserver-tuned", "tiny")) if p]
    faster_peer = min(peers) if peers else None
    speedup = faster_peer / pt if faster_peer and pt else None
    add(
        "tiny, c=1, JSON: faster tuned peer p50 / project p50",
        ">= 3x",
        speedup,
        None if speedup is None else speedup >= 3,
        "{:.2f}x",
    )
    r32 = rps("project", "tiny", 32)
    add(
        "tiny, c=32: requests per second (server on one core)",
        ">= 8,000",
        r32,
        None if r32 is None else r32 >= 8000,
        "{:,.0f}",
    )
    pc = p50("project", "conv")
    add("conv, c=1, JSON: p50", "<= 1,200 us", pc, None if pc is None else pc <= 1200, "{:,.0f} us")
    pcb = cmp("project", "conv", "binary", 1, "p50_us")
    add(
        "conv, c=1, binary tensors: p50 (compare.py)",
        "<= 500 us",
        pcb,
        None if pcb is None else pcb <= 500,
        "{:,.0f} us",
    )
    pm, bm = rps("project", "medium", 32), rps("baseline", "medium", 32)
    mr = pm / bm if pm and bm else None
    add("medium, c=32, batching: rps project / baseline", ">= 1.5x", mr, None if mr is None else mr >= 1.5, "{:.2f}x")
    add("tiny: resident memory high-water mark", "<= 100 MiB", hwm, None if hwm is None else hwm <= 100, "{:.0f} MiB")

    print("| target | wanted | measured | met |")
    print("|---|---|---|---|")
    for name, target, value, ok in rows:
        print(f"| {name} | {target} | {value} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")

    print()
    print(
        "| model | conc | project | baseline | kserve-tuned | mlserver-tuned | project vs baseline | "
        "project vs faster tuned peer |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model in ("tiny", "medium", "conv"):
        for conc in (1, 8, 32):
            vals = {s: cell(matrix, s, model, conc) for s in ("project", "baseline", "kserve-tuned", "mlserver-tuned")}
            if vals["project"] is None:
                continue
            key = "p50_us" if conc == 1 else "rps"
            unit = "p50 us" if conc == 1 else "rps"

            def fmt(r: dict[str, Any] | None, key: str = key) -> str:
                return "-" if r is None else f"{r[key]:,.0f}"

            pv = vals["project"][key] if vals["project"] else None
            bv = vals["baseline"][key] if vals["baseline"] else None
            peer_vals = [v[key] for s, v in vals.items() if s.endswith("-tuned") and v]
            if conc == 1:
                vs_base = f"{pv / bv:.2f}x latency" if pv and bv else "-"
                best_peer = min(peer_vals) if peer_vals else None
                vs_peer = f"{best_peer / pv:.1f}x faster" if best_peer and pv else "-"
            else:
                vs_base = f"{pv / bv:.2f}x throughput" if pv and bv else "-"
                best_peer = max(peer_vals) if peer_vals else None
                vs_peer = f"{pv / best_peer:.1f}x throughput" if best_peer and pv else "-"
            print(
                f"| {model} | {conc} ({unit}) | {fmt(vals['project'])} | {fmt(vals['baseline'])} | "
                f"{fmt(vals['kserve-tuned'])} | {fmt(vals['mlserver-tuned'])} | {vs_base} | {vs_peer} |"
            )


if __name__ == "__main__":
    main()
