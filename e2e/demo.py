"""`make demo`: the whole loop on the local cluster, narrated; it ends by itself.

It brings up the local cluster (or reuses one from `make cluster-up`), installs the CRDs, starts
the operator, deploys a classifier, sends steady load to its Service, rolls out a good new version
(judged against stable and promoted), then a bad one (rolled back by the analysis), printing the
status as it changes and a summary with the numbers at the end. Watch it from another terminal:

    bin/in-cluster kubectl get mdep -n demo -w

Options: `--bad shifted|slow|erroring` picks the bad version (default: shifted, a different
predicted class mix that only a model-aware check catches). With a cluster from `make cluster-up`
the demo reuses it and leaves it (and the ModelDeployment) running; otherwise it stops the cluster
it started.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from .cluster import fresh_namespace, local_cluster
from .harness import ModelDeploymentHandle, ModelFile, Observation, apply_crds, build_models
from .installed import InstalledOperator
from .stories import Outcome, deploy_stable, promoted_to, roll_out, rolled_back, start_load

NAMESPACE = "demo"
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"duration": "15s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "15s"}},
]
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


def show(obs: Observation) -> None:
    say("  " + obs.line())


def analysis(prometheus_url: str) -> dict[str, Any]:
    return {
        "interval": "5s",
        "window": "30s",
        "minRequests": 50,
        "failureLimit": 2,
        "inconclusiveLimit": 60,
        "slo": {"latencyP99Ms": 25, "errorRatePercent": 1},
        "confidence": 0.99,
        "compareToStable": {"maxErrorRateDelta": 1, "maxLatencyRatio": 3},
        "behaviour": {"maxClassMixDistance": 0.1},
        "provider": {"prometheus": {"address": prometheus_url, "timeout": "2s"}},
    }


def summary_row(what: str, model: ModelFile, outcome: Outcome) -> str:
    started = outcome.timeline[0].wall if outcome.timeline else outcome.decided_at
    seconds = outcome.decided_at - started
    versions = outcome.load.versions()
    checks = len(outcome.checks)
    rollback = f"{outcome.rollback_seconds:.1f} s" if outcome.rollback_seconds is not None else "-"
    return (
        f"| {what} | v{model.version} | {outcome.decision} | {seconds:.0f} s | {checks} | "
        f"{versions.get(model.version, 0)} | {rollback} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bad", choices=("shifted", "slow", "erroring"), default="shifted")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    say(
        "bringing up the local cluster (etcd, kube-apiserver, controllers, scheduler,"
        " kubelet, containerd, kube-proxy, CoreDNS, Prometheus)"
    )
    with local_cluster() as cluster:
        say(f"cluster ready; API {cluster.server}, Prometheus {cluster.prometheus_url}")
        apply_crds(cluster)
        say("CRDs installed")
        namespace = fresh_namespace(cluster, NAMESPACE)
        log_path = cluster.state_dir / "logs" / "demo-operator.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        operator = InstalledOperator(cluster, namespace, log_path).start()
        say(f"operator installed by helm from its image, running as a pod (log {log_path})")
        say(f"watch it from another terminal:  bin/in-cluster kubectl get mdep -n {namespace} -w")
        models = build_models(cluster, namespace)
        md = ModelDeploymentHandle(cluster, namespace, "classifier")
        spec = analysis(cluster.prometheus_url)
        load = None
        try:
            say(f"deploying version {models['stable'].version}: {models['stable'].what}")
            deploy_stable(md, models["stable"], spec)
            say(f"version {models['stable'].version} is Ready and serves at {md.endpoint()}")
            load = start_load(md, models["stable"].version)
            say(f"steady load: {load.stats.summary()} so far, 40 requests/s, a new connection each")

            outcomes: list[tuple[str, ModelFile, Outcome]] = []
            good = models["good"]
            say(f"rolling out version {good.version}: {good.what}")
            outcome = roll_out(md, load, good, spec, steps=STEPS, until=promoted_to(good.version), on_change=show)
            outcomes.append(("good", good, outcome))
            say(f"decision: {outcome.decision}. Last check: {outcome.status['analysis']['message']}")

            bad = models[args.bad]
            say(f"rolling out version {bad.version}: {bad.what}")
            outcome = roll_out(md, load, bad, spec, steps=STEPS, until=rolled_back, on_change=show)
            outcomes.append(("bad", bad, outcome))
            say(f"decision: {outcome.decision}. {outcome.message}")
        finally:
            stats = load.stop() if load is not None else None
            operator.stop()

        print()
        print("## Summary")
        print()
        print("| rollout | version | decision | time to decision | checks | requests it answered | rollback |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for what, model, outcome in outcomes:
            print(summary_row(what, model, outcome))
        print()
        if stats is not None:
            failed = stats.failed()
            print(f"Load: {stats.summary()}.")
            if failed:
                codes = sorted({a.code for a in failed})
                print(f"Failed client requests: {len(failed)} (HTTP {codes}), all while the bad canary served.")
            else:
                print("Failed client requests: 0.")
        bad_outcome = outcomes[-1][2]
        if bad_outcome.rollback_seconds is not None:
            print(
                f"Rollback: {bad_outcome.rollback_seconds:.1f} s from the first failing check to the last request "
                "the bad version answered."
            )
        print(f"Why: {bad_outcome.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
