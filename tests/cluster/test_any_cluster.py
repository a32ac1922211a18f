"""The cluster tests against an existing cluster (MODELDEPLOY_KUBECONFIG), tried on this session's own
cluster: a child pytest gets its kubeconfig, starts no cluster, runs a cluster test there, and skips
the local-only one with the one reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.localcluster.pytest_plugin import LOCAL_ONLY, ClusterHandle

from .child import run_probe

pytestmark = pytest.mark.cluster

PROBE = """
import pytest

@pytest.mark.cluster
def test_uses_the_given_cluster(local_cluster, k8s_namespace):
    assert not local_cluster.local
    nodes = local_cluster.api.get("/api/v1/nodes").json()["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["local-node"]
    assert local_cluster.get_json("namespace", k8s_namespace)["status"]["phase"] == "Active"

@pytest.mark.cluster
def test_local_only(local_only):
    raise AssertionError("must be skipped")
"""


def test_the_suite_runs_against_a_given_kubeconfig(local_cluster: ClusterHandle, tmp_path: Path) -> None:
    env = local_cluster.python_env(
        MODELDEPLOY_KUBECONFIG=str(local_cluster.kubeconfig), MODELDEPLOY_FILES_DIR=str(local_cluster.files_root)
    )
    # the child inherits this thread's network namespace, so the API server's address works as it would
    returncode, out = run_probe(tmp_path, PROBE, env)
    assert returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert LOCAL_ONLY in out and "not a local cluster" in out, out
    assert "local cluster started" not in out, out
