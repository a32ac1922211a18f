#!/usr/bin/env bash
# Builds KWOK (sigs.k8s.io/kwok, the fake-node and fake-pod controller Kubernetes' own scalability work
# uses) from its Go module into a per-version cache outside the repository, for bench/scale.py:
#   $CACHE/bin/kwok-$KWOK_VERSION/kwok
#   $CACHE/bin/kwok-$KWOK_VERSION/stages.yaml   (its "fast" node and pod stages, from the same module)
# A second run costs nothing. Prints the binary's path.
set -euo pipefail
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
OUT="$CACHE/bin/kwok-$KWOK_VERSION"
if [ -x "$OUT/kwok" ] && [ -s "$OUT/stages.yaml" ]; then echo "$OUT/kwok"; exit 0; fi
command -v go >/dev/null || { echo "go toolchain not found: cannot build KWOK for bench/scale.py" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$OUT.tmp.$$"
trap 'rm -rf "$OUT.tmp.$$"; echo "build-kwok.sh: failed at line $LINENO (the Go module proxy must serve sigs.k8s.io/kwok@$KWOK_VERSION)" >&2' ERR
GOBIN="$OUT.tmp.$$" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml \
         pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  cat "$src/kustomize/stage/$f"; echo "---"
done > "$OUT.tmp.$$/stages.yaml"
rm -rf "$OUT"; mv "$OUT.tmp.$$" "$OUT"
echo "$OUT/kwok"
