#!/usr/bin/env bash
# Build the runtime and operator images offline (`make images`), and write archives a cluster can import.
#
#   1. base    BASE unset: a Debian bookworm python3.11 root file system made by mmdebstrap from Debian
#              packages (no registry), cached as $CACHE/images/base-debian-bookworm-python3.tar and
#              imported as localhost/modeldeploy/debian-python:bookworm. REFRESH_BASE=1 remakes it (new
#              security fixes). BASE=python:3.11-slim (or any python3.11 image) uses a registry instead.
#   2. wheels  pip download --only-binary=:all: of each image's requirements (read from pyproject.toml),
#              plus pip's own wheel, cached in $CACHE/wheels/<hash of the requirement list>/; the project's
#              wheel is built fresh every time, from `git archive HEAD` (SOURCE=head, the default: what the
#              git-<sha> tag says) or from the working tree, untracked files included (SOURCE=worktree;
#              the tag then gets -dirty when the tree differs from HEAD).
#   3. build   images/{runtime,operator}.Containerfile (read from the working tree) with no network:
#              buildah bud --isolation chroot inside a fresh network namespace (unshare -n), or
#              docker/podman build --network none. Tags: $REGISTRY/runtime:$VERSION and
#              $REGISTRY/runtime:git-<sha> (the same for operator).
#   4. export  dist/images/{runtime,operator}.tar (docker-archive, both tags: `ctr -n k8s.io images
#              import`, `kind load image-archive`, `docker load`, `skopeo copy docker-archive:...`) and
#              dist/images/images.env (RUNTIME_IMAGE, OPERATOR_IMAGE, RUNTIME_ARCHIVE, OPERATOR_ARCHIVE, GIT_TAG).
#
# Variables:
#   REGISTRY     ghcr.io/modeldeploy (the operator's and the chart's defaults)
#   VERSION      pyproject's version
#   BASE         the local Debian base; python:3.11-slim (or another python3.11 image) from a registry
#   BUILDER      buildah (default), docker or podman
#   GPU=1        the runtime with onnxruntime-gpu; its tags and archive get -gpu. It needs CUDA 13 and
#                cuDNN 9 at run time, which neither base has: ONNXRUNTIME='onnxruntime-gpu[cuda,cudnn]'
#                adds NVIDIA's pip packages (~3 GB)
#   ONNXRUNTIME  the runtime's onnxruntime requirement (onnxruntime; onnxruntime-gpu with GPU=1)
#   SOURCE       head (default) or worktree
#   MODELDEPLOY_CACHE  ~/.cache/modeldeploy;  PY  python3 (pip on the host);  OUT  dist/images
#   DEBIAN_MIRROR      http://deb.debian.org;  REFRESH_BASE=1  remake the Debian base
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CACHE=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
PY=${PY:-python3}
REGISTRY=${REGISTRY:-ghcr.io/modeldeploy}
REGISTRY=${REGISTRY%/}
BUILDER=${BUILDER:-buildah}
SOURCE=${SOURCE:-head}
GPU=${GPU:-0}
OUT=${OUT:-$ROOT/dist/images}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org}
LOCAL_BASE=localhost/modeldeploy/debian-python:bookworm
BASE_TAR=$CACHE/images/base-debian-bookworm-python3.tar
BASE=${BASE:-$LOCAL_BASE}
PYTHON_VERSION=3.11 # the bases' python (Debian bookworm: 3.11.2); the wheels are downloaded for it

case "$BUILDER" in buildah | docker | podman) ;; *)
  echo "BUILDER must be buildah, docker or podman (got $BUILDER)" >&2
  exit 2
  ;;
esac
case "$SOURCE" in head | worktree) ;; *)
  echo "SOURCE must be head or worktree (got $SOURCE)" >&2
  exit 2
  ;;
esac
command -v "$BUILDER" >/dev/null || {
  echo "$BUILDER not found (Debian: apt-get install buildah skopeo mmdebstrap uidmap)" >&2
  exit 1
}
case "$(uname -m)" in
  x86_64 | amd64) ARCH=x86_64 ;;
  aarch64 | arm64) ARCH=aarch64 ;;
  *)
    echo "unsupported machine $(uname -m)" >&2
    exit 1
    ;;
