"""The node: containerd (with runc) and the kubelet in a private mount namespace, and kube-proxy.

All of it runs inside the cluster's network namespace (entered with setns/nsenter, never
`ip netns exec`, which remounts /sys and hides the cgroup mounts). containerd and the kubelet
share one extra mount namespace (`unshare -m --propagation slave`): it holds the three sysctl
values the kubelet insists on (shown through bind mounts, so the host's stay as they are), the
volume and overlay mounts of the pods, and the pods' network namespace files. Host mounts
propagate in; nothing propagates out.

Pods get addresses from the CNI bridge plugin (`cni0`, NODE_POD_CIDR, host-local IPAM with its
state in this cluster's directory); kube-proxy programs the Services in nftables mode. Images are
imported into containerd from archives (`ctr images import`); nothing is ever pulled.

The kubelet uses the cgroupfs driver on the root `kubepods` cgroup, so one node runs on a
machine at a time: `NodeLock` says which cluster holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .paths import (
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    NODE_POD_CIDR,
    POD_CIDR,
    node_bin_dir,
    pause_image,
)

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
KUBEPODS: Final = "kubepods"
LOCK_FILE: Final = Path("/run/modeldeploy/node.lock")
#: the kubelet refuses to start unless it reads these (it would otherwise write them host-wide)
KUBELET_SYSCTLS: Final = {
    "vm/overcommit_memory": "1",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeFiles:
    """Where the node's configuration and state live for one cluster."""

    state_dir: Path
    netns: str

    @property
    def dir(self) -> Path:
        return self.state_dir / "node"

    @property
    def run_dir(self) -> Path:
        # sockets: short paths (108-byte limit), under /run (a tmpfs the private mount namespace shares)
        return Path("/run/modeldeploy") / self.netns

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.dir / "containerd.toml"

    @property
    def kubelet_config(self) -> Path:
        return self.dir / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.dir / "kube-proxy.yaml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.dir / "cni" / "net.d"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    @property
    def inner_script(self) -> Path:
        return self.dir / "node-inner.sh"

    @property
    def kubelet_root(self) -> Path:
        return self.dir / "kubelet"

    def kubeconfig(self, who: str) -> Path:
        return self.dir / f"{who}.kubeconfig"


def kubeconfig_text(server: str, ca_file: Path, user: str, token: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: local, cluster: {{server: {server!r}, certificate-authority: {str(ca_file)!r}}}}}]\n"
        f"users: [{{name: {user!r}, user: {{token: {token!r}}}}}]\n"
        f"contexts: [{{name: local, context: {{cluster: local, user: {user!r}}}}}]\n"
        "current-context: local\n"
    )


def containerd_toml(f: NodeFiles) -> str:
    """containerd 2.x (config version 3): only what differs from its defaults."""
    _, sandbox = pause_image()
    runc = node_bin_dir() / "runc"
    return f"""version = 3
root = '{f.dir / "containerd"}'
state = '{f.run_dir / "containerd"}'

[grpc]
  address = '{f.socket}'

[ttrpc]
  address = '{f.socket}.ttrpc'

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{sandbox}'

[plugins.'io.containerd.cri.v1.runtime']
  # no CAP_SYS_RESOURCE here: negative oom_score_adj (Guaranteed pods get -997) cannot be set
  restrict_oom_score_adj = true
  # pod network namespaces under the state dir, inside the private mount namespace
  netns_mounts_under_state_dir = true

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = '{runc}'
  SystemdCgroup = false

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['/usr/lib/cni']
  conf_dir = '{f.cni_conf_dir}'
"""


