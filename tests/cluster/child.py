"""A child pytest session on one probe file, with the local-cluster plugin: how the plugin's own
behaviour (failing without binaries, running against a given kubeconfig) is tested."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_probe(tmp_path: Path, probe: str, env: dict[str, str]) -> tuple[int, str]:
    """Write `probe` as a test file beside a conftest loading the plugin, run pytest on it; (exit code, output)."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["modeldeploy.localcluster.pytest_plugin"]\n')
    (tmp_path / "test_probe.py").write_text(probe)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr
