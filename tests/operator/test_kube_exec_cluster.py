"""An exec credential plugin against the real kube-apiserver of the local cluster: its static token file
accepts the admin token, which the fake plugin prints from its second run on (the first token is refused
with a 401, so the re-run is exercised for real). Both the operator's client and kopf's login use it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_kube_exec import kubeconfig, runs, write_plugin

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for
from modeldeploy.operator.kube import Invalid, Kube, from_kubeconfig

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster


def exec_kubeconfig(cluster: ClusterHandle, d: Path) -> Path:
    write_plugin(d)
    env = {"TOKEN": cluster.token, "GOOD_FROM": "2", "EXPIRES_IN": "3600"}
    return kubeconfig(d, cluster.server, env, ca_file=str(cluster.ca_file))


def test_exec_plugin_token_against_the_real_api_server(
    local_cluster: ClusterHandle, k8s_namespace: str, tmp_path: Path
) -> None:
    creds = from_kubeconfig(exec_kubeconfig(local_cluster, tmp_path))

    async def main() -> tuple[list[dict[str, Any]], BaseException | None]:
        kube = Kube(creds)
        try:
            sas = await kube.list_objects("v1", "serviceaccounts", k8s_namespace, {})
            bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": k8s_namespace}}
            bad["spec"] = {"ports": [{"port": 0}]}
            try:
                await kube.apply(bad)
            except Invalid as e:
                return sas, e
            return sas, None
        finally:
            await kube.aclose()

    sas, err = asyncio.run(main())
    assert [sa["metadata"]["name"] for sa in sas] == ["default"]
    assert runs(tmp_path) == 2, "the first token got a 401 from the API server and the plugin ran again"
    assert isinstance(err, Invalid) and err.status == 422


def test_the_operator_logs_in_with_an_exec_plugin(
    local_cluster: ClusterHandle, k8s_namespace: str, crds: None, tmp_path: Path, mdep: Mdep
) -> None:
    """`python -m modeldeploy.operator --kubeconfig <exec>`: kopf's watch (its login gets the plugin's first,
    refused, token, re-logs in on the 401 and gets a good one) and our client's status write both work."""
    path = exec_kubeconfig(local_cluster, tmp_path)
    log = (tmp_path / "operator.log").open("w")
    cmd = [sys.executable, "-m", "modeldeploy.operator", "--kubeconfig", str(path), "-n", k8s_namespace]
    proc = subprocess.Popen([*cmd, "--metrics-port", "0"], env=local_cluster.python_env(), stdout=log, stderr=log)
    try:
        # a model no pod will load: the first pass writes status whatever the pods do
        manifest = mdep.manifest(Model("1", "file:///nonexistent.onnx", "a" * 64, Path("/nonexistent.onnx")))
        local_cluster.apply(manifest, field_manager="ml-engineer")
        try:
            wait_for(lambda: mdep.status().get("observedGeneration") == 1, 60, "a status written by the operator")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- operator log ---\n{(tmp_path / 'operator.log').read_text()[-4000:]}") from e
        assert runs(tmp_path) >= 2
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
