#!/usr/bin/env python3
"""In-process A/B of the runtime's request path: the cost per request of two versions of the HTTP
protocol, the App and the codec, driven through a fake transport (no sockets, no wrk) in one run.

    .venv/bin/python bench/request_path_micro.py --before be413d1 --rounds 100
    .venv/bin/python bench/request_path_micro.py --before be413d1 --measure instructions
    .venv/bin/python bench/request_path_micro.py --before HEAD --files httpserver.py   # one file's edits

The trees are made as `bench/ab_runtime.sh` makes them: B is this working tree's `runtime/` (or
`--base REF`'s, from git; `--after REF` takes the request path files from REF), A is the same tree
with the request path (`--files`, default httpserver.py, app.py, codec.py) as it was at `--before`;
everything else (metrics, batching, model) is the same in both. Each version runs in worker
processes of its own (its tree first on PYTHONPATH), serving the bench's tiny model
(`../shared/bench/make_models.py`, MLP 32-64-10) with the bench's flags (`--max-batch-size 32
--max-delay-ms 2`) on uvloop. A worker listens nowhere: each connection is an `HttpProtocol` on a
fake transport, fed bytes as one socket read would bring them, as wrk sends them (v2 JSON of one
FP32 row; `Host`, `Content-Type`, `Content-Length`). Scenarios:

- `c1`: one connection, one request per read (with one connection the batcher runs it inline);
- `c32`: 32 connections, one request each per read, then the loop turn that runs their batch;
- `pipe8`: one connection, 8 pipelined requests in one read, loop turns until all are answered;
- `live`: `GET /v2/health/live`, one per read.

Two measures:

- `--measure time` (default): CPU time of the worker thread (`thread_time_ns`) per request.
  Samples of one scenario alternate A B / B A round by round, and each round uses the next of
  `--pairs` worker pairs (one process's memory layout and hash seed are worth about 1% either way),
  so the machine's other load falls on both. Reported: the median of each version, their ratio, and
  the median and quartiles of the per-round ratios. An A/A run (`--before HEAD` on a clean tree)
  reads 0.99-1.01 with 3 pairs and 0.994-1.002 with 8 on a quiet machine; on a loaded one the
  quartiles say how far to trust it. About 30 s with the defaults.
- `--measure instructions`: instructions per request on the event loop's thread (where the whole
  request path runs, the batcher's inference included), counted by callgrind (valgrind), both
  versions at once, the median of 7 windows per scenario. Other threads are left out: an ONNX
  Runtime thread of the session's own wakes at times and would land in some windows. The machine's
  other load does not move these counts (repeat runs agree within ~100 instructions), but they
  weigh an instruction of ONNX Runtime's dense kernels like one of the interpreter's branchy code,
  which takes several times longer: read B - A, not B/A. About a minute on a quiet machine.
- `--measure bytecodes`: Python bytecode instructions executed per request, per function of the
  runtime's modules (an opcode trace, `sys.settrace` with `f_trace_opcodes`), A beside B. Exact and
  a few seconds long: it says where the interpreter's steps go. Neither count is the time: an
  interpreter step costs several ns whatever its machine instructions, a call or a generator costs
  more than its bytecodes, a C call that allocates costs more instructions than ns.

Before measuring time, the first answer of each scenario is compared between A and B byte for
byte. Set-up objects are frozen out of the garbage collector (`gc.freeze`) before measuring. A
measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import uvloop

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared" / "bench"))
PKG = "runtime/modeldeploy/runtime"
SCENARIOS = ("c1", "c32", "pipe8", "live")
#: operations per sample: about 10-30 ms of CPU each
DEFAULT_REPS = {"c1": 1000, "c32": 40, "pipe8": 150, "live": 4000}
CONNECTIONS = 32
PIPELINED = 8
WINDOWS = 7  # counted windows per scenario under callgrind
#: operations per counted window: 100-400 requests
INSTRUCTION_REPS = {"c1": 100, "c32": 8, "pipe8": 40, "live": 400}


# ---------------------------------------------------------------------------------------------- worker


class FakeTransport(asyncio.Transport):
    """What HttpProtocol uses of a uvloop TCP transport; counts answers (one status line each) and
    wakes `wait_for` once the wanted number has been written."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = 0
        self.first = b""
        self.closing = False
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if not self.first:
            self.first = data
        self.answers += data.count(b"HTTP/1.1 ")  # never inside the tiny model's JSON answers
        if self.waiter is not None and self.answers >= self.want:
            self.waiter.set_result(None)
            self.waiter = None

    async def wait_for(self, answers: int) -> None:
        if self.answers < answers:
            self.want = answers
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def infer_request(model: str, body: bytes) -> bytes:
    return (
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1:18190\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (model.encode(), len(body), body)
    )


