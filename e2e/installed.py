"""The operator as a user runs it: `helm install` of charts/modeldeploy, from the image `make images`
built, as a pod under the chart's ServiceAccount and RBAC (no admin token in its path).

One release per test namespace, watching only that namespace (`watchNamespaces`), so tests stay
independent as they were with one operator process each:

    op = InstalledOperator(cluster, namespace, log_path).start()   # helm install, pod Ready
    op.metrics()     # GET the pod's /metrics
    op.kill()        # like a crash: scaled to 0 and the pod force-deleted (no graceful stop)
    op.start()       # back to 1 replica, waits until Ready
    op.log()         # every container's output so far (kubectl logs, kept across kills)
    op.stop()        # helm uninstall (its ClusterRoles and bindings too)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Final

import httpx

from modeldeploy.localcluster.handle import ClusterHandle, wait_for
from modeldeploy.localcluster.paths import REPO_ROOT, cache_dir, project_images

CHART: Final = REPO_ROOT / "charts" / "modeldeploy"
METRICS_PORT: Final = 8090


def helm() -> str:
    """$HELM, else the binary hack/install-helm.sh caches (fetched on first use)."""
    env = os.environ.get("HELM")
    if env:
        return env
    cached = cache_dir() / "bin" / "helm-3.17" / "helm"
    if os.access(cached, os.X_OK):
        return str(cached)
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "install-helm.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def operator_image() -> tuple[str, str]:
    """(repository, tag) of the operator image `make images` built; AssertionError naming the fix."""
    ref = project_images().get("OPERATOR_IMAGE")
    if not ref:
        raise AssertionError("no operator image: run `make images` (it writes dist/images/images.env)")
    repository, _, tag = ref.rpartition(":")
    return repository, tag


class InstalledOperator:
    """A Helm release of the chart in `namespace`, reconciling that namespace only."""

    def __init__(self, cluster: ClusterHandle, namespace: str, log_path: Path, **values: Any) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log_path
        # cluster-scoped objects (ClusterRoles, bindings) carry the release name: one per namespace
        self.release = "modeldeploy-" + hashlib.sha1(namespace.encode()).hexdigest()[:8]
        self.values = values
        self.installed = False
        self._saved = ""

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/component=operator,app.kubernetes.io/instance={self.release}"

    @property
    def deployment(self) -> str:
        return self.release  # the chart's full name when the release name contains "modeldeploy"

    def _helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.cluster.python_env()
        proc = subprocess.run([helm(), *args], capture_output=True, text=True, env=env, timeout=180, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def install(self) -> None:
        repository, tag = operator_image()
        values: dict[str, Any] = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
            "watchNamespaces": [self.namespace],
            "rbac": {"create": True, "gatewayAPI": True},
            "extraArgs": ["--verbose"],
            **self.values,
        }
        values_file = self.log_path.parent / f"values-{self.namespace}.json"
        values_file.parent.mkdir(parents=True, exist_ok=True)
        values_file.write_text(json.dumps(values))
        self._helm(
            "install", self.release, str(CHART), "--namespace", self.namespace, "--skip-crds", "-f", str(values_file)
        )
        self.installed = True

    def start(self, timeout: float = 90.0) -> InstalledOperator:
        if not self.installed:
            self.install()
        else:
            self.cluster.kubectl("scale", f"deployment/{self.deployment}", "-n", self.namespace, "--replicas=1")
        wait_for(self.pod_ip, timeout, f"the operator pod in {self.namespace} to be Ready")
        return self

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get_json("pods", "-n", self.namespace, "-l", self.selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def pod_ip(self) -> str | None:
        for pod in self.pods():
            conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
            if conditions.get("Ready") == "True" and pod["status"].get("podIP"):
                return str(pod["status"]["podIP"])
        return None

    def _save_logs(self) -> None:
        for pod in self.pods():
            self._saved += self.cluster.pod_logs(self.namespace, pod["metadata"]["name"])
        self.log_path.write_text(self._saved)

    def kill(self) -> None:
        """Like a crash or an eviction: no graceful stop, no cleanup; nothing comes back until start()."""
        self._save_logs()
        self.cluster.kubectl("scale", f"deployment/{self.deployment}", "-n", self.namespace, "--replicas=0")
        names = [p["metadata"]["name"] for p in self.pods()]
        if names:
            self.cluster.kubectl(
                "delete", "pod", *names, "-n", self.namespace, "--grace-period=0", "--force", "--wait=false"
            )
        wait_for(
            lambda: not self.cluster.get_json("pods", "-n", self.namespace, "-l", self.selector)["items"],
            60,
            "the operator pod to be gone",
        )

    def stop(self) -> None:
        if self.installed:
            self._save_logs()
            self._helm("uninstall", self.release, "--namespace", self.namespace, check=False)
            self.installed = False

    def log(self) -> str:
        live = "".join(self.cluster.pod_logs(self.namespace, p["metadata"]["name"]) for p in self.pods())
        return self._saved + live

    def metrics(self) -> str:
        ip = self.pod_ip()
        if ip is None:
            raise AssertionError(f"no Ready operator pod in {self.namespace}")
        return httpx.get(f"http://{ip}:{METRICS_PORT}/metrics", timeout=5, trust_env=False).text
