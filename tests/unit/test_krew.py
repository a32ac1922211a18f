"""The krew package of `kubectl modeldeploy`: hack/krew/build.sh makes the archive and fills in the
manifest template (deploy/krew/modeldeploy.yaml) as krew-release-bot would; the real krew (built from its
Go module by hack/krew/build-krew.sh) validates and installs them offline, and the installed plugin runs
on the system's python3 without the project's virtualenv, through the real kubectl."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from modeldeploy.localcluster.paths import kubectl

ROOT = Path(__file__).resolve().parents[2]


def krew() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "krew" / "build-krew.sh")], capture_output=True, text=True, check=True, timeout=900
    ).stdout
    return out.strip().split("KREW_BIN=", 1)[1] + "/krew"


def test_krew_installs_the_archive_and_the_plugin_runs_on_its_own(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    built = subprocess.run(
        ["bash", "hack/krew/build.sh", "v0.1.0", "https://example.invalid/kubectl-modeldeploy.tar.gz"],
        cwd=ROOT,
        env={**os.environ, "OUT": str(out)},
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"hack/krew/build.sh failed:\n{built.stderr[-3000:]}"
    manifest = yaml.safe_load((out / "modeldeploy.yaml").read_text())
    assert manifest["metadata"]["name"] == "modeldeploy" and manifest["spec"]["version"] == "v0.1.0"
    (platform,) = manifest["spec"]["platforms"]
    assert platform["bin"] == "kubectl-modeldeploy" and len(platform["sha256"]) == 64
    root = tmp_path / "krew-root"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KREW_ROOT": str(root)}
    p = subprocess.run(
        [
            krew(),
            "install",
            f"--manifest={out / 'modeldeploy.yaml'}",
            f"--archive={out / 'kubectl-modeldeploy.tar.gz'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "Installed plugin: modeldeploy" in p.stderr + p.stdout
    env["PATH"] = f"{root / 'bin'}:/usr/bin:/bin"  # the system's python3, not the project's venv
    p = subprocess.run(
        [kubectl(), "modeldeploy", "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert p.returncode == 0 and "approve" in p.stdout and "130 interrupted" in p.stdout, p.stderr
    # the bundled kubernetes client reads a kubeconfig and reaches for its server: a clear error, exit 5
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
                "current-context": "x",
            }
        )
    )
    p = subprocess.run(
        [kubectl(), "modeldeploy", "list"],
        env={**env, "KUBECONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 5 and "cannot reach the API server" in p.stderr and "Traceback" not in p.stderr, p.stderr
