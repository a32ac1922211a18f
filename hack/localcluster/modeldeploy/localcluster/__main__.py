"""`python -m modeldeploy.localcluster up|down|status` (what `make cluster-up/down` run)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .cluster import ClusterError, LocalCluster
from .paths import DEFAULT_NETNS, DEFAULT_STATE_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modeldeploy.localcluster", description="The local Kubernetes cluster")
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    ap.add_argument("--netns", default=DEFAULT_NETNS)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state_file = args.state_dir / "state.json"

    if args.command == "up":
        if state_file.exists():
            old = LocalCluster.load(args.state_dir)
            if any(old.status().values()):
                print(f"already up (state in {args.state_dir}); `make cluster-down` first", file=sys.stderr)
                return 1
            old.stop()
        cluster = LocalCluster(args.state_dir, args.netns, daemon=True)
        try:
            cluster.start(timeout=args.timeout)
        except ClusterError as e:
            print(f"cluster did not start: {e}", file=sys.stderr)
            return 1
        print(f"local cluster up in {cluster.start_seconds:.1f}s, network namespace {cluster.netns}")
        print(f"  kubeconfig   {cluster.kubeconfig}")
        print(f"  API server   {cluster.server}")
        print(f"  Prometheus   {cluster.prometheus_url}")
        print(f"  logs         {cluster.log_dir} (containers: {cluster.pod_log_dir}, or `kubectl logs`)")
        print("  use it       bin/in-cluster kubectl get pods -A   |   make cluster-shell")
        return 0

    if not state_file.exists():
        print(f"no cluster state in {args.state_dir}", file=sys.stderr)
        return 0 if args.command == "down" else 1
    cluster = LocalCluster.load(args.state_dir)
    if args.command == "down":
        killed = cluster.stop()
        print("local cluster stopped" + (f" (had to SIGKILL: {', '.join(killed)})" if killed else ""))
        return 0
    state = json.loads(state_file.read_text())
    print(json.dumps({**state, "alive": cluster.status()}, indent=2))
    return 0 if all(cluster.status().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
