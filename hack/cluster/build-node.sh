#!/usr/bin/env bash
# Builds the rest of the real local node, into a per-version cache outside the repository
# (CACHE=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}); build-bins.sh builds kubelet, kube-proxy and
# kubectl beside the control plane. Everything comes from Go modules and Debian packages:
#   $CACHE/bin/containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION/{containerd,containerd-shim-runc-v2,ctr,runc}
#   $CACHE/bin/prometheus-$PROMETHEUS_VERSION/{prometheus,promtool}   (Kubernetes, file and HTTP SD only)
#   $CACHE/bin/coredns-$COREDNS_VERSION/coredns                         (static, CGO off, trimmed plugin set)
#   $CACHE/images/pause-$PAUSE_VERSION.tar       docker archive of localhost/modeldeploy/pause:$PAUSE_VERSION
#   $CACHE/images/coredns-$COREDNS_VERSION.tar   docker archive of localhost/modeldeploy/coredns:$COREDNS_VERSION
# The archives are built daemonless (umoci + skopeo; no registry, no network) and load with
# `ctr -n k8s.io images import FILE` (or `docker load`). Builder modules live under $CACHE/build/.
#
# Usage: build-node.sh [PART...]   PART: node prometheus coredns pause-image coredns-image (default: all)
# Stdout: one NAME=value line per part (NODE_BIN, PROMETHEUS_BIN, COREDNS_BIN, PAUSE_IMAGE, PAUSE_IMAGE_REF,
# COREDNS_IMAGE, COREDNS_IMAGE_REF); everything else goes to stderr. A second run with everything present
# costs nothing. Needs: go, gcc + libc6-dev + libseccomp-dev (runc, pause), umoci and skopeo
# (bash hack/install-system-deps.sh installs them).
#
# Measured here (2 cores, empty GOCACHE, modules already downloaded): containerd + shim + ctr 54 s, runc 16 s,
# prometheus + promtool 103 s, coredns 45 s, both images 1 s: 220 s wall, 1.3 GB peak RSS, 2.3 GB of GOCACHE.
# Sizes: containerd 37, shim 9, ctr 22, runc 9, prometheus 73, promtool 52, coredns 55 MiB; pause image 0.7 MiB.
set -Eeuo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
NODE_BIN="$CACHE/bin/containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION"
PROMETHEUS_BIN="$CACHE/bin/prometheus-$PROMETHEUS_VERSION"
COREDNS_BIN="$CACHE/bin/coredns-$COREDNS_VERSION"
IMAGES="$CACHE/images"
PAUSE_IMAGE="$IMAGES/pause-$PAUSE_VERSION.tar"
PAUSE_IMAGE_REF="localhost/modeldeploy/pause:$PAUSE_VERSION"
COREDNS_IMAGE="$IMAGES/coredns-$COREDNS_VERSION.tar"
COREDNS_IMAGE_REF="localhost/modeldeploy/coredns:$COREDNS_VERSION"
work="$CACHE/build"

# CoreDNS plugins compiled in, in plugin.cfg's order (the order is the directive order, so the list is
# a filter on plugin.cfg, not a new order). kubeadm's Corefile needs errors, health, ready, kubernetes,
# prometheus, forward, cache, loop, reload and loadbalance; the rest are small and commonly used. Left
# out: the cloud backends (route53, azure, clouddns), etcd, grpc, trace, quic/https3, geoip,
# sign/dnssec/tsig, secondary/dynupdate, nomad and the like. Measured cold: 45 s and 55 MiB, against
# 132 s, 76 MiB and ~80 more module downloads for the full plugin.cfg.
COREDNS_KEEP="root metadata cancel timeouts reload nsid bufsize bind debug ready health pprof prometheus
errors log local any chaos loadbalance rewrite autopath acl cache header minimal template transfer hosts
k8s_external kubernetes file loop forward whoami on"
COREDNS_REQUIRED="errors health ready kubernetes prometheus forward cache loop reload loadbalance"

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(node prometheus coredns pause-image coredns-image)
for p in "${parts[@]}"; do
  case "$p" in node|prometheus|coredns|pause-image|coredns-image) ;;
    *) echo "build-node.sh: unknown part '$p' (node prometheus coredns pause-image coredns-image)" >&2; exit 2 ;;
  esac