esac
# glibc of Debian bookworm (the local base and python:3.11-slim) is 2.36: every manylinux tag up to
# 2_36 fits (pip expands only the legacy manylinux2014/2010 names by itself, so list them all)
PLATFORM=manylinux_2_36_$ARCH
PLATFORMS=()
for v in $(seq 36 -1 5); do PLATFORMS+=(--platform "manylinux_2_${v}_$ARCH"); done
PLATFORMS+=(--platform "manylinux2014_$ARCH" --platform "manylinux2010_$ARCH" --platform "manylinux1_$ARCH")

T_ALL=$(date +%s.%N)
TIMES=()
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { # record NAME START [NOTE]
  local s
  s=$(since "$2")
  TIMES+=("$(printf '%-26s %6ss  %s' "$1" "$s" "${3:-}")")
  printf '==> %-26s %6ss  %s\n' "$1" "$s" "${3:-}" >&2
}
human() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

mkdir -p "$CACHE/images" "$CACHE/wheels" "$OUT"
WORK=$(mktemp -d -p "$CACHE/images") # beside the wheel cache: the contexts are hard links
PARTIAL=""                                     # a download under way, removed on failure
trap 'rm -rf "$WORK" $PARTIAL' EXIT

# --- builder ----------------------------------------------------------------------------------------
BUILDAH=(buildah)
[ -d /run/systemd/system ] || BUILDAH+=(--cgroup-manager=cgroupfs)
OFFLINE=()
if [ "$BUILDER" = buildah ]; then
  if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    OFFLINE=(unshare -n)
  else
    echo "warning: unshare -n needs root: buildah runs without a network namespace of its own (pip still uses --no-index)" >&2
  fi
