#!/usr/bin/env bash
# make e2e-kind: the cluster tests against a kind cluster, on a machine with Docker (not this VM kind:
# kind needs privileged containers). Creates the cluster, loads the images `make images` built, routes
# the pod and Service ranges through the node's container (so the tests reach pods and ClusterIPs as
# they do inside the local cluster's namespace), runs pytest in MODELDEPLOY_KUBECONFIG mode, and
# deletes the cluster (KEEP=1 keeps it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
KIND_VERSION=${KIND_VERSION:-v0.33.0}
NAME=${KIND_CLUSTER:-modeldeploy-e2e}
WORK=$ROOT/.kind
FILES=$WORK/files # the test models: mounted into the node at the same path (hostPath volumes)
command -v docker >/dev/null || { echo "e2e-kind: docker not found (kind runs its nodes as containers)" >&2; exit 1; }
[ -f "$ROOT/dist/images/images.env" ] || { echo "e2e-kind: run \`make images\` first" >&2; exit 1; }
KIND=$CACHE/bin/kind-$KIND_VERSION/kind
if [ ! -x "$KIND" ]; then
  mkdir -p "$(dirname "$KIND")"
  GOBIN=$(dirname "$KIND") GOFLAGS=-mod=mod CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
mkdir -p "$FILES"
chmod 755 "$WORK" "$FILES"
cat >"$WORK/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/16}
nodes:
- role: control-plane
  extraMounts: [{hostPath: "$FILES", containerPath: "$FILES", readOnly: true}]
YAML
"$KIND" create cluster --name "$NAME" --config "$WORK/kind.yaml" --kubeconfig "$WORK/kubeconfig" --wait 120s
node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$NAME-control-plane")
cleanup() {
  ip route del 10.244.0.0/16 via "$node_ip" 2>/dev/null || true
  ip route del 10.96.0.0/16 via "$node_ip" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || "$KIND" delete cluster --name "$NAME"
}
trap cleanup EXIT
ip route replace 10.244.0.0/16 via "$node_ip"
ip route replace 10.96.0.0/16 via "$node_ip"
source "$ROOT/dist/images/images.env"
"$KIND" load image-archive "$RUNTIME_ARCHIVE" --name "$NAME"
"$KIND" load image-archive "$OPERATOR_ARCHIVE" --name "$NAME"
# the tests' bare pods use the local pause image (hack/cluster/build-node.sh)
"$KIND" load image-archive "$(ls "$CACHE"/images/pause-*.tar | head -1)" --name "$NAME"
MODELDEPLOY_KUBECONFIG=$WORK/kubeconfig MODELDEPLOY_FILES_DIR=$FILES \
  "$ROOT/.venv/bin/python" -m pytest -m cluster tests ${PYTEST_ARGS:-}
