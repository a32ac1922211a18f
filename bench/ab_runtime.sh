#!/usr/bin/env bash
# A/B of the runtime's request path: the same run, the same machine, interleaved rounds (A B, B A, ...),
# wrk pinned as in bench/compare.py (server on CPU 1). Only the runtime: no peer servers.
#   bash bench/ab_runtime.sh BEFORE [ROUNDS] [compare.py arguments...]
#   bash bench/ab_runtime.sh be413d1 4 --models tiny conv --conc 1 32 --secs 4
# B is HEAD's committed runtime (`git archive`, so nobody's uncommitted edits count). A is the same
# tree with the request path (AB_FILES: httpserver.py app.py codec.py) as it was at BEFORE, and
# __main__.py's `limits=` argument dropped to fit that older HttpServer: everything else (metrics,
# model loading) is identical in A and B, so the difference is the request path's alone.
# Each tree goes first on PYTHONPATH (the .venv's packages are shared). Output: one JSON row per
# cell tagged "ab": "A" or "B" in $AB_OUT, then medians per cell (bench/ab_summary.py).
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: ab_runtime.sh BEFORE [ROUNDS] [compare.py args]}
rounds=${2:-4}
shift $(( $# >= 2 ? 2 : 1 ))
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--models tiny conv --conc 1 32 --secs 4)
files=${AB_FILES:-httpserver.py app.py codec.py}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/ab-runtime-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/A" "$tmp/B"
git archive HEAD runtime | tar -x -C "$tmp/A"
git archive HEAD runtime | tar -x -C "$tmp/B"
pkg=runtime/modeldeploy/runtime
for f in $files; do git show "$before:$pkg/$f" > "$tmp/A/$pkg/$f"; done
sed -i 's/, limits=cfg\.limits)/)/' "$tmp/A/$pkg/__main__.py"
PY=.venv/bin/python
[ -f ../shared/bench/models/tiny.onnx ] || "$PY" ../shared/bench/make_models.py >&2
out=${AB_OUT:-/tmp/ab-runtime-$(date +%Y%m%d-%H%M%S).jsonl}
: > "$out"
echo "machine load before: $(cut -d' ' -f1-3 /proc/loadavg); B=$(git rev-parse --short HEAD), A=B with $files at $before" >&2
run() {  # $1 = A|B
  PYTHONPATH="$tmp/$1/runtime" "$PY" bench/compare.py --servers project "${args[@]}" \
    --project-args "${RUNTIME_FLAGS:---max-batch-size 32 --max-delay-ms 2}" \
    | grep '^{' | sed "s/^{/{\"ab\": \"$1\", /" >> "$out"
}
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) = 1 ]; then run A; run B; else run B; run A; fi
done
echo "machine load after: $(cut -d' ' -f1-3 /proc/loadavg); rows: $out" >&2
"$PY" bench/ab_summary.py "$out"
