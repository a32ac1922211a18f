#!/usr/bin/env python3
"""What the mirror costs the live path (issue 13): one stable runtime, mirror off and mirror at 100% in
alternating rounds of the same run, at each concurrency; and a check that the mirror never changes an
answer.

    .venv/bin/python bench/mirror_ab.py --model tiny --conc 1 8 --secs 5 --rounds 4

Stable runs pinned to CPU 1 with the bench's usual flags (`--max-batch-size 32 --max-delay-ms 2`) and
`--pod-info` pointing at a directory this script writes; the mirror is switched by rewriting the
annotation file (as the kubelet would), and each switch is confirmed from stable's log ("mirror on" /
"mirror off") before measuring. The candidate is a second runtime with the same model on CPU 0, beside
wrk (`-t1`, pinned to CPU 0 as in bench/compare.py). Prints one JSON line per cell, then a table of
medians per (concurrency, mirror); raw lines go to --out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(REPO))
benchlib: Any = importlib.import_module("benchlib")
compare: Any = importlib.import_module("bench.compare")

from modeldeploy.runtime import contract as c  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
#: as in bench/compare.py and ab_runtime.sh: RUNTIME_FLAGS replaces them (both runtimes)
FLAGS = os.environ.get("RUNTIME_FLAGS", "--max-batch-size 32 --max-delay-ms 2").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    model: str, port: int, cpu: str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", cpu, *compare.server_cmd("project", model, port, [*FLAGS, *extra])]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    compare.wait_ready(port, model)
    return proc


def write_annotations(pod: Path, mirror: dict[str, Any] | None) -> None:
    """The downward-API annotations file, replaced atomically."""
    text = "" if mirror is None else f"{c.POD_ANNOTATION_MIRROR}={json.dumps(json.dumps(mirror))}\n"
    tmp = pod / ".annotations.tmp"
    tmp.write_text(text)
    os.replace(tmp, pod / c.POD_INFO_ANNOTATIONS_FILE)


def wait_log(log: Path, needle: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(needle) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} x{count} not in {log}")
        time.sleep(0.02)  # poll


def outcomes(url: str, candidate: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    got = {o: 0.0 for o in c.MIRROR_OUTCOMES}
    for fam in text_string_to_metric_families(httpx.get(url + c.METRICS_PATH).text):
        for s in fam.samples:
            if s.name == c.METRIC_MIRROR_REQUESTS_TOTAL and s.labels["candidate"] == candidate:
                got[s.labels["outcome"]] += s.value
    return got


def value(url: str, name: str) -> float:
    """Sum of all samples of one metric on stable (any labels)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    text = httpx.get(url + c.METRICS_PATH).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name)


