#!/usr/bin/env bash
# Debian packages the tests, the local node and the image builds need. Idempotent: when every
# package is installed it only asks dpkg (well under a second); otherwise one `apt-get update`
# and one `apt-get install` of the missing ones.
#
# Prometheus and promtool are NOT Debian's any more (2.42 has no Kubernetes service discovery):
# hack/cluster/build-node.sh builds both from the Go module into the cache.
set -euo pipefail
pkgs=(
  iproute2 openssl                         # network namespaces, the cluster's PKI
  iptables nftables conntrack              # kube-proxy (iptables and nftables modes)
  containernetworking-plugins              # CNI bridge/host-local/loopback/portmap in /usr/lib/cni
  socat                                    # kubectl port-forward on the node
  libseccomp-dev gcc libc6-dev             # runc (cgo + seccomp), the static pause binary
  mmdebstrap umoci skopeo buildah          # daemonless image builds (no registry)
  uidmap fuse-overlayfs                    # buildah's storage
  tmux                                     # the kubectl plugin's --watch tested on a real terminal
)
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-system-deps.sh: need root to install: ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install-system-deps.sh: installing ${need[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
