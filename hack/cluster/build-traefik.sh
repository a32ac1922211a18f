#!/usr/bin/env bash
# Builds Traefik (the local cluster's Gateway API data plane) from its Go module and fetches the
# Gateway API standard CRDs, into a per-version cache outside the repository:
#   $CACHE/bin/traefik-$TRAEFIK_VERSION/traefik
#   $CACHE/gateway-api-$GATEWAY_API_VERSION/crds/*.yaml
# A second run with both present costs nothing. Prints the two paths, one a line.
#
# Traefik's go.mod has replace lines, so `go install ...@v` refuses: build from a writable copy of
# the downloaded module directory instead. Stay on 3.6: 3.7 adds a replace to a nested module that
# the proxy here does not serve. The proxy serves v3.6.12 (later 3.6 patches answer 403).
# Measured here (2 cores, shared with other work, cold module cache): 714 s of go build (12 min in all
# with the module downloads), 3.0 GiB peak RSS; the binary is ~170 MiB. A second run costs nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gateway-versions.env
source "$here/gateway-versions.env"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
OUT="$CACHE/bin/traefik-$TRAEFIK_VERSION"
CRDS="$CACHE/gateway-api-$GATEWAY_API_VERSION/crds"

if [ -x "$OUT/traefik" ] && compgen -G "$CRDS/*.yaml" >/dev/null; then
  echo "$OUT/traefik"; echo "$CRDS"; exit 0
fi
command -v go >/dev/null || { echo "go toolchain not found: cannot build Traefik for the local cluster's Gateway API tests" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
trap 'echo "build-traefik.sh: failed at line $LINENO: $BASH_COMMAND (GOPROXY=$(go env GOPROXY)); the Go module proxy must serve github.com/traefik/traefik/v3@$TRAEFIK_VERSION and sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" >&2' ERR
moddir() { go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); sys.exit(e) if e else print(d["Dir"])'; }

# --- Gateway API CRDs (standard channel; the *_vap_* admission policies are not CRDs)
if ! compgen -G "$CRDS/*.yaml" >/dev/null; then
  src=$(moddir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
  tmp="$CRDS.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
  for f in "$src"/config/crd/standard/*.yaml; do
    case "$(basename "$f")" in *_vap_*|kustomization.yaml) continue ;; esac
    cp "$f" "$tmp/"
  done
  chmod u+w "$tmp"/*.yaml
  rm -rf "$CRDS"; mv "$tmp" "$CRDS"
fi

# --- Traefik
if [ ! -x "$OUT/traefik" ]; then
  src=$(moddir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
  d="$CACHE/build/traefik-$TRAEFIK_VERSION"; rm -rf "$d"; mkdir -p "$(dirname "$d")"
  cp -r "$src" "$d"; chmod -R u+w "$d"
  mkdir -p "$OUT"
  start=$(date +%s)
  (cd "$d" && go build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$OUT/traefik.tmp" ./cmd/traefik) >&2
  mv "$OUT/traefik.tmp" "$OUT/traefik"
  rm -rf "$d"
  echo "built traefik $TRAEFIK_VERSION in $(( $(date +%s) - start ))s" >&2
fi
echo "$OUT/traefik"
echo "$CRDS"
