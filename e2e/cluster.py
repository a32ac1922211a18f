"""The local cluster for scripts (the demo, the rollback benchmark): reuse a running one or start one."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx

from modeldeploy.localcluster import netns, node
from modeldeploy.localcluster.cluster import LocalCluster
from modeldeploy.localcluster.handle import ClusterHandle
from modeldeploy.localcluster.paths import DEFAULT_NETNS, DEFAULT_STATE_DIR

from .harness import wait_for

log = logging.getLogger("modeldeploy.e2e")


@contextlib.contextmanager
def local_cluster(state_dir: Path = DEFAULT_STATE_DIR, netns_name: str = DEFAULT_NETNS) -> Iterator[ClusterHandle]:
    """A cluster whose network namespace this (main) thread is in; stopped at the end if started here.

    A cluster already up in `state_dir` (`make cluster-up`) is reused and left running; the images
    `make images` built since it started are imported into its node first.
    """
    if (state_dir / "state.json").exists():
        running = LocalCluster.load(state_dir)
        if running.status() and all(running.status().values()) and netns.exists(running.netns):
            old = netns.enter(running.netns)
            node.import_images(running.node, running.image_archives())
            handle = ClusterHandle(running)
            try:
                yield handle
            finally:
                handle.close()
                netns.leave(old)
            return
        running.stop()
    cluster = LocalCluster(state_dir, netns_name)
    try:
        cluster.start()
        handle = ClusterHandle(cluster)
        try:
            yield handle
        finally:
            handle.close()
    finally:
        cluster.stop()


def fresh_namespace(cluster: ClusterHandle, name: str | None = None) -> str:
    """Create a namespace (deleting a leftover of the same name first); returns its name."""
    name = name or f"bench-{secrets.token_hex(3)}"
    path = f"/api/v1/namespaces/{name}"
    if cluster.api.get(path).status_code == 200:
        cluster.api.delete(path)
        wait_for(lambda: cluster.api.get(path).status_code == 404, 120, f"namespace {name} to be deleted")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    response = cluster.api.post("/api/v1/namespaces", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"cannot create namespace {name}: {response.text}")

    def has_default_account() -> bool:
        return cluster.api.get(f"{path}/serviceaccounts/default").status_code == 200

    wait_for(has_default_account, 60, f"the default ServiceAccount of {name}")
    return name


def delete_namespace(cluster: ClusterHandle, name: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        cluster.api.delete(f"/api/v1/namespaces/{name}")
