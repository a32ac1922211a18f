#!/usr/bin/env bash
# Builds krew (the kubectl plugin manager) from its Go module, as the module itself (its own go.sum),
# into a per-version cache outside the repository:
#   ${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/bin/krew-$KREW_VERSION/krew
# tests/unit/test_krew.py installs the plugin's archive with it (`krew install --manifest --archive`,
# offline). Stdout: one line KREW_BIN=<dir>; the rest goes to stderr. A second run costs nothing.
set -Eeuo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
BIN="$CACHE/bin/krew-$KREW_VERSION"
if [ -x "$BIN/krew" ]; then echo "KREW_BIN=$BIN"; exit 0; fi

log() { echo "build-krew.sh: $*" >&2; }
die() { log "$*"; exit 2; }
command -v go >/dev/null || die "go not found: krew is built from its Go module"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
mod="sigs.k8s.io/krew@$KREW_VERSION"
src=$(go mod download -json "$mod" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); sys.exit(e) if e else print(d["Dir"])') \
  || die "go mod download $mod failed (GOPROXY=$(go env GOPROXY)): the Go module proxy must serve it"
work="$CACHE/build/krew-$KREW_VERSION"
rm -rf "$work"; mkdir -p "$(dirname "$work")" "$BIN"; cp -r "$src" "$work"; chmod -R u+w "$work"
start=$(date +%s)
(cd "$work" && CGO_ENABLED=0 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" \
    -o "$BIN/krew.tmp" ./cmd/krew) >&2 || die "go build krew failed"
"$BIN/krew.tmp" version >&2 || die "the freshly built krew does not run"
mv "$BIN/krew.tmp" "$BIN/krew"
rm -rf "$work"
log "built krew $KREW_VERSION in $(( $(date +%s) - start ))s"
echo "KREW_BIN=$BIN"
