"""Without the cluster's binaries the cluster tests fail and say why; they are not skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import pytest

@pytest.mark.cluster
def test_needs_cluster(local_cluster):
    pass
"""


def test_cluster_tests_fail_with_the_reason_when_binaries_are_missing(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["modeldeploy.localcluster.pytest_plugin"]\n')
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "MODELDEPLOY_CLUSTER_BIN_DIR": str(tmp_path / "no-bins")}
    env.pop("MODELDEPLOY_SKIP_CLUSTER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 error" in out or "1 failed" in out, out
    assert "skipped" not in out, out
    assert "cluster binaries or images missing" in out and "make cluster-bins" in out, out