done
wants() { local p; for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

node_bins=(containerd containerd-shim-runc-v2 ctr runc)
prometheus_bins=(prometheus promtool)
all_x() { local d=$1 b; shift; for b; do [ -x "$d/$b" ] || return 1; done; }
done_node() { all_x "$NODE_BIN" "${node_bins[@]}"; }
done_prometheus() { all_x "$PROMETHEUS_BIN" "${prometheus_bins[@]}"; }
done_coredns() { all_x "$COREDNS_BIN" coredns; }
done_pause-image() { [ -s "$PAUSE_IMAGE" ]; }
done_coredns-image() { [ -s "$COREDNS_IMAGE" ]; }

print_paths() {
  wants node && echo "NODE_BIN=$NODE_BIN"
  wants prometheus && echo "PROMETHEUS_BIN=$PROMETHEUS_BIN"
  wants coredns && echo "COREDNS_BIN=$COREDNS_BIN"
  wants pause-image && { echo "PAUSE_IMAGE=$PAUSE_IMAGE"; echo "PAUSE_IMAGE_REF=$PAUSE_IMAGE_REF"; }
  wants coredns-image && { echo "COREDNS_IMAGE=$COREDNS_IMAGE"; echo "COREDNS_IMAGE_REF=$COREDNS_IMAGE_REF"; }
  return 0
}

pending=()
for p in "${parts[@]}"; do "done_$p" || pending+=("$p"); done
if [ ${#pending[@]} -eq 0 ]; then print_paths; exit 0; fi

log() { echo "build-node.sh: $*" >&2; }
die() { log "$*"; exit 2; }
step="setup"
trap '[ "$BASH_SUBSHELL" != 0 ] || log "$step failed at line $LINENO: $BASH_COMMAND"' ERR
need_cmd() { command -v "$1" >/dev/null || die "$1 not found: $2"; }
need_go() {
  need_cmd go "cannot build the local node's binaries without the Go toolchain (see hack/localcluster/README.md)"
  # GOWORK=off: the prometheus module zip ships a go.work naming folders the zip leaves out
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
}
# the directory of a module version in the module cache (downloads it); fails naming the proxy
moddir() {
  go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); sys.exit(e) if e else print(d["Dir"])' \
    || die "go mod download $1 failed (GOPROXY=$(go env GOPROXY)): the Go module proxy must serve it"
}
# a fresh builder module requiring exactly MODULE@VERSION
builder() {
  local d=$1 mod=$2
  rm -rf "$d"; mkdir -p "$d"
  (cd "$d" && go mod init "modeldeploy.local/$(basename "$d" | tr -c 'a-z0-9.\n-' '-')-builder" >/dev/null 2>&1 && go get "$mod" >&2) \
    || die "go get $mod failed (GOPROXY=$(go env GOPROXY)): the Go module proxy must serve it and its dependencies"
}
# a writable copy of a downloaded module (for modules built as themselves, go.sum and all)
modcopy() {
  local d=$1 src
  src=$(moddir "$2")
  rm -rf "$d"; mkdir -p "$(dirname "$d")"; cp -r "$src" "$d"; chmod -R u+w "$d"
}
sizes() { local d=$1 b out=""; shift; for b; do out="$out $b $(du -m "$d/$b" | cut -f1) MiB,"; done; echo "${out%,}"; }
t0=$(date +%s)

# --- containerd + shim + ctr (pure Go) and runc (cgo + libseccomp), each from a builder module of its own
build_node() {
  need_go
  need_cmd gcc "runc needs cgo: bash hack/install-system-deps.sh installs gcc"
  echo '#include <seccomp.h>' | gcc -E -x c - >/dev/null 2>&1 \
    || die "seccomp.h not found: runc is built with seccomp; bash hack/install-system-deps.sh installs libseccomp-dev"
  mkdir -p "$NODE_BIN"
  local start d pkg=github.com/containerd/containerd/v2
  local ld="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Revision=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
  if ! all_x "$NODE_BIN" containerd containerd-shim-runc-v2 ctr; then
    step="containerd $CONTAINERD_VERSION"; start=$(date +%s)
    d="$work/containerd-$CONTAINERD_VERSION"
    builder "$d" "$pkg@$CONTAINERD_VERSION"
    # the release's tags, less the cgo-only snapshotters (btrfs, devmapper, zfs) that need C headers
    (cd "$d" && CGO_ENABLED=0 go build -trimpath -tags 'urfave_cli_no_docs no_btrfs no_devmapper no_zfs' -ldflags "$ld" \
        -o "$NODE_BIN/containerd.tmp" "$pkg/cmd/containerd" \
      && CGO_ENABLED=0 go build -trimpath -tags 'urfave_cli_no_docs no_grpc' -ldflags "$ld" \
        -o "$NODE_BIN/containerd-shim-runc-v2.tmp" "$pkg/cmd/containerd-shim-runc-v2" \
      && CGO_ENABLED=0 go build -trimpath -tags 'urfave_cli_no_docs no_btrfs no_devmapper no_zfs' -ldflags "$ld" \
        -o "$NODE_BIN/ctr.tmp" "$pkg/cmd/ctr") >&2
    for b in containerd containerd-shim-runc-v2 ctr; do mv "$NODE_BIN/$b.tmp" "$NODE_BIN/$b"; done
    log "built containerd $CONTAINERD_VERSION in $(( $(date +%s) - start ))s:$(sizes "$NODE_BIN" containerd containerd-shim-runc-v2 ctr)"
  fi
  if [ ! -x "$NODE_BIN/runc" ]; then
    step="runc $RUNC_VERSION"; start=$(date +%s)
    d="$work/runc-$RUNC_VERSION"
    builder "$d" "github.com/opencontainers/runc@$RUNC_VERSION"
    # as runc's Makefile: PIE, seccomp, no libpathrs (a Rust library Debian 12 lacks); the version comes
    # from the embedded VERSION file; links libseccomp.so.2 dynamically
    (cd "$d" && CGO_ENABLED=1 go build -trimpath -buildmode=pie -tags 'seccomp urfave_cli_no_docs' \
        -ldflags "-s -w -X main.gitCommit=$RUNC_VERSION" -o "$NODE_BIN/runc.tmp" github.com/opencontainers/runc) >&2
    mv "$NODE_BIN/runc.tmp" "$NODE_BIN/runc"
    log "built runc $RUNC_VERSION in $(( $(date +%s) - start ))s:$(sizes "$NODE_BIN" runc)"
  fi
  step="node check"
  "$NODE_BIN/containerd" --version >&2 && "$NODE_BIN/ctr" --version >&2 && "$NODE_BIN/runc" --version >&2 \
    || die "a freshly built node binary does not run: $NODE_BIN"
}

# --- Prometheus + promtool, built as the module itself (its go.sum), with only the file, HTTP and
# Kubernetes service discovery compiled in (plugins/: remove_all_sd + enable_kubernetes_sd). Without
# the builtinassets tag (its compiled web UI is not in the module zip): the HTTP API and /-/ready work,
# the web UI pages do not.
build_prometheus() {
  need_go
  step="prometheus $PROMETHEUS_VERSION"
  local start d ver pkg=github.com/prometheus/common/version ld
  start=$(date +%s)
  d="$work/prometheus-$PROMETHEUS_VERSION"
  modcopy "$d" "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
  grep -q '^replace\|=>' "$d/go.mod" && log "note: prometheus's go.mod has replace lines; building it as its own module honours them"
  ver=$(cat "$d/VERSION")
  ld="-s -w -X $pkg.Version=$ver -X $pkg.Revision=$PROMETHEUS_VERSION -X $pkg.Branch=HEAD -X $pkg.BuildUser=modeldeploy -X $pkg.BuildDate=19700101-00:00:00"
  mkdir -p "$PROMETHEUS_BIN"
  for b in "${prometheus_bins[@]}"; do
    (cd "$d" && CGO_ENABLED=0 go build -mod=readonly -trimpath -tags 'netgo remove_all_sd enable_kubernetes_sd' \
      -ldflags "$ld" -o "$PROMETHEUS_BIN/$b.tmp" "./cmd/$b") >&2
  done
  # refuse to cache a Prometheus that cannot read a kubernetes_sd_configs config (Debian's 2.42 could not)
  step="prometheus check"
  local t; t=$(mktemp -d)
  cat > "$t/prometheus.yml" <<'EOF'
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
        api_server: https://127.0.0.1:6443
        tls_config: {insecure_skip_verify: true}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
  - job_name: files
    file_sd_configs: [{files: [targets/*.json]}]
EOF
  "$PROMETHEUS_BIN/prometheus.tmp" --version >&2 \
    && "$PROMETHEUS_BIN/promtool.tmp" check config "$t/prometheus.yml" >&2 \
    || { rm -rf "$t"; die "the freshly built Prometheus $ver fails its check (--version, promtool check config with kubernetes_sd_configs)"; }
  rm -rf "$t" "$d"
  for b in "${prometheus_bins[@]}"; do mv "$PROMETHEUS_BIN/$b.tmp" "$PROMETHEUS_BIN/$b"; done
  log "built prometheus $ver ($PROMETHEUS_VERSION) in $(( $(date +%s) - start ))s:$(sizes "$PROMETHEUS_BIN" "${prometheus_bins[@]}")"
}

# --- CoreDNS, built as the module itself with plugin.cfg filtered to COREDNS_KEEP (go generate
# rewrites core/plugin/zplugin.go and core/dnsserver/zdirectives.go from it, as upstream documents)
build_coredns() {
  need_go
  step="coredns $COREDNS_VERSION"
  local start d p
  start=$(date +%s)
  d="$work/coredns-$COREDNS_VERSION"
  modcopy "$d" "github.com/coredns/coredns@$COREDNS_VERSION"
  for p in $COREDNS_REQUIRED; do
    grep -q "^$p:" "$d/plugin.cfg" || die "CoreDNS $COREDNS_VERSION's plugin.cfg has no '$p' plugin: update COREDNS_KEEP in $0"
  done
  cp "$d/plugin.cfg" "$d/plugin.cfg.orig"
  awk -v keep="$COREDNS_KEEP" 'BEGIN { n = split(keep, k, /[ \n]+/); for (i = 1; i <= n; i++) if (k[i] != "") want[k[i]] = 1 }
    /^#/ || !/:/ { next } { split($0, f, ":"); if (f[1] in want) print }' "$d/plugin.cfg.orig" > "$d/plugin.cfg"
  (cd "$d" && env -u COREDNS_PLUGINS CGO_ENABLED=0 go run directives_generate.go \
    && CGO_ENABLED=0 go build -mod=readonly -trimpath \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$d/coredns" .) >&2
  step="coredns check"
  "$d/coredns" -version >&2 || die "the freshly built CoreDNS does not run: $d/coredns"
  local have; have=$("$d/coredns" -plugins)   # "  dns.NAME" (older releases) or "  NAME" lines
  for p in $COREDNS_REQUIRED; do
    grep -Eq "^[[:space:]]*(dns\.)?$p\$" <<<"$have" || die "the freshly built CoreDNS lacks the '$p' plugin"
  done
  mkdir -p "$COREDNS_BIN"; mv "$d/coredns" "$COREDNS_BIN/coredns.tmp"; mv "$COREDNS_BIN/coredns.tmp" "$COREDNS_BIN/coredns"
  rm -rf "$d"
  log "built coredns $COREDNS_VERSION in $(( $(date +%s) - start ))s:$(sizes "$COREDNS_BIN" coredns) ($(wc -w <<<"$COREDNS_KEEP") plugins)"
}

need_image_tools() {
  need_cmd umoci "bash hack/install-system-deps.sh installs umoci (the daemonless image builder)"
  need_cmd skopeo "bash hack/install-system-deps.sh installs skopeo (writes the docker archive)"
}

# --- a one-layer image FROM scratch, daemonless: umoci builds an OCI layout, skopeo writes a docker archive
#     image_archive OUT REF USER SRC:TARGET [ENTRYPOINT ARGS...]
image_archive() {
  local out=$1 ref=$2 user=$3 file=$4; shift 4
  local t tag=${ref##*:} a args=()
  t=$(mktemp -d -p "$work")
  for a; do args+=(--config.entrypoint "$a"); done
  local rootless=(); [ "$(id -u)" = 0 ] || rootless=(--rootless)
  umoci init --layout "$t/oci" >&2
  umoci new --image "$t/oci:$tag" >&2
  # unpack + repack, not `umoci insert`: 0.4.7's insert writes a layer tar without padding and
  # end-of-archive blocks, which GNU tar and Go's archive/tar (containerd) reject
  umoci unpack "${rootless[@]}" --image "$t/oci:$tag" "$t/bundle" >&2
  cp "${file%%:*}" "$t/bundle/rootfs${file#*:}"; chmod 0755 "$t/bundle/rootfs${file#*:}"
  umoci repack "${rootless[@]}" --image "$t/oci:$tag" --history.created_by "modeldeploy build-node.sh" "$t/bundle" >&2
  umoci config --image "$t/oci:$tag" --os linux --architecture amd64 --config.user "$user" "${args[@]}" \
    --history.created_by "modeldeploy build-node.sh" >&2
  mkdir -p "$(dirname "$out")"; rm -f "$out.tmp"
  skopeo --insecure-policy copy -q "oci:$t/oci:$tag" "docker-archive:$out.tmp:$ref" >&2
  mv "$out.tmp" "$out"
  rm -rf "$t"
}

build_pause-image() {
  step="pause image $PAUSE_VERSION"
  need_cmd gcc "the pause binary is C: bash hack/install-system-deps.sh installs gcc and libc6-dev"
  need_image_tools
  local start t; start=$(date +%s); mkdir -p "$work"; t=$(mktemp -d -p "$work")
  # the pause container's whole job: sit in pause(), reap zombies, exit 0 on SIGINT/SIGTERM
  cat > "$t/pause.c" <<'EOF'
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void sigdown(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }
static void sigreap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction down = {.sa_handler = sigdown}, reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &down, NULL) < 0) return 1;
  if (sigaction(SIGTERM, &down, NULL) < 0) return 2;
  if (sigaction(SIGCHLD, &reap, NULL) < 0) return 3;
  for (;;) pause();
}
EOF
  gcc -Os -static -o "$t/pause" "$t/pause.c" >&2 \
    || die "gcc -static failed: the static pause binary needs libc6-dev (libc.a); bash hack/install-system-deps.sh installs it"
  strip "$t/pause"
  image_archive "$PAUSE_IMAGE" "$PAUSE_IMAGE_REF" 65535:65535 "$t/pause:/pause" /pause
  rm -rf "$t"
  log "built $PAUSE_IMAGE_REF in $(( $(date +%s) - start ))s: $PAUSE_IMAGE $(du -k "$PAUSE_IMAGE" | cut -f1) KiB"
}

build_coredns-image() {
  step="coredns image $COREDNS_VERSION"
  need_image_tools
  done_coredns || build_coredns
  step="coredns image $COREDNS_VERSION"
  local start; start=$(date +%s)
  # non-root: the Corefile must listen on a port above 1023 (e.g. .:1053), a Service maps 53 to it
  image_archive "$COREDNS_IMAGE" "$COREDNS_IMAGE_REF" 65532:65532 "$COREDNS_BIN/coredns:/coredns" /coredns
  log "built $COREDNS_IMAGE_REF in $(( $(date +%s) - start ))s: $COREDNS_IMAGE $(du -m "$COREDNS_IMAGE" | cut -f1) MiB"
}

mkdir -p "$work"
for p in "${pending[@]}"; do "done_$p" || "build_$p"; done
step="done"
log "built ${pending[*]} in $(( $(date +%s) - t0 ))s"
print_paths
