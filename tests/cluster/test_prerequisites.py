"""Without the cluster's binaries the cluster tests fail and say why; they are not skipped."""

from __future__ import annotations

import os
from pathlib import Path

from .child import run_probe

PROBE = """
import pytest

@pytest.mark.cluster
def test_needs_cluster(local_cluster):
    pass
"""


def test_cluster_tests_fail_with_the_reason_when_binaries_are_missing(tmp_path: Path) -> None:
    env = {**os.environ, "MODELDEPLOY_CLUSTER_BIN_DIR": str(tmp_path / "no-bins")}
    env.pop("MODELDEPLOY_SKIP_CLUSTER", None)
    returncode, out = run_probe(tmp_path, PROBE, env)
    assert returncode == 1, out
    assert "1 error" in out or "1 failed" in out, out
    assert "skipped" not in out, out
    assert "cluster binaries or images missing" in out and "make cluster-bins" in out, out
