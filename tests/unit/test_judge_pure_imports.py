"""The analysis package's decisions are pure: its pure modules import no I/O library, directly or via a sibling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy" / "operator" / "analysis"
PURE = (
    "stats",
    "sequential",
    "evidence",
    "rates",
    "latency",
    "behaviour",
    "agreement",
    "judge",
    "measure",
    "promql",
    "samples",
    "target",
)
FORBIDDEN = ("httpx", "kopf", "kubernetes", "prometheus_client", "asyncio", "socket", "requests", "urllib")


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            out.add(prefix + (node.module or ""))
    return out


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    for name in imports_of(module):
        assert name.split(".")[0] not in FORBIDDEN, f"{module} imports {name}"
        if name.startswith(".") and not name.startswith(".."):
            sibling = name.lstrip(".").split(".")[0]
            assert sibling in PURE, f"{module} imports the impure sibling {sibling}"
        if name.startswith(".."):
            assert name.startswith("..api"), f"{module} imports {name} from outside the API models"
