#!/usr/bin/env python3
"""Quick side-by-side: this runtime against the minimal baseline server, wrk pinned (client CPU 0,
server CPU 1), JSON or binary tensor bodies. Complements ../shared/bench/run_matrix.py, which has
no binary-tensor cells.

    /tmp/bench-venv/bin/python bench/compare.py --models tiny conv --conc 1 32 --binary

Runs from the repository root; the project runtime runs with this repository's .venv python.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(SHARED))
benchlib: Any = importlib.import_module("benchlib")  # the shared harness's helpers (not a package)

PY_BASE = os.environ.get("BENCH_PY", "/tmp/bench-venv/bin/python")
PROJECT_PY = os.environ.get("PROJECT_PY", str(REPO / ".venv" / "bin" / "python"))


def server_cmd(kind: str, model: str, port: int, extra: list[str]) -> list[str]:
    if kind == "baseline":
        return [PY_BASE, str(SHARED / "servers" / "baseline_server.py"), "--model", model, "--port", str(port)]
    return [
        PROJECT_PY,
        "-m",
        "modeldeploy.runtime",
        "--model-name",
        model,
        "--model-uri",
        f"file://{benchlib.model_path(model)}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, model: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # poll
    raise RuntimeError("server not ready")


def binary_body(model: str, batch: int = 1) -> tuple[bytes, int]:
    x = benchlib.make_input(model, batch)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return head + x.tobytes(), len(head)


def wrk(url: str, body: Path, header_len: int | None, conc: int, secs: int) -> dict[str, float]:
    env = {**os.environ, "WRK_BODY_FILE": str(body), "WRK_HEADER_LENGTH": str(header_len or "")}
    cmd = [
        "taskset",
        "-c",
        "0",
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{secs}s",
        "--timeout",
        "10s",
        "-s",
        str(REPO / "bench" / "wrk_post_binary.lua"),
        url,
    ]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=secs + 30).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    w = json.loads(line[len("WRK_JSON ") :])
    errors = sum(v for k, v in w.items() if k.startswith("err_"))
    return {
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", nargs="+", default=["baseline", "project"])
    ap.add_argument("--models", nargs="+", default=["tiny"])
    ap.add_argument("--conc", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--binary", action="store_true", help="also binary-tensor bodies (project only)")
    ap.add_argument("--project-args", default="", help="extra runtime flags, e.g. '--max-batch-size 32'")
    a = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="mdbench-"))
    for model in a.models:
        json_body = tmp / f"{model}.json"
        json_body.write_bytes(benchlib.v2_body(model, 1))
        bin_data, hl = binary_body(model)
        bin_body = tmp / f"{model}.bin"
        bin_body.write_bytes(bin_data)
        for kind in a.servers:
            port = 18190
            cmd = server_cmd(kind, model, port, shlex.split(a.project_args))
            proc = subprocess.Popen(
                ["taskset", "-c", "1", *cmd],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO,
            )
            try:
                wait_ready(port, model)
                url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
                bodies: list[tuple[str, Path, int | None]] = [("json", json_body, None)]
                if a.binary and kind == "project":
                    bodies.append(("binary", bin_body, hl))
                for enc, body, h in bodies:
                    for conc in a.conc:
                        wrk(url, body, h, conc, 1)  # warm-up
                        cpu0 = cpu_seconds(proc.pid)
                        r = wrk(url, body, h, conc, a.secs)
                        done = r["rps"] * a.secs
                        r["srv_cpu_us_per_req"] = round(1e6 * (cpu_seconds(proc.pid) - cpu0) / max(done, 1), 1)
                        status = Path(f"/proc/{proc.pid}/status").read_text()
                        rss = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")))
                        row = {
                            "server": kind,
                            "model": model,
                            "body": enc,
                            "conc": conc,
                            **r,
                            "vmhwm_mib": round(rss / 1024, 1),
                        }
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    print(
        f"{'server':10} {'model':7} {'body':7} {'conc':>4} {'p50 us':>8} {'p99 us':>8} {'rps':>8} "
        f"{'cpu/req':>8} {'MiB':>6}"
    )
    for r in rows:
        print(
            f"{r['server']:10} {r['model']:7} {r['body']:7} {r['conc']:>4} {r['p50_us']:>8.0f} "
            f"{r['p99_us']:>8.0f} {r['rps']:>8.0f} {r['srv_cpu_us_per_req']:>8} {r['vmhwm_mib']:>6}"
        )


if __name__ == "__main__":
    main()
