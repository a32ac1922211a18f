#!/usr/bin/env bash
# `make bench`: this runtime beside raw onnxruntime, the minimal uvicorn+orjson server, KServe and
# MLServer (defaults and tuned), all in one run of ../shared/bench/run_matrix.py, then the
# binary-tensor cells that the shared harness lacks (bench/compare.py). See bench/README.md.
#   bash bench/run.sh                       # full: wrk pinned, tiny/medium/conv, concurrency 1/8/32
#   bash bench/run.sh --quick               # smoke test (arguments go to run_matrix.py)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${BENCH_SHARED:-$ROOT/../shared/bench}
BPY=/tmp/bench-venv/bin/python
[ -x "$BPY" ] || bash "$SHARED/setup_venvs.sh"
[ -f "$SHARED/models/tiny.onnx" ] || "$BPY" "$SHARED/make_models.py"
[ -x "$ROOT/.venv/bin/python" ] || { echo "no .venv: run make install first" >&2; exit 1; }

# One command serves every model: batching on (it costs one event-loop turn at concurrency 1).
RUNTIME_FLAGS=${RUNTIME_FLAGS:---max-batch-size 32 --max-delay-ms 2}
export BENCH_PROJECT_CMD="$ROOT/.venv/bin/python -m modeldeploy.runtime --model-name {model} --model-uri file://{model_path} --host 127.0.0.1 --port {port} $RUNTIME_FLAGS"
OUT=${BENCH_OUT:-/tmp/bench-results/$(date +%Y%m%d-%H%M%S)}

echo "machine load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BPY" "$SHARED/run_matrix.py" --modes wrk-pinned --tuned-modes wrk-pinned --out "$OUT" "$@"
"$BPY" "$ROOT/bench/compare.py" --servers baseline project --models tiny medium conv --conc 1 32 --binary \
  --project-args "$RUNTIME_FLAGS" | tee "$OUT/compare.txt"
echo "machine load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results: $OUT (report.md, compare.txt)"