fi
have_image() {
  case "$BUILDER" in
    buildah) "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1 ;;
    *) "$BUILDER" image inspect "$1" >/dev/null 2>&1 ;;
  esac
}
image_id() {
  case "$BUILDER" in
    buildah) "${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true ;;
    *) "$BUILDER" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true ;;
  esac
}
# docker.io/library/ for a short name, as docker does (buildah and podman would ask registries.conf)
qualify() {
  local first=${1%%/*}
  if [ "$first" = "$1" ]; then
    echo "docker.io/library/$1"
  elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then
    echo "$1"
  else
    echo "docker.io/$1"
  fi
}

# --- 1. base ----------------------------------------------------------------------------------------
t=$(now)
if [ "$BASE" = "$LOCAL_BASE" ]; then
  note="cached"
  if [ "${REFRESH_BASE:-0}" = 1 ] || [ ! -s "$BASE_TAR" ]; then
    command -v mmdebstrap >/dev/null || {
      echo "mmdebstrap not found (apt-get install mmdebstrap), or set BASE=python:3.11-slim" >&2
      exit 1
    }
    # essential + python3: 87 packages, ~100 MB. merged-usr hook: no usrmerge (which pulls perl);
    # libstdc++6: numpy and onnxruntime wheels link it. No apt, no pip in the result.
    PARTIAL=$BASE_TAR.partial
    mmdebstrap --variant=essential --format=tar --include=python3,ca-certificates,libstdc++6 \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
      bookworm "$BASE_TAR.partial" \
      "deb $DEBIAN_MIRROR/debian bookworm main" \
      "deb $DEBIAN_MIRROR/debian bookworm-updates main" \
      "deb $DEBIAN_MIRROR/debian-security bookworm-security main" >&2
    mv "$BASE_TAR.partial" "$BASE_TAR"
    PARTIAL=""
    note="mmdebstrap"
  fi
  if [ "${REFRESH_BASE:-0}" = 1 ] || ! have_image "$LOCAL_BASE" || [ "$note" = mmdebstrap ]; then
    if [ "$BUILDER" = buildah ]; then
      c=$("${BUILDAH[@]}" from --pull=never scratch)
      "${BUILDAH[@]}" add --quiet "$c" "$BASE_TAR" / >/dev/null
      "${BUILDAH[@]}" config --env LANG=C.UTF-8 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd '["python3"]' --label org.opencontainers.image.title=debian-python \
        --label org.opencontainers.image.description="Debian bookworm python3 from mmdebstrap" "$c"
      "${BUILDAH[@]}" commit --quiet --rm "$c" "$LOCAL_BASE" >/dev/null
    else
      "$BUILDER" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' "$BASE_TAR" "$LOCAL_BASE" >/dev/null
    fi
    note="$note, imported"
  fi
  record "base ($LOCAL_BASE)" "$t" "$note, $(human "$(stat -c %s "$BASE_TAR")") tar"
else
  [ "$BUILDER" = docker ] || BASE=$(qualify "$BASE")
  if ! have_image "$BASE"; then
    case "$BUILDER" in
      buildah) "${BUILDAH[@]}" pull --quiet "$BASE" >/dev/null ;;
      *) "$BUILDER" pull --quiet "$BASE" >/dev/null ;;
    esac
    record "base ($BASE)" "$t" "pulled"
  else
    record "base ($BASE)" "$t" "present"
  fi
fi

# --- 2. source, version, wheels ---------------------------------------------------------------------
t=$(now)
SRC=$WORK/src
mkdir -p "$SRC"
REVISION=$(git rev-parse HEAD)
GIT_TAG=git-$(git rev-parse --short=12 HEAD)
if [ "$SOURCE" = head ]; then
  git archive --format=tar HEAD | tar -x -C "$SRC"
  [ -z "$(git status --porcelain --untracked-files=no)" ] ||
    echo "note: SOURCE=head builds the last commit; uncommitted changes are not in the images (SOURCE=worktree)" >&2
else
  git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -x -C "$SRC"
  if [ -n "$(git status --porcelain)" ]; then
    GIT_TAG=$GIT_TAG-dirty
    REVISION=$REVISION-dirty
  fi
fi
VERSION=${VERSION:-$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$SRC/pyproject.toml")}
[ "$GPU" != 1 ] || ONNXRUNTIME=${ONNXRUNTIME:-onnxruntime-gpu}
ONNXRUNTIME=${ONNXRUNTIME:-onnxruntime}
SUFFIX=""
case "$ONNXRUNTIME" in onnxruntime-gpu*) SUFFIX=-gpu ;; esac

# requirements-<image>.txt (what the Containerfile installs; the runtime's without onnxruntime, which
# the ONNXRUNTIME build argument names) and download-<image>.txt (that plus the chosen onnxruntime)
"$PY" - "$SRC/pyproject.toml" "$WORK" "$ONNXRUNTIME" <<'PYEOF'
import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
out, ort = Path(sys.argv[2]), sys.argv[3]


def name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
    assert m, req
    return re.sub(r"[-_.]+", "-", m.group(0)).lower()


# the runtime image carries the s3 extra (boto3): s3:// model URIs must work in what users install;
# and the otel extra (OpenTelemetry SDK, OTLP/HTTP exporter: a few MB), imported only when OTEL_* asks
EXTRAS = {"runtime": ("runtime", "s3", "otel"), "operator": ("operator",)}
for image, extras in EXTRAS.items():
    optional = [r for extra in extras for r in project["optional-dependencies"][extra]]
    reqs = list(dict.fromkeys(project["dependencies"] + optional))
    keep = [r for r in reqs if name(r) != "onnxruntime"]
    extra = [ort + r[len("onnxruntime"):] for r in reqs if name(r) == "onnxruntime"]
    (out / f"requirements-{image}.txt").write_text("".join(r + "\n" for r in keep))
    (out / f"download-{image}.txt").write_text("".join(r + "\n" for r in keep + extra))
PYEOF
record "source ($SOURCE)" "$t" "$GIT_TAG, version $VERSION"

wheels() { # wheels IMAGE: WHEELS is the cache dir with every wheel IMAGE needs (downloaded on a miss)
  local image=$1 key tmp
  key=$({
    cat "$WORK/download-$image.txt"
    echo "pip python=$PYTHON_VERSION platform=$PLATFORM"
  } | sha256sum | cut -c1-16)
  WHEELS=$CACHE/wheels/$key
  WHEELS_NOTE=cached
  [ ! -e "$WHEELS/.complete" ] || return 0
  tmp=$(mktemp -d -p "$CACHE/wheels")
  PARTIAL=$tmp
  "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp --abi "cp${PYTHON_VERSION/./}" "${PLATFORMS[@]}" \
    -d "$tmp" -r "$WORK/download-$image.txt" pip >&2
  cp "$WORK/download-$image.txt" "$tmp/requirements.in"
  touch "$tmp/.complete"
  rm -rf "$WHEELS"
  mv "$tmp" "$WHEELS"
  PARTIAL=""
  WHEELS_NOTE=downloaded
}
for image in runtime operator; do
  t=$(now)
  ctx=$WORK/ctx-$image
  mkdir -p "$ctx/wheels"
  wheels "$image"
  cp -l "$WHEELS"/*.whl "$ctx/wheels/" 2>/dev/null || cp "$WHEELS"/*.whl "$ctx/wheels/"
  cp "$WORK/requirements-$image.txt" "$ctx/wheels/"
  n=$(find "$WHEELS" -name '*.whl' | wc -l)
  record "wheels ($image)" "$t" "$WHEELS_NOTE: $n wheels, $(du -sh "$WHEELS" | cut -f1), wheels/$(basename "$WHEELS")"
done

# the project's wheel, built with the build backend's wheels from the cache too (a warm rebuild needs no network)
t=$(now)
"$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
  "$SRC/pyproject.toml" >"$WORK/download-build.txt"
key=$(cat "$WORK/download-build.txt" | sha256sum | cut -c1-16)
BUILD_WHEELS=$CACHE/wheels/build-$key
if [ ! -e "$BUILD_WHEELS/.complete" ]; then
  PARTIAL=$(mktemp -d -p "$CACHE/wheels")
  "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: -d "$PARTIAL" \
    -r "$WORK/download-build.txt" >&2
  touch "$PARTIAL/.complete"
  rm -rf "$BUILD_WHEELS"
  mv "$PARTIAL" "$BUILD_WHEELS"
  PARTIAL=""
fi
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-index --find-links "$BUILD_WHEELS" --no-deps \
  -w "$WORK/project" "$SRC" >&2
for image in runtime operator; do cp "$WORK"/project/modeldeploy-*.whl "$WORK/ctx-$image/wheels/"; done
record "project wheel" "$t" "$(basename "$WORK"/project/modeldeploy-*.whl)"

# --- 3. build ---------------------------------------------------------------------------------------
build() { # build IMAGE TAG... (the first tag is the version tag)
  local image=$1 old=() args tag id
  shift
  for tag in "$@"; do old+=("$(image_id "$tag")"); done
  args=(--build-arg "BASE=$BASE" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION")
  [ "$image" != runtime ] || args+=(--build-arg "ONNXRUNTIME=$ONNXRUNTIME")
  [ "$image" != runtime ] || [ "$SUFFIX" != -gpu ] || args+=(--build-arg "EXECUTION_PROVIDER=cuda")
  for tag in "$@"; do args+=(-t "$tag"); done
  case "$BUILDER" in
    buildah)
      "${OFFLINE[@]}" "${BUILDAH[@]}" bud --quiet --isolation chroot --pull=never --layers=false \
        -f "$ROOT/images/$image.Containerfile" "${args[@]}" "$WORK/ctx-$image" >/dev/null
      ;;
    *)
      "$BUILDER" build --quiet --network none -f "$ROOT/images/$image.Containerfile" "${args[@]}" \
        "$WORK/ctx-$image" >/dev/null
      ;;
  esac
  # the images the tags left behind and that have no tag any more, so that rebuilds do not pile up
  local dangling
  case "$BUILDER" in
    buildah) dangling=$("${BUILDAH[@]}" images -q --no-trunc --filter dangling=true) ;;
    *) dangling=$("$BUILDER" images -q --no-trunc --filter dangling=true) ;;
  esac
  for id in "${old[@]}"; do
    id=${id#sha256:}
    [ -n "$id" ] && grep -q "$id" <<<"$dangling" || continue
    case "$BUILDER" in
      buildah) "${BUILDAH[@]}" rmi "$id" >/dev/null 2>&1 || true ;;
      *) "$BUILDER" rmi "$id" >/dev/null 2>&1 || true ;;
    esac
  done
}
RUNTIME_IMAGE=$REGISTRY/runtime:$VERSION$SUFFIX
OPERATOR_IMAGE=$REGISTRY/operator:$VERSION
t=$(now)
build runtime "$RUNTIME_IMAGE" "$REGISTRY/runtime:$GIT_TAG$SUFFIX"
record "build runtime" "$t" "$RUNTIME_IMAGE ($ONNXRUNTIME)"
t=$(now)
build operator "$OPERATOR_IMAGE" "$REGISTRY/operator:$GIT_TAG"
record "build operator" "$t" "$OPERATOR_IMAGE"

# --- 4. export --------------------------------------------------------------------------------------
export_archive() { # export_archive FILE TAG1 TAG2
  rm -f "$1"
  case "$BUILDER" in
    buildah)
      if command -v skopeo >/dev/null; then
        # (stderr kept aside: containers-storage logs an info line about its graph driver on every copy)
        skopeo copy --quiet "containers-storage:$2" "docker-archive:$1:$2" --additional-tag "$3" 2>"$WORK/skopeo.err" ||
          { cat "$WORK/skopeo.err" >&2 && exit 1; }
      else
        echo "warning: no skopeo, so $1 holds only $2" >&2
        "${BUILDAH[@]}" push --quiet "$2" "docker-archive:$1:$2"
      fi
      ;;
    podman) podman save --quiet --format docker-archive -m -o "$1" "$2" "$3" ;;
    docker) docker save -o "$1" "$2" "$3" ;;
  esac
}
RUNTIME_ARCHIVE=$OUT/runtime$SUFFIX.tar
OPERATOR_ARCHIVE=$OUT/operator.tar
t=$(now)
export_archive "$RUNTIME_ARCHIVE" "$RUNTIME_IMAGE" "$REGISTRY/runtime:$GIT_TAG$SUFFIX"
export_archive "$OPERATOR_ARCHIVE" "$OPERATOR_IMAGE" "$REGISTRY/operator:$GIT_TAG"
cat >"$OUT/images.env.partial" <<EOF
RUNTIME_IMAGE=$RUNTIME_IMAGE
OPERATOR_IMAGE=$OPERATOR_IMAGE
RUNTIME_ARCHIVE=$RUNTIME_ARCHIVE
OPERATOR_ARCHIVE=$OPERATOR_ARCHIVE
GIT_TAG=$GIT_TAG
VERSION=$VERSION
REVISION=$REVISION
BASE=$BASE
EOF
mv "$OUT/images.env.partial" "$OUT/images.env"
record "export" "$t" "$(human "$(stat -c %s "$RUNTIME_ARCHIVE")") + $(human "$(stat -c %s "$OPERATOR_ARCHIVE")")"

echo
echo "images (builder $BUILDER, base $BASE):"
printf '  %s\n  %s\n' "$RUNTIME_IMAGE  $REGISTRY/runtime:$GIT_TAG$SUFFIX" "$OPERATOR_IMAGE  $REGISTRY/operator:$GIT_TAG"
echo "archives:"
printf '  %s  %s\n' "$RUNTIME_ARCHIVE" "$(human "$(stat -c %s "$RUNTIME_ARCHIVE")")" \
  "$OPERATOR_ARCHIVE" "$(human "$(stat -c %s "$OPERATOR_ARCHIVE")")"
echo "  $OUT/images.env"
echo "times:"
printf '  %s\n' "${TIMES[@]}"
echo "  total                      $(since "$T_ALL")s"
