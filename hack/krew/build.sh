#!/usr/bin/env bash
# The krew archive of `kubectl modeldeploy` and its manifest:
#   bash hack/krew/build.sh [VERSION] [URL]
# writes dist/krew/kubectl-modeldeploy.tar.gz (one file, kubectl-modeldeploy: a zipapp of the plugin
# and the pure-Python distributions it needs, universal wheels from PyPI) and
# dist/krew/modeldeploy.yaml (deploy/krew/modeldeploy.yaml with VERSION, URL and the sha256 filled in,
# as krew-release-bot fills it at a release). Compiled extensions are left out (PyYAML then runs its
# pure-Python parser), so the archive runs on any OS with python3 >= 3.11.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
version=${1:-v$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}
url=${2:-https://github.com/modeldeploy/modeldeploy/releases/download/$version/kubectl-modeldeploy.tar.gz}
out=${OUT:-dist/krew}
rm -rf "$out" && mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the plugin's pure-Python dependencies as universal wheels from PyPI (pip's cache makes a second build
# offline): kubernetes 35 is the last client without compiled dependencies (36 adds aiohttp, 37 pydantic)
# Wheels are cached outside the repository, keyed by the requirement list: `make install` fills the cache
# (outside any network namespace), so a build inside the local cluster's namespace, which has no route to
# PyPI, needs no network.
reqs=("kubernetes>=35,<36" certifi six python-dateutil "websocket-client>=0.32" requests requests-oauthlib
      oauthlib "urllib3>=1.24.2,!=2.6.0" "durationpy>=0.7" idna charset-normalizer)
key=$(printf '%s\n' "${reqs[@]}" | sha256sum | cut -c1-12)
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/krew-wheels-$key"
if [ ! -f "$cache/.complete" ]; then
  rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
  for attempt in 1 2 3; do  # a registry hiccup must not fail a build
    if "$PY" -m pip download -q --retries 5 --timeout 30 --dest "$cache.tmp" --no-deps --only-binary=:all: \
      --platform any --python-version 3.11 --implementation py --abi none "${reqs[@]}"; then
      break
    fi
    [ "$attempt" = 3 ] && { echo "krew/build.sh: pip download failed three times (PyPI unreachable?)" >&2; exit 1; }
    echo "krew/build.sh: pip download failed (attempt $attempt), retrying" >&2
  done
  touch "$cache.tmp/.complete"
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
mkdir -p "$tmp/wheels" && cp "$cache"/*.whl "$tmp/wheels/"
"$PY" - "$tmp/app" "$tmp/wheels" <<'PYEOF'
import shutil
import sys
import zipfile
from pathlib import Path

import yaml

app, wheels = Path(sys.argv[1]), Path(sys.argv[2])
app.mkdir()
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(app, [n for n in z.namelist() if ".dist-info/" not in n])
# PyYAML has no universal wheel: its pure-Python parser, without the C extension
shutil.copytree(Path(yaml.__file__).parent, app / "yaml", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
# the plugin: modeldeploy/kubectl only (modeldeploy is a namespace package: no __init__.py)
shutil.copytree("operator/modeldeploy/kubectl", app / "modeldeploy" / "kubectl", ignore=shutil.ignore_patterns("__pycache__"))
(app / "__main__.py").write_text("import sys\n\nfrom modeldeploy.kubectl.cli import main\n\nsys.exit(main())\n")
print("bundled:", ", ".join(w.name for w in sorted(wheels.glob("*.whl"))), "and PyYAML (pure)", file=sys.stderr)
PYEOF
"$PY" -m zipapp "$tmp/app" -c -p "/usr/bin/env python3" -o "$tmp/kubectl-modeldeploy"
chmod 755 "$tmp/kubectl-modeldeploy"
tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$out/kubectl-modeldeploy.tar.gz" kubectl-modeldeploy
sha=$(sha256sum "$out/kubectl-modeldeploy.tar.gz" | cut -d' ' -f1)
"$PY" - deploy/krew/modeldeploy.yaml "$out/modeldeploy.yaml" "$version" "$url" "$sha" <<'PYEOF'
import re
import sys
from pathlib import Path

template, target, version, url, sha = sys.argv[1:]
text = Path(template).read_text()
text = re.sub(r'\{\{addURIAndSha "[^"]*" \.TagName \}\}', f"uri: {url}\n      sha256: {sha}", text)
text = text.replace("{{ .TagName }}", version)
assert "{{" not in text, text
Path(target).write_text(text)
PYEOF
echo "$out/kubectl-modeldeploy.tar.gz ($sha) and $out/modeldeploy.yaml ($version)"
