#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the node's kubelet,
# kube-proxy and kubectl from their Go modules into a per-version cache outside the repository.
# A second run with the binaries present costs nothing. The rest of the node (containerd, runc,
# CoreDNS, Prometheus, the pause and CoreDNS images) is hack/cluster/build-node.sh's.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
OUT="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
need=(etcd "${k8s_cmds[@]}" kstatus)
missing=0
for b in "${need[@]}"; do [ -x "$OUT/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$OUT"; exit 0; fi
command -v go >/dev/null || { echo "go toolchain not found: cannot build the local cluster's binaries (see hack/localcluster/README.md)" >&2; exit 2; }
mkdir -p "$OUT"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
trap 'echo "build-bins.sh: failed at line $LINENO: $BASH_COMMAND (GOPROXY=$(go env GOPROXY)); the Go module proxy must be reachable" >&2' ERR
work="$CACHE/build"
start=$(date +%s)

# --- etcd: a builder module of its own
if [ ! -x "$OUT/etcd" ]; then
  d="$work/etcd-$ETCD_VERSION"; rm -rf "$d"; mkdir -p "$d"; cd "$d"
  go mod init modeldeploy.local/etcd-builder >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3 >&2
fi

# --- kubernetes: a builder module with one replace per staging module
k8s_missing=0
for c in "${k8s_cmds[@]}"; do [ -x "$OUT/$c" ] || k8s_missing=1; done
if [ "$k8s_missing" = 1 ]; then
  d="$work/k8s-$K8S_VERSION"; rm -rf "$d"; mkdir -p "$d"; cd "$d"
  go mod init modeldeploy.local/k8s-builder >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}; patch=${K8S_VERSION##*.}
  staging_ver="v0.$minor.$patch"
  grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u > staging.txt
  while read -r m; do go mod edit -replace="$m=$m@$staging_ver"; done < staging.txt
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  pkgs=(); for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c@$K8S_VERSION"); done
  go get "${pkgs[@]}" >&2
  ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${k8s_cmds[@]}"; do
    [ -x "$OUT/$c" ] || go build -trimpath -ldflags "-s -w $ld" -o "$OUT/$c" "k8s.io/kubernetes/cmd/$c" >&2
  done
fi
# --- kstatus: sigs.k8s.io/cli-utils status.Compute as a command (hack/kstatus, pinned go.mod/go.sum)
if [ ! -x "$OUT/kstatus" ]; then
  (cd "$repo/hack/kstatus" && go build -trimpath -ldflags "-s -w" -o "$OUT/kstatus" .) >&2
fi
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$OUT"
