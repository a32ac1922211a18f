"""The namespace-package layout: a root folder named operator/ must never shadow the standard library."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stdlib_operator_and_our_package_from_the_repository_root() -> None:
    code = (
        "import operator, modeldeploy.operator, modeldeploy.runtime, collections;"
        "print(operator.__file__); print(modeldeploy.operator.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "site-packages" not in out[0] or "lib/python" in out[0]
    assert not out[0].startswith(str(ROOT)), out[0]
    assert out[1].startswith(str(ROOT / "operator" / "modeldeploy" / "operator")), out[1]


def test_no_modeldeploy_init_anywhere() -> None:
    for root in ("operator", "runtime", "hack/localcluster"):
        assert not (ROOT / root / "modeldeploy" / "__init__.py").exists()
        assert not (ROOT / root / "__init__.py").exists()


def test_help_lists_the_pass_and_the_rollout_phases_in_order() -> None:
    """A newcomer's map: `python -m modeldeploy.operator --help` names each part of a pass and each phase."""
    out = subprocess.run(
        [sys.executable, "-m", "modeldeploy.operator", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    order = [
        "read.read",
        "rollout.plan",
        "enact.enact",
        "revisions.retire_expired",
        "controls.spec_pause",
        "gates.invalid",
        "controls.retry",
        "revisions.follow_spec",
        "controls.abort",
        "controls.promote_full",
        "steps.run",
        "promotion.promote",
        "status.result",
    ]
    positions = [out.index(name) for name in order]
    assert positions == sorted(positions)


def test_no_operator_module_over_400_lines() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in (ROOT / "operator" / "modeldeploy" / "operator").rglob("*.py")
    }
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