def answers(url: str, model: str, n: int) -> list[bytes]:
    """n varied requests (JSON and binary, 1 to 4 rows) on one connection: the answers' bytes."""
    out = []
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            x = benchlib.make_input(model, 1 + i % 4, seed=i)
            if i % 2:
                body, hl = compare.binary_body(model, 1 + i % 4)  # its header, with this request's data
                body = body[:hl] + np.ascontiguousarray(x, dtype="<f4").tobytes()
                r = client.post(
                    f"{url}/v2/models/{model}/infer", content=body, headers={"inference-header-content-length": str(hl)}
                )
            else:
                r = client.post(f"{url}/v2/models/{model}/infer", content=benchlib.v2_body(model, 1 + i % 4, seed=i))
            assert r.status_code == 200, r.text
            out.append(r.content)
            time.sleep(0.005)  # 200 requests/s: within the mirror's loop budget, so every copy is compared
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--conc", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--percent", type=float, default=100.0, help="the mirror's percent when on")
    ap.add_argument("--check", type=int, default=400, help="requests of the answers-identical check")
    ap.add_argument("--out", default=f"/tmp/mirror-ab-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    a = ap.parse_args()
    model = a.model
    tmp = Path(tempfile.mkdtemp(prefix="mirror-ab-"))
    pod = tmp / "podinfo"
    pod.mkdir()
    (pod / c.POD_INFO_LABELS_FILE).write_text(f'{c.POD_LABEL_TRACK}="stable"\n')
    write_annotations(pod, None)
    sport, cport = free_port(), free_port()
    slog, clog = tmp / "stable.log", tmp / "candidate.log"
    print(f"machine load before: {Path('/proc/loadavg').read_text().split()[:3]}; logs in {tmp}", file=sys.stderr)
    cand = start(model, cport, "0", clog, "--track", "shadow", "--revision", "cand")
    stable = start(model, sport, "1", slog, "--revision", "stable", env={c.ENV_POD_INFO: str(pod)})
    url = f"http://127.0.0.1:{sport}"
    body_file = tmp / "body.json"
    body_file.write_bytes(benchlib.v2_body(model, 1))
    rows: list[dict[str, Any]] = []
    ons = offs = 0
    current = False
    try:

        def mirror(on: bool, candidate: str) -> None:
            nonlocal ons, offs, current
            if not on and not current:
                return
            current = on
            if on:
                write_annotations(
                    pod, {"url": f"http://127.0.0.1:{cport}", "percent": a.percent, "candidate": candidate}
                )
                ons += 1
                wait_log(slog, "mirror on:", ons)
            else:
                write_annotations(pod, None)
                offs += 1
                wait_log(slog, "mirror off", offs)

        # answers never change: the same requests, mirror off then on, byte for byte
        plain = answers(url, model, a.check)
        mirror(True, "check")
        mirrored = answers(url, model, a.check)
        identical = sum(p == m for p, m in zip(plain, mirrored, strict=True))
        deadline = time.monotonic() + 10
        while sum(outcomes(url, "check").values()) < a.check and time.monotonic() < deadline:
            time.sleep(0.05)  # poll
        check = {"check": "answers", "requests": a.check, "identical": identical, "outcomes": outcomes(url, "check")}
        print(json.dumps(check), flush=True)
        rows.append(check)
        mirror(False, "")
        for r in range(a.rounds):
            for conc in a.conc:
                order = (False, True) if (r + conc) % 2 == 0 else (True, False)
                for on in order:
                    candidate = f"r{r}c{conc}"
                    mirror(on, candidate)
                    compare.wrk(f"{url}/v2/models/{model}/infer", body_file, None, conc, 1)  # warm-up
                    n0 = value(url, c.METRIC_REQUESTS_TOTAL)
                    cpu0 = compare.cpu_seconds(stable.pid)
                    res = compare.wrk(f"{url}/v2/models/{model}/infer", body_file, None, conc, a.secs)
                    cpu = compare.cpu_seconds(stable.pid) - cpu0
                    served = value(url, c.METRIC_REQUESTS_TOTAL) - n0
                    row = {"round": r, "conc": conc, "mirror": f"{a.percent:g}%" if on else "off", **res}
                    row["srv_cpu_us_per_req"] = cpu / max(served, 1) * 1e6
                    if on:
                        mirror(False, "")
                        row["outcomes"] = outcomes(url, candidate)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        for p in (stable, cand):
            p.terminate()
            p.wait(timeout=30)
        Path(a.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"machine load after: {Path('/proc/loadavg').read_text().split()[:3]}; rows: {a.out}", file=sys.stderr)
    summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> None:
    cells: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        if "conc" in row:
            cells.setdefault((row["conc"], row["mirror"]), []).append(row)
    print("| conc | mirror | p50 µs (median) | p99 µs | requests/s | CPU µs/req | copies agreed / dropped / error |")
    print("|---|---|---|---|---|---|---|")
    for conc in sorted({k[0] for k in cells}):
        base = cells.get((conc, "off"), [])
        for mode in sorted({k[1] for k in cells if k[0] == conc}, key=lambda m: m != "off"):
            rs = cells.get((conc, mode), [])
            if not rs:
                continue
            p50 = statistics.median(r["p50_us"] for r in rs)
            p99 = statistics.median(r["p99_us"] for r in rs)
            rps = statistics.median(r["rps"] for r in rs)
            cpu = statistics.median(r["srv_cpu_us_per_req"] for r in rs)
            extra = ""
            if mode != "off" and base:
                b50 = statistics.median(r["p50_us"] for r in base)
                brps = statistics.median(r["rps"] for r in base)
                extra = f" ({p50 / b50 - 1:+.1%} p50, {rps / brps - 1:+.1%} rps)"
                tot = {o: sum(r["outcomes"][o] for r in rs) for o in c.MIRROR_OUTCOMES}
                copies = f"{tot['agreed']:.0f} / {tot['dropped']:.0f} / {tot['candidate_error']:.0f}"
            else:
                copies = "-"
            print(f"| {conc} | {mode} | {p50:.0f}{extra} | {p99:.0f} | {rps:.0f} | {cpu:.1f} | {copies} |")
    # paired: each round's two cells ran back to back, so their ratio cancels the drift between rounds
    print()
    print("| conc | rounds | p50 on/off per round (median; each) | rps on/off (median) | CPU µs/req on-off (median) |")
    print("|---|---|---|---|---|")
    for conc in sorted({k[0] for k in cells}):
        by_round: dict[int, dict[str, dict[str, Any]]] = {}
        for row in rows:
            if row.get("conc") == conc:
                by_round.setdefault(row["round"], {})["off" if row["mirror"] == "off" else "on"] = row
        pairs = [(r["on"], r["off"]) for r in by_round.values() if "on" in r and "off" in r]
        if not pairs:
            continue
        p50s = [on["p50_us"] / off["p50_us"] for on, off in pairs]
        rpss = [on["rps"] / off["rps"] for on, off in pairs]
        cpus = [on["srv_cpu_us_per_req"] - off["srv_cpu_us_per_req"] for on, off in pairs]
        each = ", ".join(f"{x:.3f}" for x in p50s)
        print(
            f"| {conc} | {len(pairs)} | {statistics.median(p50s):.3f} ({each}) | {statistics.median(rpss):.3f} "
            f"| {statistics.median(cpus):+.1f} |"
        )


if __name__ == "__main__":
    main()
