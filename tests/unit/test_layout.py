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
