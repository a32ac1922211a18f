"""A handle on a running local cluster: kubectl, server-side apply, API and Prometheus clients.

Used by the pytest fixtures and usable from scripts (the demo):

    cluster = LocalCluster(state_dir, "my-netns")
    cluster.start()            # on the main thread, before making threads
    c = ClusterHandle(cluster)
    ...
    cluster.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from . import kstatus as _kstatus
from .cluster import LocalCluster
from .kube import Access
from .paths import kubectl as kubectl_path

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None], timeout: float = 60.0, what: str = "condition", interval: float = 0.2
) -> T:
    """Call `predicate` until it returns a truthy value (returned) or raise AssertionError at the deadline.

    Exceptions raised by the predicate count as "not yet"; the last one is in the failure message.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_value = value
        except Exception as e:
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f"last error: {last_exc!r}" if last_exc is not None else f"last value: {last_value!r}"
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} ({detail})")
        time.sleep(interval)  # poll


class ClusterHandle:
    """What a test gets from the `local_cluster` fixture."""

    def __init__(self, cluster: LocalCluster) -> None:
        assert cluster.access is not None
        self._access = cluster.access
        self.local = True
        self.kubeconfig: Path = cluster.kubeconfig
        self.server: str = cluster.server
        self.prometheus_url: str = cluster.prometheus_url
        self.token: str = cluster.access.token
        self.ca_file: Path = Path(cluster.access.ca_file)
        self.state_dir: Path = cluster.state_dir
        self.netns: str = cluster.netns
        self.pod_log_dir: Path = cluster.pod_log_dir
        self.start_seconds: float | None = cluster.start_seconds
        self._files_root = cluster.state_dir / "files"
        self._http: httpx.Client | None = None
        self._claims: dict[str, set[str]] = {}

    @classmethod
    def external(cls, kubeconfig: Path, files_root: Path, prometheus_url: str = "") -> ClusterHandle:
        """A handle on a cluster this process did not start (`MODELDEPLOY_KUBECONFIG`).

        `files_root` must be a directory that the node sees at the same path (hostPath volumes):
        on the local cluster, `<state>/files`; on kind, an `extraMounts` entry.
        """
        self = cls.__new__(cls)
        self._access = Access.from_kubeconfig(kubeconfig)
        self.local = False
        self.kubeconfig = kubeconfig
        self.server = self._access.server
        self.prometheus_url = prometheus_url
        self.token = self._access.token
        self.ca_file = Path(self._access.ca_file)
        self.state_dir = files_root.parent
        self.netns = ""
        self.pod_log_dir = files_root.parent / "pod-logs"
        self.start_seconds = None
        self._files_root = files_root
        self._http = None
        self._claims = {}
        return self

    @property
    def files_root(self) -> Path:
        d = self._files_root
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
        return d

    def files_dir(self, name: str = "files") -> Path:
        """A host directory for files that pods must read (models): `model_uri()` turns a path
        in it into a `pvc://` URI that pods of a namespace can load."""
        d = self.files_root / name
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
        return d

    def model_uri(self, namespace: str, path: Path, claim: str = "models") -> str:
        """`pvc://<claim>/<path relative to the files root>`, with that claim in `namespace` bound to
        a hostPath PersistentVolume of the files root (read-only), created on first use.

        This is how a real cluster hands a pod files from a volume; the operator mounts the claim
        into the runtime's pods at /mnt/models/<claim>.
        """
        rel = path.resolve().relative_to(self.files_root.resolve())
        path.chmod(0o644)
        if claim not in self._claims.setdefault(namespace, set()):
            pv = f"{claim}-{namespace}"[:63]
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": pv, "labels": {"modeldeploy.io/test": "true"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadOnlyMany"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "",
                        "hostPath": {"path": str(self.files_root), "type": "Directory"},
                        "claimRef": {"namespace": namespace, "name": claim},
                    },
                }
            )
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": namespace},
                    "spec": {
                        "accessModes": ["ReadOnlyMany"],
                        "storageClassName": "",
                        "volumeName": pv,
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            )
            self._claims[namespace].add(claim)
        return f"pvc://{claim}/{rel}"

    # --- kubectl ------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster. check=True raises AssertionError with stderr on failure."""
        proc = subprocess.run(
            [kubectl_path(), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.python_env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply(
        self,
        obj_or_yaml: dict[str, Any] | list[dict[str, Any]] | str,
        namespace: str | None = None,
        field_manager: str = "pytest",
        force_conflicts: bool = False,
    ) -> list[dict[str, Any]]:
        """Server-side apply one object, a list of objects, or a YAML/JSON text; returns the results."""
        if isinstance(obj_or_yaml, str):
            text = obj_or_yaml
        elif isinstance(obj_or_yaml, list):
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": obj_or_yaml})
        else:
            text = json.dumps(obj_or_yaml)
        args = ["apply", "--server-side", f"--field-manager={field_manager}", "-o", "json", "-f", "-"]
        if force_conflicts:
            args.append("--force-conflicts")
        if namespace:
            args += ["-n", namespace]
        out = json.loads(self.kubectl(*args, input=text).stdout)
        items: list[dict[str, Any]] = out["items"] if out.get("kind") == "List" else [out]
        return items

    def get_json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, parsed."""
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return result

    # --- HTTP ---------------------------------------------------------------------------------
    def python_env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess (e.g. `python -m modeldeploy.operator`) talking to this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PROMETHEUS_URL"] = self.prometheus_url
        env["MODELDEPLOY_PROMETHEUS_URL"] = self.prometheus_url
        env.update(extra)
        return env

    def api_client(self, timeout: float = 30.0) -> httpx.Client:
        """A new httpx client for the API server (base_url, CA and token set); close it yourself."""
        return self._access.client(timeout)

    @property
    def api(self) -> httpx.Client:
        """A shared httpx client for the API server (closed at session end)."""
        if self._http is None:
            self._http = self.api_client()
        return self._http

    def prometheus_query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns `data.result` (a list of {"metric": ..., "value": [t, "v"]})."""
        with httpx.Client(trust_env=False, timeout=10.0) as c:
            r = c.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql})
            r.raise_for_status()
            result: list[dict[str, Any]] = r.json()["data"]["result"]
            return result

    # --- helpers ------------------------------------------------------------------------------
    wait_for = staticmethod(wait_for)

    def kstatus(self, obj: dict[str, Any]) -> tuple[str, str]:
        """kstatus' (status, message) for an object (see modeldeploy.localcluster.kstatus)."""
        return _kstatus.compute(obj)

    def pod_logs(self, namespace: str, pod: str, container: str | None = None, previous: bool = False) -> str:
        """`kubectl logs` of a container (API server -> kubelet); empty when there is none (yet)."""
        args = ["logs", "-n", namespace, pod]
        if container:
            args += ["-c", container]
        if previous:
            args.append("--previous")
        proc = self.kubectl(*args, check=False)
        return proc.stdout if proc.returncode == 0 else ""

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
