"""`python -m modeldeploy.operator [--namespace NS ...] [--metrics-port N] [--kubeconfig PATH] [--verbose]`."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from . import controller, metrics, rollout
from .controller import reconcile as _reconcile  # noqa: F401 - its docstring is the --help
from .controller import wiring
from .kube import load_credentials


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m modeldeploy.operator",
        description=__doc__,
        epilog=(controller.reconcile.__doc__ or "") + "\n" + (rollout.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable); all namespaces when none is given",
    )
    ap.add_argument("--metrics-port", type=int, default=8090, help="port of the operator's /metrics (0: off)")
    ap.add_argument("--kubeconfig", default=None, help="kubeconfig; else $KUBECONFIG, in-cluster, ~/.kube/config")
    ap.add_argument("--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    ap.add_argument(
        "--leader-election",
        action="store_true",
        help="reconcile only while holding a coordination.k8s.io/v1 Lease (run two replicas or more)",
    )
    ap.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease ($POD_NAMESPACE, else default)",
    )
    ap.add_argument("--leader-election-id", default="modeldeploy-operator", help="name of the Lease")
    ap.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    creds = load_credentials(args.kubeconfig)
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    logging.getLogger("modeldeploy.operator").info(
        "modeldeploy operator starting: server %s, namespaces %s, metrics on :%s",
        creds.server,
        ", ".join(args.namespace) or "all",
        args.metrics_port or "off",
    )
    lease = None
    if args.leader_election:
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        lease = wiring.LeaseRef(args.leader_election_namespace, args.leader_election_id, identity)
    wiring.run(creds, args.namespace, args.liveness, lease)
    return 0


if __name__ == "__main__":
    sys.exit(main())