LIVE_REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1:18190\r\n\r\n"


class Worker:
    """One version of the runtime: an App with the tiny model and a batcher, and unstarted HttpServers
    (one per scenario, so that each sees its own connection count) whose connections are fake."""

    def __init__(self, model_path: Path) -> None:
        from modeldeploy.runtime import config, httpserver  # noqa: PLC0415  (from this worker's tree)
        from modeldeploy.runtime.app import App  # noqa: PLC0415
        from modeldeploy.runtime.batching import Batcher  # noqa: PLC0415
        from modeldeploy.runtime.metrics import Metrics  # noqa: PLC0415
        from modeldeploy.runtime.model import Model  # noqa: PLC0415

        if not Path(httpserver.__file__).resolve().is_relative_to(Path.cwd()):
            raise RuntimeError(f"{httpserver.__file__} is not from this worker's tree ({Path.cwd()})")
        self.httpserver = httpserver
        name = "tiny"
        flags = {"--model-name": name, "--model-uri": f"file://{model_path}", "--port": "0"}
        flags |= {"--max-batch-size": "32", "--max-delay-ms": "2"}  # as bench/ab_runtime.sh runs it
        cfg = config.parse([x for kv in flags.items() for x in kv], environ={})
        metrics = Metrics(cfg.model_name, cfg.model_version, cfg.revision, cfg.track, cfg.prediction_kind)
        self.app = App(cfg, metrics)
        model = Model.load(model_path)
        model.warm_up()
        self.servers: dict[str, Any] = {s: self._server(cfg) for s in SCENARIOS}
        self.current = self.servers["c1"]
        self.app.batcher = Batcher(
            model,
            metrics,
            max_batch_size=cfg.max_batch_size,
            max_delay_s=cfg.max_delay_ms / 1000.0,
            receiving=lambda: int(self.current.receiving),
            connections=lambda: len(self.current.connections),
            on_outputs=self.app.record_outputs,
        )
        self.app.set_model(model, "0" * 64, 0.0)
        self.app.set_ready(True)
        row = [0.5 - i / 64 for i in range(32)]
        body = json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 32], "datatype": "FP32", "data": row}]}, separators=(",", ":")
        ).encode()
        self.infer = infer_request(name, body)
        self.conns: dict[str, list[tuple[Any, FakeTransport]]] = {
            s: [self._connect(self.servers[s]) for _ in range(CONNECTIONS if s == "c32" else 1)] for s in SCENARIOS
        }
        self.run: dict[str, Callable[[int], Any]] = {
            "c1": self._c1,
            "c32": self._c32,
            "pipe8": self._pipe8,
            "live": self._live,
        }

    def _server(self, cfg: Any) -> Any:
        server_cls: Any = self.httpserver.HttpServer
        try:  # the HttpServer before the limits takes no `limits`
            return server_cls(self.app, "127.0.0.1", 0, cfg.max_body_bytes, access_log=False, limits=cfg.limits)
        except TypeError:
            return server_cls(self.app, "127.0.0.1", 0, cfg.max_body_bytes, access_log=False)

    def _connect(self, server: Any) -> tuple[Any, FakeTransport]:
        proto = self.httpserver.HttpProtocol(server)
        t = FakeTransport()
        proto.connection_made(t)
        return proto, t

    async def _c1(self, reps: int) -> None:
        self.current = self.servers["c1"]
        proto, t = self.conns["c1"][0]
        feed, data = proto.data_received, self.infer
        want = t.answers + reps
        for _ in range(reps):
            feed(data)
        await t.wait_for(want)

    async def _c32(self, reps: int) -> None:
        self.current = self.servers["c32"]
        conns, data = self.conns["c32"], self.infer
        last = conns[-1][1]
        for _ in range(reps):
            want = last.answers + 1
            for proto, _t in conns:
                proto.data_received(data)
            await last.wait_for(want)

    async def _pipe8(self, reps: int) -> None:
        self.current = self.servers["pipe8"]
        proto, t = self.conns["pipe8"][0]
        data = self.infer * PIPELINED
        for _ in range(reps):
            want = t.answers + PIPELINED
            proto.data_received(data)
            await t.wait_for(want)

    async def _live(self, reps: int) -> None:
        self.current = self.servers["live"]
        proto, t = self.conns["live"][0]
        feed = proto.data_received
        want = t.answers + reps
        for _ in range(reps):
            feed(LIVE_REQUEST)
        await t.wait_for(want)

    async def warm_up(self) -> None:
        """A few operations of each scenario (which also fills each connection's first answer), then
        everything made so far is frozen out of the garbage collector's view: what it collects
        afterwards is what the requests allocate, not the set-up's (model, imports) objects."""
        for s in SCENARIOS:
            await self.run[s](20)
        gc.collect()
        gc.freeze()

    def first_answers(self) -> dict[str, str]:
        return {s: c[0][1].first.decode("latin-1") for s, c in self.conns.items()}


