"""kstatus readings (sigs.k8s.io/cli-utils `status.Compute`) of a Kubernetes object.

The `kstatus` binary is built from hack/kstatus by hack/cluster/build-bins.sh into the same
cache directory as the control plane. kstatus is what kpt, Flux, Config Sync and cli-utils'
applier use to decide whether an object is reconciled: `Current`, `InProgress`, `Failed`,
`Terminating`, `NotFound` or `Unknown`.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from .paths import bin_dir

STATUSES = ("InProgress", "Failed", "Current", "Terminating", "NotFound", "Unknown")


def binary() -> str:
    path = bin_dir() / "kstatus"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make cluster-bins` (needs the Go toolchain)")
    return str(path)


def compute_full(obj: dict[str, Any]) -> dict[str, Any]:
    """The whole result: {"status": ..., "message": ..., "conditions": [...] (kstatus' own)}."""
    proc = subprocess.run([binary()], input=json.dumps(obj), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"kstatus failed ({proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def compute(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as kstatus' `status.Compute` reads `obj`."""
    r = compute_full(obj)
    return str(r["status"]), str(r.get("message", ""))
