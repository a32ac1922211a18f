"""The launcher: a real control plane, a real node (containerd, runc, kubelet, kube-proxy, CNI,
CoreDNS) and Prometheus, all inside a network namespace of the cluster's own.

`LocalCluster(state_dir, netns_name).start()` creates the network namespace, moves the calling
(main) thread into it, makes certificates, starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, the node (containerd and the kubelet in a private mount namespace, see node.py),
kube-proxy and Prometheus, each in a process group of its own; imports the images (pause,
CoreDNS, and the project's from `make images`) into containerd; installs CoreDNS; and waits until
the API server is ready, the controllers and scheduler are healthy, the node is Ready, CoreDNS
answers, the `default` ServiceAccount exists and Prometheus is ready. `stop()` ends them by
process group (SIGTERM, then SIGKILL after a deadline), kills the pods' processes and removes
their cgroups, kills whatever is still inside the namespace, and deletes the namespace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from . import addons, netns, node, pki
from .kube import Access
from .paths import (
    API_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    PROMETHEUS_PORT,
    SERVICE_CIDR,
    bin_dir,
    coredns_image,
    missing_binaries,
    node_bin_dir,
    pause_image,
    project_images,
    prometheus_bin_dir,
)

log = logging.getLogger("modeldeploy.localcluster")
T = TypeVar("T")

#: stop order is the reverse of this
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "node",
    "kube-proxy",
    "prometheus",
)
#: kube-proxy's mode (`MODELDEPLOY_PROXY_MODE=iptables` switches; both work here)
PROXY_MODE = os.environ.get("MODELDEPLOY_PROXY_MODE", "nftables")


#: what start() creates in the state directory (and removes again at the next start)
STATE_ENTRIES = (
    "etcd",
    "pki",
    "logs",
    "node",
    "prometheus",
    "access.json",
    "kubeconfig",
    "prometheus.yml",
    "state.json",
    "netns",
)


class ClusterError(RuntimeError):
    pass


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # child side of fork: SIGKILL when the starting thread dies
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def prerequisites() -> list[str]:
    """Why the cluster cannot start here (empty when it can)."""
    problems = []
    missing = missing_binaries()
    if missing:
        go = shutil.which("go")
        how = (
            "run `make cluster-bins` (needs the Go module proxy)"
            if go
            else "the Go toolchain is not installed, so they cannot be built here "
            "(install Go >= 1.24, then `make cluster-bins`)"
        )
        problems.append(f"cluster binaries or images missing: {', '.join(missing)}; {how}")
    if os.geteuid() != 0:
        problems.append("the local cluster needs root (it creates a network namespace with `ip netns add`)")
    for tool in ("ip", "openssl", "unshare", "mount"):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found: run `bash hack/install-system-deps.sh` as root")
    if not Path("/usr/lib/cni/bridge").exists():
        problems.append(
            "the CNI plugins are missing (/usr/lib/cni/bridge): run `bash hack/install-system-deps.sh` as root"
        )
    return problems


@dataclass
class Proc:
    name: str
    pid: int
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(OSError):  # a zombie counts as gone
            if Path(f"/proc/{self.pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
        return True


class LocalCluster:
    """A local cluster kept in `state_dir`, living in network namespace `netns_name`.

    daemon=False (tests): children die with the starting thread (PR_SET_PDEATHSIG), so a killed
    test session leaves nothing behind. daemon=True (`make cluster-up`): they outlive the launcher.
    """

    def __init__(
        self,
        state_dir: Path,
        netns_name: str,
        *,
        daemon: bool = False,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.netns = netns_name
        self.daemon = daemon
        self.node = node.NodeFiles(self.state_dir, netns_name)
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.server = f"https://127.0.0.1:{API_PORT}"
        # the node's address: the same URL works from the host side and from pods
        self.prometheus_url = f"http://{NODE_IP}:{PROMETHEUS_PORT}"
        self.procs: dict[str, Proc] = {}
        self.access: Access | None = None
        self.ca_file = self.state_dir / "pki" / "ca.crt"
        self.start_seconds: float | None = None
        self._old_netns_fd: int | None = None
        self._netns_inode: int | None = None

    # --- files ------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pod_log_dir(self) -> Path:
        return self.node.pod_logs

    def _save(self) -> None:
        state = {
            "netns": self.netns,
            "server": self.server,
            "prometheus_url": self.prometheus_url,
            "kubeconfig": str(self.kubeconfig),
            "pids": {n: p.pid for n, p in self.procs.items()},
            "start_seconds": self.start_seconds,
        }
        self.state_file.write_text(json.dumps(state, indent=2))
        (self.state_dir / "netns").write_text(self.netns + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> LocalCluster:
        state = json.loads((state_dir / "state.json").read_text())
        c = cls(state_dir, state["netns"], daemon=True)
        c.procs = {n: Proc(n, pid) for n, pid in state["pids"].items()}
        c.start_seconds = state.get("start_seconds")
        if (state_dir / "access.json").exists():
            c.access = Access.load(state_dir / "access.json")
        return c

    def _write_kubeconfig(self, token: str) -> None:
        self.kubeconfig.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: modeldeploy-local\n"
            "  cluster:\n"
            f"    server: {self.server}\n"
            f"    certificate-authority: {self.ca_file}\n"
            "users:\n"
            "- name: modeldeploy-admin\n"
            "  user:\n"
            f"    token: {token}\n"
            "contexts:\n"
            "- name: modeldeploy-local\n"
            "  context:\n"
            "    cluster: modeldeploy-local\n"
            "    user: modeldeploy-admin\n"
            "    namespace: default\n"
            "current-context: modeldeploy-local\n"
        )
        self.kubeconfig.chmod(0o600)

    def _write_prometheus_config(self) -> Path:
        cfg = self.state_dir / "prometheus.yml"
        cfg.write_text(
            f"""# written by modeldeploy.localcluster
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: kubernetes-pods
  honor_labels: true
  # the same selection as the chart's PodMonitor would make through a Prometheus Operator (not
  # run here): pods annotated prometheus.io/scrape=true, discovered through the API server
  kubernetes_sd_configs:
  - role: pod
    kubeconfig_file: {self.kubeconfig}
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
    action: keep
    regex: "true"
  - source_labels: [__meta_kubernetes_pod_phase]
    action: drop
    regex: (Succeeded|Failed)
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
    action: replace
    target_label: __metrics_path__
    regex: (.+)
  - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
    action: replace
    regex: ([^:]+)(?::\\d+)?;(\\d+)
    replacement: $1:$2
    target_label: __address__
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
"""
        )
        return cfg

    # --- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as logf:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                # called from the main thread; the child only calls prctl before exec
                preexec_fn=None if self.daemon else _die_with_parent,  # noqa: PLW1509
            )
        self.procs[name] = Proc(name, popen.pid, popen)
        self._save()

    def _argvs(self, p: pki.Pki) -> dict[str, list[str]]:
        b = bin_dir()
        s = self.state_dir
        etcd_client = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
        etcd_peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
        return {
            "etcd": [
                str(b / "etcd"),
                "--name=default",
                f"--data-dir={s / 'etcd'}",
                f"--listen-client-urls={etcd_client}",
                f"--advertise-client-urls={etcd_client}",
                f"--listen-peer-urls={etcd_peer}",
                f"--initial-advertise-peer-urls={etcd_peer}",
                f"--initial-cluster=default={etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            "kube-apiserver": [
                str(b / "kube-apiserver"),
                f"--etcd-servers={etcd_client}",
                "--bind-address=0.0.0.0",
                f"--advertise-address={NODE_IP}",
                f"--secure-port={API_PORT}",
                f"--cert-dir={s / 'pki'}",
                f"--tls-cert-file={p.server_cert}",
                f"--tls-private-key-file={p.server_key}",
                f"--token-auth-file={p.token_file}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--event-ttl=1h",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # `kubectl logs/exec/port-forward`: API server -> kubelet (https://NODE_IP:10250)
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={p.ca_cert}",
                f"--kubelet-client-certificate={p.kubelet_client_cert}",
                f"--kubelet-client-key={p.kubelet_client_key}",
            ],
            "kube-controller-manager": [
                str(b / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                f"--cluster-signing-cert-file={p.ca_cert}",
                f"--cluster-signing-key-file={p.ca_key}",
                f"--cluster-cidr={POD_CIDR}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--controllers=*",
                "--bind-address=127.0.0.1",
                "--profiling=false",
            ],
            "kube-scheduler": [
                str(b / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--profiling=false",
            ],
            "node": [
                "unshare",
                "--mount",
                "--propagation",
                "slave",
                "bash",
                str(self.node.inner_script),
            ],
            "kube-proxy": [str(b / "kube-proxy"), f"--config={self.node.kube_proxy_config}"],
            "prometheus": [
                str(prometheus_bin_dir() / "prometheus"),
                f"--config.file={s / 'prometheus.yml'}",
                f"--storage.tsdb.path={s / 'prometheus'}",
                f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
        }

    # --- start ------------------------------------------------------------------------------
    def enter_netns(self) -> None:
        """Create the namespace (once) and move the calling main thread into it.

        Call it before this process makes the threads that must reach the cluster: threads and
        child processes inherit the namespace of the thread that creates them.
        """
        if self._netns_inode is None:
            netns.create(self.netns)
            self._netns_inode = netns.inode_of(netns.path_of(self.netns))
        if netns.current_inode() != self._netns_inode:
            self._old_netns_fd = netns.enter(self.netns)

    def start(self, timeout: float = 120.0) -> None:
        problems = prerequisites()
        if problems:
            raise ClusterError("; ".join(problems))
        t0 = time.monotonic()
        for name in STATE_ENTRIES:  # only what a previous start made: other files stay
            child = self.state_dir / name
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            elif child.exists() or child.is_symlink():
                child.unlink()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.enter_netns()
        try:
            p = pki.make(self.state_dir / "pki")
            self.access = Access(server=self.server, token=p.token, ca_file=str(p.ca_cert))
            self.access.dump(self.state_dir / "access.json")
            self._write_kubeconfig(p.token)
            self._write_prometheus_config()
            node.lock(self.netns)
            node.write_files(
                self.node,
                server=f"https://{NODE_IP}:{API_PORT}",
                ca_file=p.ca_cert,
                node_token=p.node_token,
                proxy_token=p.proxy_token,
                cert=p.kubelet_cert,
                key=p.kubelet_key,
                mode=PROXY_MODE,
            )
            env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
            env["CONTAINERD"] = str(node_bin_dir() / "containerd")
            env["KUBELET"] = str(bin_dir() / "kubelet")
            env["PATH"] = f"{node_bin_dir()}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"  # the runc shim
            for name, argv in self._argvs(p).items():
                self._spawn(name, argv, env)
            self._wait_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        self._save()
        log.info("local cluster up in %.1fs (state %s)", self.start_seconds, self.state_dir)

    def _check_alive(self) -> None:
        for proc in self.procs.values():
            if not proc.alive():
                raise ClusterError(f"{proc.name} exited during start-up:\n{self.log_tail(proc.name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait(self, what: str, deadline: float, check: Callable[[], T | None]) -> T:
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                value = check()
                if value is not None and value is not False:
                    return value
            except (httpx.HTTPError, KeyError, ValueError) as e:
                last = e
            time.sleep(0.1)  # poll
        raise ClusterError(f"timed out waiting for {what} (last error: {last!r})")

    def _wait_ready(self, deadline: float) -> None:
        assert self.access is not None
        with self.access.client(timeout=5.0) as api, httpx.Client(verify=False, trust_env=False, timeout=2.0) as plain:  # noqa: S501

            def ok(client: httpx.Client, url: str) -> bool:
                return client.get(url).status_code == 200

            self._wait("kube-apiserver /readyz", deadline, lambda: ok(api, "/readyz"))
            self._wait(
                "kube-controller-manager /healthz", deadline, lambda: ok(plain, "https://127.0.0.1:10257/healthz")
            )
            self._wait("kube-scheduler /healthz", deadline, lambda: ok(plain, "https://127.0.0.1:10259/healthz"))

            def node_ready() -> bool:
                r = api.get(f"/api/v1/nodes/{NODE_NAME}")
                if r.status_code != 200:
                    return False
                node: dict[str, Any] = r.json()
                conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                taints = {t["key"] for t in node.get("spec", {}).get("taints") or []}
                return conds.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints

            self._wait("containerd's socket", deadline, self.node.socket.exists)
            t_import = time.monotonic()
            node.import_images(self.node, self.image_archives())
            log.info("images imported in %.1fs", time.monotonic() - t_import)
            self._wait("the node to be Ready and schedulable", deadline, node_ready)
            addons.apply(api, addons.coredns_objects())
            self._wait(
                "the default ServiceAccount",
                deadline,
                lambda: ok(api, "/api/v1/namespaces/default/serviceaccounts/default"),
            )
            self._wait("Prometheus /-/ready", deadline, lambda: ok(plain, f"{self.prometheus_url}/-/ready"))
            self._wait("CoreDNS to be Ready", deadline, lambda: addons.coredns_ready(api))

    def image_archives(self) -> list[Path]:
        """pause and CoreDNS (hack/cluster/build-node.sh), then the project's images when `make images` ran."""
        archives = [pause_image()[0], coredns_image()[0]]
        built = project_images()
        archives += [Path(built[k]) for k in ("RUNTIME_ARCHIVE", "OPERATOR_ARCHIVE") if built.get(k)]
        return [a for a in archives if a.exists()]

    # --- stop -------------------------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> list[str]:
        """Stop everything this cluster started; return what had to be SIGKILLed (for the report)."""
        killed: list[str] = []
        order = [n for n in reversed(COMPONENTS) if n in self.procs]
        for name in order:
            proc = self.procs[name]
            if not proc.alive():
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.alive() and time.monotonic() < deadline:
                time.sleep(0.05)  # poll
            if proc.alive():
                killed.append(name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(5)
            if name == "node" and node.holds_lock(self.netns):
                node.kill_pods(self.node)  # the kubelet leaves containers running, and shims re-parent away
        inode = self._netns_inode
        if inode is None and netns.exists(self.netns):
            inode = netns.inode_of(netns.path_of(self.netns))
        if inode is not None:
            leftovers = netns.kill_all_inside(inode)
            if leftovers:
                killed.append(f"pids {leftovers} left in the namespace")
        if self._old_netns_fd is not None:
            netns.leave(self._old_netns_fd)
            self._old_netns_fd = None
        netns.delete(self.netns)
        node.unlock(self.netns)
        shutil.rmtree(self.node.run_dir, ignore_errors=True)
        self._netns_inode = None
        self.procs = {n: p for n, p in self.procs.items() if p.alive()}
        if self.state_file.exists():
            self._save()
        return killed

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict[str, bool]:
        return {n: p.alive() for n, p in self.procs.items()}