def cni_conflist(f: NodeFiles) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "modeldeploy",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(f.dir / "cni" / "ipam"),
                        "ranges": [[{"subnet": NODE_POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_yaml(f: NodeFiles, ca_file: Path, cert: Path, key: Path) -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine kind: refused since 1.35 unless said so (still honoured by 1.36)
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{f.socket}
address: {NODE_IP}
healthzBindAddress: 127.0.0.1
tlsCertFile: {cert}
tlsPrivateKeyFile: {key}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca_file}}}
authorization: {{mode: Webhook}}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{DNS_SERVICE_IP}]
resolvConf: {f.dir / "resolv.conf"}
podLogsDir: {f.pod_logs}
failSwapOn: false
staticPodPath: ""
serializeImagePulls: false
evictionHard: {{memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 60
podPidsLimit: 4096
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
"""


def kube_proxy_yaml(f: NodeFiles, mode: str) -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {f.kubeconfig("kube-proxy")}}}
mode: {mode}
clusterCIDR: {POD_CIDR}
hostnameOverride: {NODE_NAME}
bindAddress: {NODE_IP}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# leave the machine-wide nf_conntrack_max alone
conntrack: {{maxPerCore: 0}}
# program endpoint changes as they come (the default batches them for a second)
nftables: {{minSyncPeriod: 0s}}
iptables: {{minSyncPeriod: 0s}}
"""


def inner_script(f: NodeFiles) -> str:
    """Runs as `unshare -m --propagation slave bash node-inner.sh` inside the cluster's netns.

    `$CONTAINERD` and `$KUBELET` name the binaries (set by the launcher).
    """
    binds = "\n".join(
        f"mount --bind {f.dir / 'sysctl' / path.replace('/', '_')} /proc/sys/{path}" for path in KUBELET_SYSCTLS
    )
    return f"""#!/bin/bash
# written by modeldeploy.localcluster.node: containerd and the kubelet in one private mount namespace
set -euo pipefail
{binds}
"$CONTAINERD" --config {f.containerd_config} > {f.state_dir / "logs" / "containerd.log"} 2>&1 &
ctrd=$!
for _ in $(seq 1 200); do [ -S {f.socket} ] && break; kill -0 $ctrd || exit 1; sleep 0.05; done
"$KUBELET" --config={f.kubelet_config} --kubeconfig={f.kubeconfig("kubelet")} --node-ip={NODE_IP} \\
  --hostname-override={NODE_NAME} --root-dir={f.kubelet_root} --cert-dir={f.kubelet_root / "pki"} \\
  > {f.state_dir / "logs" / "kubelet.log"} 2>&1 &
kubelet=$!
trap 'kill $kubelet $ctrd 2>/dev/null; wait' TERM INT
# one of them ended: stop the other (kubelet first), so the node never half-runs
wait -n $ctrd $kubelet || true
kill $kubelet 2>/dev/null || true
wait $kubelet 2>/dev/null || true
kill $ctrd 2>/dev/null || true
wait
"""


def write_files(
    f: NodeFiles, *, server: str, ca_file: Path, node_token: str, proxy_token: str, cert: Path, key: Path, mode: str
) -> None:
    f.dir.mkdir(parents=True, exist_ok=True)
    f.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    f.run_dir.mkdir(parents=True, exist_ok=True)
    (f.dir / "sysctl").mkdir(exist_ok=True)
    for path, value in KUBELET_SYSCTLS.items():
        (f.dir / "sysctl" / path.replace("/", "_")).write_text(value + "\n")
    # the node's own resolver (pods with dnsPolicy Default, CoreDNS itself): nothing outside exists
    (f.dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    f.containerd_config.write_text(containerd_toml(f))
    (f.cni_conf_dir / "10-modeldeploy.conflist").write_text(cni_conflist(f))
    f.kubelet_config.write_text(kubelet_yaml(f, ca_file, cert, key))
    f.kube_proxy_config.write_text(kube_proxy_yaml(f, mode))
    f.kubeconfig("kubelet").write_text(kubeconfig_text(server, ca_file, f"system:node:{NODE_NAME}", node_token))
    f.kubeconfig("kube-proxy").write_text(kubeconfig_text(server, ca_file, "system:kube-proxy", proxy_token))
    for who in ("kubelet", "kube-proxy"):
        f.kubeconfig(who).chmod(0o600)
    f.inner_script.write_text(inner_script(f))


def import_images(f: NodeFiles, archives: list[Path]) -> None:
    """`ctr images import` each archive into the kubelet's namespace (k8s.io); nothing is pulled."""
    ctr = str(node_bin_dir() / "ctr")
    for archive in archives:
        proc = subprocess.run(
            [ctr, "-a", str(f.socket), "-n", "k8s.io", "images", "import", "--local", str(archive)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise NodeError(f"ctr images import {archive} failed: {proc.stderr.strip()[-2000:]}")


# --- one node per machine -----------------------------------------------------------------------
def lock(netns: str) -> None:
    """Claim the machine's node (the kubepods cgroups); refuse when a live cluster holds it."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    if LOCK_FILE.exists():
        holder = LOCK_FILE.read_text().strip()
        if holder and holder != netns and Path("/run/netns", holder).exists():
            raise NodeError(
                f"another local cluster ({holder}) runs a node on this machine; stop it first "
                "(`make cluster-down`, or end that test session): one kubelet per machine"
            )
        if holder and holder != netns:  # a cluster that died without stopping: its pods may still run
            kill_pods(None)
    LOCK_FILE.write_text(netns + "\n")


def holds_lock(netns: str) -> bool:
    try:
        return LOCK_FILE.read_text().strip() == netns
    except FileNotFoundError:
        return False


def unlock(netns: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if LOCK_FILE.read_text().strip() == netns:
            LOCK_FILE.unlink()


# --- cleanup ------------------------------------------------------------------------------------
def _pids_in(cgroup_dir: Path) -> set[int]:
    pids: set[int] = set()
    for procs in cgroup_dir.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def kill_pods(f: NodeFiles | None, deadline_s: float = 10.0) -> list[int]:
    """SIGKILL every container process and shim of this node, then remove the kubepods cgroups.

    The kubelet leaves containers running when it stops, and the shims re-parent away from
    containerd: they are found through the kubepods cgroups and the shims' `-address` argument
    (`f` None: the shims of any local cluster, for a node that died without stopping).
    """
    marker = str(f.socket).encode() if f is not None else str(Path("/run/modeldeploy")).encode()
    pids: set[int] = set()
    for hierarchy in CGROUP_ROOT.iterdir():
        pods = hierarchy / KUBEPODS
        if pods.is_dir():
            pids |= _pids_in(pods)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and any(marker in arg for arg in cmd):
                    pids.add(int(entry))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + deadline_s
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < end:
        time.sleep(0.05)  # poll: the kernel reaps them
    for hierarchy in CGROUP_ROOT.iterdir():
        pods = hierarchy / KUBEPODS
        if pods.is_dir():
            for d in sorted((p for p in pods.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                pods.rmdir()
    return sorted(pids)
