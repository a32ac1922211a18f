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

**Any cluster.** With `MODELDEPLOY_KUBECONFIG=<path>` (or `--kubeconfig=<path>`) the same tests
run against an existing cluster instead: no local cluster is started, `local_cluster` is a handle
on that one (`local_cluster.local` is False), and the tests that need the local one (fixture
`local_only`: Traefik and Prometheus run as processes of the session) are skipped with one
reason. `MODELDEPLOY_FILES_DIR` names a directory the node sees at the same path (hostPath
volumes for the test models; kind: an `extraMounts` entry); `MODELDEPLOY_PROMETHEUS_URL` a
Prometheus that scrapes the cluster's pods, if any. To point it at the local cluster, run pytest
inside its network namespace: `bin/in-cluster env MODELDEPLOY_KUBECONFIG=.cluster/kubeconfig ...`.

Without the binaries and images (`make install`), root, `ip` or `openssl`, every cluster test fails with the
reason (it is not skipped). `MODELDEPLOY_SKIP_CLUSTER=1` skips them explicitly, with that reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import netns
from .cluster import ClusterError, LocalCluster, prerequisites
from .handle import ClusterHandle, wait_for

__all__ = ["ClusterHandle", "k8s_namespace", "local_cluster", "local_only", "wait_for"]
MARK = "cluster"


class _Session:
    cluster: LocalCluster | None = None
    handle: ClusterHandle | None = None
    error: str | None = None
    skip: str | None = None
    external: Path | None = None
    tmp: Path | None = None
    outside: list[str] = []
    report: list[str] = []


S = _Session()


LOCAL_ONLY = (
    "needs the local cluster (a process of the test session runs beside it); not run against MODELDEPLOY_KUBECONFIG"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        help="run the cluster tests against this existing cluster instead of starting the local one "
        "(also MODELDEPLOY_KUBECONFIG)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: needs the local Kubernetes cluster (modeldeploy.localcluster)")
    external = config.getoption("--kubeconfig") or os.environ.get("MODELDEPLOY_KUBECONFIG")
    if external:
        S.external = Path(external).resolve()


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
    if S.external is not None:
        S.report.append(f"cluster tests ran against {S.external} (MODELDEPLOY_KUBECONFIG), not a local cluster")
        return
    problems = prerequisites()
    if problems:
        S.error = "; ".join(problems)
        return
    _remove_stale_namespaces()
    # not under /tmp: pods commonly mount an emptyDir at /tmp, which shadows host paths there
    S.tmp = Path(tempfile.mkdtemp(prefix="modeldeploy-cluster-", dir="/var/tmp"))
    S.cluster = LocalCluster(S.tmp, f"modeldeploy-test-{os.getpid()}")
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
    if S.external is not None:
        if S.handle is None:
            files = Path(os.environ.get("MODELDEPLOY_FILES_DIR") or "/var/tmp/modeldeploy-external/files")  # noqa: S108
            S.handle = ClusterHandle.external(S.external, files, os.environ.get("MODELDEPLOY_PROMETHEUS_URL", ""))
        yield S.handle
        return
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


@pytest.fixture
def local_only(local_cluster: ClusterHandle) -> None:
    """Skips the test (one reason for all) when the cluster is not the session's own local one."""
    if not local_cluster.local:
        pytest.skip(LOCAL_ONLY)


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