def per_op(scenario: str) -> int:
    return CONNECTIONS if scenario == "c32" else PIPELINED if scenario == "pipe8" else 1


async def worker_main(model_path: Path) -> None:
    """Commands on stdin, one per line: `SCENARIO REPS` -> CPU ns per request; `answers` -> the first
    answer of each scenario (JSON)."""
    w = Worker(model_path)
    await w.warm_up()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "answers":
            print(json.dumps(w.first_answers()), flush=True)
            continue
        scenario, reps = cmd[0], int(cmd[1])
        c0 = time.thread_time_ns()
        await w.run[scenario](reps)
        c1 = time.thread_time_ns()
        print(f"{(c1 - c0) / (reps * per_op(scenario)):.1f}", flush=True)


def opcode_tracer(pkg: str, counts: dict[str, int]) -> Callable[[Any, str, Any], Any]:
    """A sys.settrace function counting executed bytecodes per function of the modules under `pkg`."""

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            if code.co_filename.startswith(pkg):
                key = f"{Path(code.co_filename).stem}:{code.co_name}"
                counts[key] = counts.get(key, 0) + 1
        return trace

    return trace


async def bytecodes_main(model_path: Path, plan: list[tuple[str, int]]) -> None:
    """Print, per scenario, JSON {"module:function": bytecodes per request} for the runtime's modules."""
    w = Worker(model_path)
    await w.warm_up()
    pkg = str(Path(str(w.httpserver.__file__)).parent)
    for s, reps in plan:
        counts: dict[str, int] = {}
        sys.settrace(opcode_tracer(pkg, counts))
        await w.run[s](reps)
        sys.settrace(None)
        n = reps * per_op(s)
        print(json.dumps({"scenario": s, "per_request": {k: v / n for k, v in counts.items()}}), flush=True)


async def count_main(model_path: Path, plan: list[tuple[str, int]]) -> None:
    """Under callgrind `--dump-before=getppid`: each os.getppid() dumps the instructions counted since
    the last dump, so the dumps after the set-up's are WINDOWS windows of REPS operations per scenario."""
    w = Worker(model_path)
    await w.warm_up()
    for s, reps in plan:
        for _ in range(WINDOWS):
            os.getppid()
            await w.run[s](reps)
    os.getppid()


# ---------------------------------------------------------------------------------------------- parent


