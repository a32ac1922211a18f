"""pytest plugin: one real local cluster per test session, for tests marked `cluster`.

Register it from a conftest: `pytest_plugins = ["modeldeploy.localcluster.pytest_plugin"]`
(tests/conftest.py does). Fixtures:

- `local_cluster` (session): a `ClusterHandle`, started on first use, stopped at session end.
- `k8s_namespace` (function): a fresh namespace name (its `default` ServiceAccount exists),
  deleted after the test.

How the test process reaches the cluster: when collection selects at least one test that is
marked `cluster` (or uses `local_cluster`), the plugin creates the cluster's network namespace
and moves pytest's *main thread* into it (setns) before any test runs. Threads and subprocesses
created afterwards by the main thread inherit it, so httpx clients, kubectl, an operator
subprocess and the runtime under test all see the API server, pod IPs, ClusterIPs and
Prometheus directly. Loopback inside the namespace works as usual, so other tests run
unchanged. A Python thread started *before* collection ended stays outside (the plugin warns).

Without the binaries, root, `ip`, `openssl` or `prometheus`, every cluster test fails with the
reason (it is not skipped). `MODELDEPLOY_SKIP_CLUSTER=1` skips them explicitly, with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from . import kstatus as _kstatus
from . import netns
from .cluster import ClusterError, LocalCluster, prerequisites
from .paths import kubectl as kubectl_path

T = TypeVar("T")
MARK = "cluster"


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
        self._cluster = cluster
        self.kubeconfig: Path = cluster.kubeconfig
        self.server: str = cluster.server
        self.prometheus_url: str = cluster.prometheus_url
        self.token: str = cluster.access.token
        self.ca_file: Path = Path(cluster.access.ca_file)
        self.state_dir: Path = cluster.state_dir
        self.netns: str = cluster.netns
        self.pod_log_dir: Path = cluster.pod_log_dir
        self.start_seconds: float | None = cluster.start_seconds
        self._http: httpx.Client | None = None

    def files_dir(self, name: str = "files") -> Path:
        """A host directory for files that pods must read (models, configs): `file://` URIs into
        it work from any pod. Not under /tmp, which a pod's emptyDir at /tmp would shadow."""
        d = self.state_dir / "files" / name
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
        return d

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
        assert self._cluster.access is not None
        return self._cluster.access.client(timeout)

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
        """A container's output (what `kubectl logs` would show; the local node has no kubelet API)."""
        dirs = sorted(self.pod_log_dir.glob(f"{namespace}_{pod}_*"))
        if not dirs:
            return ""
        cdirs = [d for d in sorted(dirs[-1].iterdir()) if d.is_dir() and (container is None or d.name == container)]
        if not cdirs:
            return ""
        files = sorted(cdirs[0].glob("*.log"), key=lambda p: int(p.stem))
        if previous:
            files = files[:-1]
        return files[-1].read_text(errors="replace") if files else ""

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class _Session:
    cluster: LocalCluster | None = None
    handle: ClusterHandle | None = None
    error: str | None = None
    skip: str | None = None
    tmp: Path | None = None
    outside: list[str] = []
    report: list[str] = []


S = _Session()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: needs the local Kubernetes cluster (modeldeploy.localcluster)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # before `-m` deselection: a test that uses the cluster fixtures carries the marker
    for item in items:
        names = getattr(item, "fixturenames", ())
        if ("local_cluster" in names or "k8s_namespace" in names) and item.get_closest_marker(MARK) is None:
            item.add_marker(MARK)


def _remove_stale_namespaces() -> None:
    """Namespaces of earlier sessions that were killed before they could clean up."""
    if not netns.NETNS_RUN_DIR.is_dir():
        return
    for path in netns.NETNS_RUN_DIR.glob("modeldeploy-test-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError, netns.NetnsError):
                netns.kill_all_inside(netns.inode_of(path))
                netns.delete(path.name)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(item.get_closest_marker(MARK) for item in session.items):
        return
    if os.environ.get("MODELDEPLOY_SKIP_CLUSTER"):
        S.skip = "MODELDEPLOY_SKIP_CLUSTER is set"
        return
    problems = prerequisites()
    if problems:
        S.error = "; ".join(problems)
        return
    _remove_stale_namespaces()
    # not under /tmp: pods commonly mount an emptyDir at /tmp, which shadows host paths there
    S.tmp = Path(tempfile.mkdtemp(prefix="modeldeploy-cluster-", dir="/var/tmp"))
    S.cluster = LocalCluster(S.tmp, f"modeldeploy-test-{os.getpid()}", agent_args=())
    try:
        S.cluster.enter_netns()
    except Exception as e:
        S.error = f"cannot enter the cluster's network namespace: {e}"
        return
    S.outside = netns.threads_outside(S.cluster.netns)
    if S.outside:
        warnings.warn(
            f"threads started before the cluster's network namespace was entered cannot reach it: {S.outside}",
            stacklevel=1,
        )


def _teardown(session: pytest.Session | None = None) -> None:
    if S.handle is not None:
        S.handle.close()
        S.handle = None
    if S.cluster is not None:
        killed = S.cluster.stop()
        if killed:
            S.report.append(f"local cluster: had to SIGKILL {', '.join(killed)}")
        failed = session is not None and session.testsfailed > 0
        if S.tmp is not None:
            if failed:
                S.report.append(f"local cluster state and logs kept in {S.tmp}")
            else:
                shutil.rmtree(S.tmp, ignore_errors=True)
        S.cluster = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _teardown(session)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in S.report:
        terminalreporter.write_line(line)
    if S.error:
        terminalreporter.write_line(f"local cluster could not run: {S.error}")


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterHandle]:
    """The session's local cluster (started on first use). See ClusterHandle for the API."""
    if S.skip:
        pytest.skip(S.skip)
    if S.error:
        pytest.fail(f"the local cluster cannot run here: {S.error}", pytrace=False)
    if S.cluster is None:
        pytest.fail(
            "local_cluster used by a test that collection did not see; mark it @pytest.mark.cluster", pytrace=False
        )
    if S.handle is None:
        try:
            S.cluster.start()
        except ClusterError as e:
            S.error = str(e)
            pytest.fail(f"the local cluster did not start: {e}", pytrace=False)
        S.handle = ClusterHandle(S.cluster)
        S.report.append(f"local cluster started in {S.cluster.start_seconds:.1f}s (state {S.tmp})")
    yield S.handle


def _namespace_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", nodeid.rsplit("::", maxsplit=1)[-1].lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def k8s_namespace(local_cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace for one test (its default ServiceAccount exists), deleted afterwards."""
    name = _namespace_name(request.node.nodeid)
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"modeldeploy.io/test": "true"}},
    }
    r = local_cluster.api.post("/api/v1/namespaces", json=ns)
    assert r.status_code == 201, r.text
    wait_for(
        lambda: local_cluster.api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200,
        30,
        f"the default ServiceAccount of namespace {name}",
    )
    yield name
    local_cluster.api.delete(f"/api/v1/namespaces/{name}")
