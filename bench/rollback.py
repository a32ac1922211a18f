"""Time from the first failing analysis check to zero canary traffic, on the local cluster, under load.

    .venv/bin/python bench/rollback.py [--runs 3] [--failure-limits 1,2] [--out bench/RESULTS-rollback.md]

Each run: a fresh namespace and operator; version 1 (two pods) serves 40 requests/s sent to the
Service's ClusterIP with a new connection per request; version 3 (about 100 times slower per
request) is rolled out with `setWeight: 50` and an analysis at a 5 s interval whose latency SLO it
breaks. Measured:

- first failing check: the `lastRunAt` of the first tick whose verdict is Fail (RFC 3339, whole
  seconds, so it is never later than the check; the measured time can only be too long);
- zero canary traffic: when the last request answered by version 3 finished, as the client saw it;
- also when the status first showed the rollback, and the failed client requests (expected: 0).

Numbers, not pass/fail. The target (issue 6) is at most 10 s at a 5 s interval.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from e2e.cluster import delete_namespace, fresh_namespace, local_cluster  # noqa: E402
from e2e.harness import ModelDeploymentHandle, analysis_spec, apply_crds, build_models  # noqa: E402
from e2e.installed import InstalledOperator  # noqa: E402
from e2e.stories import deploy_stable, roll_out, rolled_back, start_load  # noqa: E402

from modeldeploy.localcluster.handle import ClusterHandle  # noqa: E402

INTERVAL = "5s"


@dataclass(frozen=True)
class Run:
    failure_limit: int
    rollback_s: float
    """first failing check -> last canary answer finished."""
    status_s: float
    """first failing check -> the rollback seen in status."""
    failed_requests: int
    requests: int
    canary_answers: int


def one_run(cluster: ClusterHandle, failure_limit: int, logs: Path, index: int) -> Run:
    namespace = fresh_namespace(cluster)
    models = build_models(cluster, namespace)
    operator = InstalledOperator(cluster, namespace, logs / f"operator-{failure_limit}-{index}.log").start()
    try:
        md = ModelDeploymentHandle(cluster, namespace)
        analysis = {
            **analysis_spec(cluster.prometheus_url, slo={"latencyP99Ms": 5}),
            "interval": INTERVAL,
            "failureLimit": failure_limit,
        }
        deploy_stable(md, models["stable"], analysis)
        load = start_load(md, models["stable"].version)
        try:
            outcome = roll_out(md, load, models["slow"], analysis, until=rolled_back)
        finally:
            stats = load.stop()
    finally:
        operator.stop()
        delete_namespace(cluster, namespace)
    if outcome.decision != "RolledBack" or outcome.rollback_seconds is None or outcome.first_fail_at is None:
        raise RuntimeError(f"run {index}: no rollback measured: {outcome.decision}: {outcome.message}")
    seen = next((o.wall for o in outcome.timeline if o.phase == "RolledBack"), outcome.decided_at)
    return Run(
        failure_limit=failure_limit,
        rollback_s=outcome.rollback_seconds,
        status_s=seen - outcome.first_fail_at,
        failed_requests=len(stats.failed()),
        requests=len(stats.answers),
        canary_answers=stats.versions().get(models["slow"].version, 0),
    )


def report(runs: list[Run], started: float) -> str:
    lines = [
        "# Rollback time",
        "",
        "Time from the first failing analysis check to zero canary traffic, measured by `bench/rollback.py`",
        "on the local cluster (real kube-apiserver, controllers, node agent, kube-proxy stand-in, Prometheus",
        "scraping every 1 s) under 40 requests/s to the model's ClusterIP, one new connection per request.",
        f"Analysis interval {INTERVAL}, window 30s, latency SLO 5 ms broken by a canary ~100x slower per request.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
        f" {time.strftime('%Y-%m-%d', time.gmtime(started))}.",
        "",
        "| failureLimit | runs | first failing check -> zero canary traffic (median, max) |"
        " -> rollback in status (median) | failed client requests |",
        "| --- | --- | --- | --- | --- |",
    ]
    for limit in sorted({r.failure_limit for r in runs}):
        mine = [r for r in runs if r.failure_limit == limit]
        times = [r.rollback_s for r in mine]
        lines.append(
            f"| {limit} | {len(mine)} | {statistics.median(times):.1f} s, {max(times):.1f} s |"
            f" {statistics.median(r.status_s for r in mine):.1f} s | {sum(r.failed_requests for r in mine)}"
            f" of {sum(r.requests for r in mine)} |"
        )
    lines += [
        "",
        "With `failureLimit: 2` (the default) the time includes waiting one interval for the second",
        "failing check; with `failureLimit: 1` it is the reaction alone: status write, pod relabel,",
        "EndpointSlice update, proxy. The first failing check's time is its `lastRunAt`, truncated to the",
        "second, so every number here is an upper bound by up to 1 s.",
        "",
        "Runs:",
        "",
        "| failureLimit | to zero canary traffic | to status | canary answers | failed |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.failure_limit} | {r.rollback_s:.1f} s | {r.status_s:.1f} s | {r.canary_answers} | {r.failed_requests} |"
        for r in runs
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/rollback.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--failure-limits", default="1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-rollback.md")
    args = ap.parse_args(argv)
    limits = [int(x) for x in args.failure_limits.split(",")]
    started = time.time()
    state = Path(tempfile.mkdtemp(prefix="modeldeploy-bench-rollback-", dir="/var/tmp"))
    runs: list[Run] = []
    with local_cluster(state, f"modeldeploy-bench-{os.getpid()}") as cluster:
        apply_crds(cluster)
        for limit in limits:
            for i in range(args.runs):
                run = one_run(cluster, limit, state, i)
                print(
                    f"failureLimit {limit} run {i + 1}: {run.rollback_s:.1f} s to zero canary traffic,"
                    f" {run.status_s:.1f} s to status, {run.failed_requests} failed of {run.requests}",
                    flush=True,
                )
                runs.append(run)
    text = report(runs, started)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
