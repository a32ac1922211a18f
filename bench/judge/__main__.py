"""The judge's error rates, measured: `python -m bench.judge [--aa N] [--changed N] [--write]`.

Prints, per configuration and canary traffic (5, 20, 100 requests/s), A/A canaries rolled back and
paused (with 95% Clopper-Pearson intervals), and for each change the share rolled back and the median
time from the change to the rollback. `--write` also writes bench/RESULTS-judge.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from scipy.stats import beta

from .configs import ROOT, changes, configs, judged
from .simulate import Config, Outcome, run_canary
from .traffic import INTERVAL_S, Change

RATES = (5.0, 20.0, 100.0)
SPIKE_INTERVALS = 3


def interval95(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of k successes in n."""
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Job:
    config: Config
    change: Change
    rate: float
    seeds: range


def _run(job: Job) -> list[Outcome]:
    return [run_canary(job.config, job.change, job.rate, seed) for seed in job.seeds]


def pct(k: int, n: int) -> str:
    lo, hi = interval95(k, n)
    return f"{100 * k / n:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--aa", type=int, default=1000, help="A/A canaries per configuration and traffic")
    parser.add_argument("--changed", type=int, default=300, help="canaries per change, configuration and traffic")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS-judge.md")
    args = parser.parse_args()
    t0 = time.monotonic()
    jobs: list[Job] = []
    chunk = 50
    for config in configs():
        for rate in RATES:
            for i in range(0, args.aa, chunk):
                jobs.append(Job(config, Change("A/A"), rate, range(i, min(i + chunk, args.aa))))
            for change in changes(config.ticks):
                if judged(config, change):
                    for i in range(0, args.changed, chunk):
                        seeds = range(10**6 + i, 10**6 + min(i + chunk, args.changed))
                        jobs.append(Job(config, change, rate, seeds))
    results: dict[tuple[str, str, float], list[Outcome]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for job, outcomes in zip(jobs, pool.map(_run, jobs), strict=True):
            results.setdefault((job.config.name, job.change.name, job.rate), []).extend(outcomes)
    lines = [
        "# The judge's error rates, simulated",
        "",
        f"`python -m bench.judge --aa {args.aa} --changed {args.changed}{' --write' if args.write else ''}` "
        f"({time.monotonic() - t0:.0f} s on {args.workers} workers). Canary traffic R requests/s, stable 3-9x R; "
        f"interval {INTERVAL_S:.0f} s. Rates with 95% Clopper-Pearson intervals. The traffic model is in "
        "`bench/judge/traffic.py`; each canary goes through `judge()`, `count()` and the planner's "
        "`should_roll_back` / `should_hold_inconclusive` tick by tick.",
        "",
    ]
    for config in configs():
        lines += [
            f"## {config.name}",
            "",
            f"Spans (ticks per held step): {list(config.spans)}, phases {config.phases}, confidence "
            f"{config.analysis.confidence}, failureLimit {config.analysis.failure_limit}.",
            "",
            "| canaries | " + " | ".join(f"R = {r:.0f}/s" for r in RATES) + " |",
            "|---|" + "---|" * len(RATES),
        ]
        aa = [results[(config.name, "A/A", r)] for r in RATES]
        lines.append(
            f"| A/A rolled back (n={args.aa}) | "
            + " | ".join(pct(sum(o.rolled_back_at is not None for o in out), len(out)) for out in aa)
            + " |"
        )
        lines.append(
            "| A/A paused as inconclusive | "
            + " | ".join(pct(sum(o.paused_at is not None for o in out), len(out)) for out in aa)
            + " |"
        )
        for change in changes(config.ticks):
            if not judged(config, change):
                continue
            cells = []
            for r in RATES:
                out = results[(config.name, change.name, r)]
                caught = [o.rolled_back_at - change.start for o in out if o.rolled_back_at is not None]
                if change.start:
                    quick = sum(1 for t in caught if t <= SPIKE_INTERVALS)
                    within = f"{pct(quick, len(out))} within {SPIKE_INTERVALS} intervals"
                    cell = f"{within}, {pct(len(caught), len(out))} in all"
                else:
                    cell = pct(len(caught), len(out))
                if caught:
                    cell += f"; median {statistics.median(caught) * INTERVAL_S:.0f} s"
                cells.append(cell)
            lines.append(f"| {change.name} caught (n={args.changed}) | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write:
        (ROOT / "bench" / "RESULTS-judge.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
