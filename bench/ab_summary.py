#!/usr/bin/env python3
"""Summarise an A/B file of bench/ab_runtime.sh: per cell (model, body, concurrency) the median p50
and throughput of A (before) and B (after) over the rounds, and B's change in percent.

    .venv/bin/python bench/ab_summary.py /tmp/ab-runtime-<ts>.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main(path: str) -> None:
    cells: dict[tuple[str, str, int], dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        cells[(row["model"], row["body"], int(row["conc"]))][row["ab"]].append(row)
    print(
        "| model | body | conc | rounds | p50 µs A | p50 µs B | p50 change | rps A | rps B | rps change |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for (model, body, conc), ab in sorted(cells.items()):
        a, b = ab.get("A", []), ab.get("B", [])
        if not a or not b:
            continue
        p50a = statistics.median(r["p50_us"] for r in a)
        p50b = statistics.median(r["p50_us"] for r in b)
        rpsa = statistics.median(r["rps"] for r in a)
        rpsb = statistics.median(r["rps"] for r in b)
        print(
            f"| {model} | {body} | {conc} | {min(len(a), len(b))} | {p50a:.0f} | {p50b:.0f} | "
            f"{100 * (p50b - p50a) / p50a:+.1f}% | {rpsa:.0f} | {rpsb:.0f} | {100 * (rpsb - rpsa) / rpsa:+.1f}% |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
