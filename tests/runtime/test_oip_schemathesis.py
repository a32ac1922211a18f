"""Schemathesis against the Open Inference Protocol v2 REST description (issue 14): every phase
(coverage, fuzzing, stateful) on the real runtime; no server error, and every method the spec does
not list answered 405 with an `Allow` header that names the ones it does.

The spec (tests/runtime/specs/oip-v2-rest.yaml) is generic; this test pins the path parameters to the
served model's name and version so that requests reach the inference code rather than a 404.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import start_server

pytestmark = pytest.mark.slow

SPEC = Path(__file__).parent / "specs" / "oip-v2-rest.yaml"
CHECKS = "not_a_server_error,unsupported_method,allow_header_conformance"


def test_schemathesis_finds_no_server_error_and_no_missing_allow(
    model_files: ModelFiles, log_dir: Path, tmp_path: Path
) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    params = spec["components"]["parameters"]
    params["model_name"]["schema"] = {"type": "string", "enum": ["echo"]}
    params["model_version"]["schema"] = {"type": "string", "enum": ["1"]}
    pinned = tmp_path / "oip-v2-rest.yaml"
    pinned.write_text(yaml.safe_dump(spec))
    s = start_server("echo", str(model_files.echo), "--max-body-bytes", str(1 << 20), log_dir=log_dir)
    try:
        out = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli", "run", str(pinned), "--url", s.url),
                *("--checks", CHECKS, "--max-examples", "60", "--seed", "14", "--workers", "1", "--no-color"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        assert s.stop() == 0
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout
    log = s.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