def make_tree(dest: Path, base: str | None, files: list[str], ref: str | None) -> Path:
    """`runtime/` of the working tree (base None) or of `base`, with `files` from `ref` (None: as is)."""
    if base is None:
        shutil.copytree(REPO / "runtime", dest / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", base, "runtime"], cwd=REPO, check=True, capture_output=True)
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    if ref is not None:
        for f in files:
            src = subprocess.run(["git", "show", f"{ref}:{PKG}/{f}"], cwd=REPO, check=True, capture_output=True)
            (dest / PKG / f).write_bytes(src.stdout)
    return dest / "runtime"


def tiny_model(dest: Path) -> Path:
    sys.path.insert(0, str(SHARED))
    make_models: Any = importlib.import_module("make_models")
    path = dest / "tiny.onnx"
    make_models.onnx.save(make_models.build_tiny(), path)
    return path


def worker_cmd(model: Path, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", str(model), *extra]


class Proc:
    def __init__(self, tree: Path, model: Path) -> None:
        self.p = subprocess.Popen(
            worker_cmd(model),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=tree.parent,
        )
        assert self.p.stdin is not None and self.p.stdout is not None
        self.stdin: IO[str] = self.p.stdin
        self.stdout: IO[str] = self.p.stdout
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker for {tree} did not start")

    def ask(self, line: str) -> str:
        self.stdin.write(line + "\n")
        self.stdin.flush()
        return self.stdout.readline().strip()

    def close(self) -> None:
        self.stdin.close()
        self.p.wait(timeout=30)


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[1], q[2]


def reps_of(scenario: str, scale: float, reps: dict[str, int] = DEFAULT_REPS) -> int:
    return max(1, int(reps[scenario] * scale))


def measure_time(trees: dict[str, Path], model: Path, a: argparse.Namespace) -> None:
    # several processes per version, used round by round: one process's memory layout and hash seed
    # (about 1% either way) does not stay on one side
    pairs = [{k: Proc(t, model) for k, t in trees.items()} for _ in range(a.pairs)]
    try:
        answers = {k: json.loads(p.ask("answers")) for k, p in pairs[0].items()}
        for s in a.scenarios:
            if not answers["A"][s].startswith("HTTP/1.1 200 ") or answers["A"][s] != answers["B"][s]:
                print(f"warning: the first {s} answers:\n A {answers['A'][s]!r}\n B {answers['B'][s]!r}")
        cpu: dict[tuple[str, str], list[float]] = {(s, k): [] for s in a.scenarios for k in trees}
        ratios: dict[str, list[float]] = {s: [] for s in a.scenarios}
        t_start = time.monotonic()
        for r in range(a.rounds):
            procs = pairs[r % len(pairs)]
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for s in a.scenarios:
                got = {k: float(procs[k].ask(f"{s} {reps_of(s, a.scale)}")) for k in order}
                for k, v in got.items():
                    cpu[s, k].append(v)
                ratios[s].append(got["B"] / got["A"])
    finally:
        for procs in pairs:
            for p in procs.values():
                p.close()
    print(f"{a.rounds} rounds in {time.monotonic() - t_start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    print(f"{'scenario':8} {'A ns/req':>9} {'B ns/req':>9} {'B/A':>7} {'paired B/A median [q1, q3]':>28}")
    for s in a.scenarios:
        ma, mb = statistics.median(cpu[s, "A"]), statistics.median(cpu[s, "B"])
        q1, q2, q3 = quartiles(ratios[s])
        print(f"{s:8} {ma:9.0f} {mb:9.0f} {mb / ma:7.3f} {q2:10.3f} [{q1:.3f}, {q3:.3f}]")
        row = {"scenario": s, "a_ns": round(ma), "b_ns": round(mb), "ratio": round(mb / ma, 4), "paired": round(q2, 4)}
        print("JSON " + json.dumps(row))


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure_instructions(trees: dict[str, Path], model: Path, a: argparse.Namespace, tmp: Path) -> None:
    """Instructions per request under callgrind, both versions at once (PYTHONHASHSEED fixed)."""
    plan = [(s, reps_of(s, a.scale, INSTRUCTION_REPS)) for s in a.scenarios]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for k, tree in trees.items():
        out = tmp / f"cg-{k}"
        out.mkdir()
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--dump-before=getppid"]
        cmd += [f"--callgrind-out-file={out}/cg.out"]
        cmd += worker_cmd(model, "--count", ",".join(f"{s}:{n}" for s, n in plan))
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        procs[k] = subprocess.Popen(cmd, env=env, cwd=tree.parent, stderr=subprocess.DEVNULL)
    t_start = time.monotonic()
    per_req: dict[tuple[str, str], float] = {}
    for k, p in procs.items():
        if p.wait() != 0:
            raise RuntimeError(f"the callgrind run of {k} failed")
        for i, (s, n) in enumerate(plan):  # dump 1 is the set-up's; -01: the loop's thread
            windows = [_totals(tmp / f"cg-{k}" / f"cg.out.{2 + WINDOWS * i + j}-01") for j in range(WINDOWS)]
            per_req[s, k] = statistics.median(windows) / (n * per_op(s))
            if a.verbose:
                print(k, s, "windows:", [round(w / (n * per_op(s))) for w in windows])
    print(f"callgrind, {time.monotonic() - t_start:.0f} s")
    print(f"{'scenario':8} {'A instr/req':>12} {'B instr/req':>12} {'B - A':>7} {'B/A':>7}")
    for s, _n in plan:
        ia, ib = per_req[s, "A"], per_req[s, "B"]
        print(f"{s:8} {ia:12.0f} {ib:12.0f} {ib - ia:+7.0f} {ib / ia:7.3f}")
        row = {"scenario": s, "a_instr": round(ia), "b_instr": round(ib), "ratio": round(ib / ia, 4)}
        print("JSON " + json.dumps(row))


def measure_bytecodes(trees: dict[str, Path], model: Path, a: argparse.Namespace) -> None:
    """Bytecodes per request of the runtime's own functions, A beside B (`--verbose`: every function)."""
    plan = ",".join(f"{s}:{reps_of(s, a.scale, INSTRUCTION_REPS)}" for s in a.scenarios)
    got: dict[str, dict[str, dict[str, float]]] = {}
    for k, tree in trees.items():
        env = {**os.environ, "PYTHONPATH": str(tree)}
        out = subprocess.run(
            worker_cmd(model, "--bytecodes", plan), env=env, cwd=tree.parent, check=True, capture_output=True, text=True
        ).stdout
        got[k] = {row["scenario"]: row["per_request"] for row in map(json.loads, out.splitlines())}
    for s in a.scenarios:
        ca, cb = got["A"][s], got["B"][s]
        ta, tb = sum(ca.values()), sum(cb.values())
        print(f"{s}: A {ta:.0f}, B {tb:.0f} bytecodes per request in the runtime's modules, B - A {tb - ta:+.0f}")
        for f in sorted(set(ca) | set(cb), key=lambda f: -abs(cb.get(f, 0) - ca.get(f, 0))):
            d = cb.get(f, 0) - ca.get(f, 0)
            if a.verbose or abs(d) >= 0.5:
                print(f"  {f:40} {ca.get(f, 0):8.1f} {cb.get(f, 0):8.1f} {d:+8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="be413d1", help="A: the request path files at this commit")
    ap.add_argument("--after", default=None, help="B: the request path files at this commit (default: as in base)")
    ap.add_argument("--base", default=None, help="the tree both start from (default: this working tree)")
    ap.add_argument("--files", nargs="+", default=["httpserver.py", "app.py", "codec.py"])
    ap.add_argument("--measure", choices=("time", "instructions", "bytecodes"), default="time")
    ap.add_argument("--rounds", type=int, default=120)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the operations per sample")
    ap.add_argument("--pairs", type=int, default=6, help="worker processes per version, used in turn")
    ap.add_argument("--verbose", action="store_true", help="instructions: print every window's count")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--count", help=argparse.SUPPRESS)
    ap.add_argument("--bytecodes", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        if a.count is not None or a.bytecodes is not None:
            plan = [(s, int(n)) for s, n in (x.split(":") for x in (a.count or a.bytecodes).split(","))]
            uvloop.run(count_main(a.worker, plan) if a.count is not None else bytecodes_main(a.worker, plan))
        else:
            uvloop.run(worker_main(a.worker))
        return
    tmp = Path(tempfile.mkdtemp(prefix="request-path-micro-"))
    try:
        model = tiny_model(tmp)
        trees = {
            "A": make_tree(tmp / "A", a.base, a.files, a.before),
            "B": make_tree(tmp / "B", a.base, a.files, a.after),
        }
        after = a.after or ("the working tree" if a.base is None else a.base)
        print(f"A = {' '.join(a.files)} at {a.before}, B = {after}")
        if a.measure == "time":
            measure_time(trees, model, a)
        elif a.measure == "bytecodes":
            measure_bytecodes(trees, model, a)
        else:
            measure_instructions(trees, model, a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
