#!/usr/bin/env bash
# Builds the real S3 server the runtime's S3 tests start on loopback: versitygw (Apache-2.0, posix
# backend), from its Go module as the module itself (its own go.sum), into a per-version cache outside
# the repository, as hack/cluster/build-node.sh does for the cluster's binaries:
#   ${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/bin/versitygw-$VERSITYGW_VERSION/versitygw
# Stdout: one line VERSITYGW_BIN=<dir>; everything else goes to stderr. A second run with the binary
# present costs nothing. Needs: go (CGO off, no C toolchain).
set -Eeuo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
BIN="$CACHE/bin/versitygw-$VERSITYGW_VERSION"
if [ -x "$BIN/versitygw" ]; then echo "VERSITYGW_BIN=$BIN"; exit 0; fi

log() { echo "build-s3.sh: $*" >&2; }
die() { log "$*"; exit 2; }
command -v go >/dev/null || die "go not found: the S3 test server is built from its Go module"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
mod="github.com/versity/versitygw@$VERSITYGW_VERSION"
src=$(go mod download -json "$mod" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); sys.exit(e) if e else print(d["Dir"])') \
  || die "go mod download $mod failed (GOPROXY=$(go env GOPROXY)): the Go module proxy must serve it"
work="$CACHE/build/versitygw-$VERSITYGW_VERSION"
rm -rf "$work"; mkdir -p "$(dirname "$work")" "$BIN"; cp -r "$src" "$work"; chmod -R u+w "$work"
start=$(date +%s)
pkg=github.com/versity/versitygw/cmd/versitygw
(cd "$work" && CGO_ENABLED=0 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION -X main.Build=modeldeploy" \
    -o "$BIN/versitygw.tmp" ./cmd/versitygw) >&2 || die "go build $pkg failed"
"$BIN/versitygw.tmp" --version >&2 || die "the freshly built versitygw does not run"
mv "$BIN/versitygw.tmp" "$BIN/versitygw"
rm -rf "$work"
log "built versitygw $VERSITYGW_VERSION in $(( $(date +%s) - start ))s, $(du -m "$BIN/versitygw" | cut -f1) MiB"
echo "VERSITYGW_BIN=$BIN"
