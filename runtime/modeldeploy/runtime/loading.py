"""From a model URI to a verified local file.

Schemes: `file://` and plain paths, `pvc://<claim>/<path>` (the claim mounted at
`<pvc root>/<claim>`), `https://` (and `http://`, for tests and in-cluster stores: streamed with
httpx, size-limited, retried, with the credentials Secret's AUTHORIZATION) and `s3://` (boto3, the
optional `s3` extra, imported lazily); `sources.py` has the remote ones. A directory resolves to the
`model.onnx` inside it. The sha256 of the file is checked before any session is created. No message
holds a credential or a URL's query string.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.runtime.sources import FetchError, download_http, download_s3, quiet_client_loggers, redact, scrub

__all__ = ["DigestMismatchError", "FetchError", "Fetched", "fetch", "normalize_digest", "resolve_local"]

log = logging.getLogger("modeldeploy.runtime")

_CHUNK = 1 << 20


class DigestMismatchError(Exception):
    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {redact(uri)}: expected {expected}, actual {actual}")
        self.uri = uri
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    sha256: str


def normalize_digest(digest: str) -> str:
    d = digest.strip().lower()
    d = d.removeprefix("sha256:")
    if len(d) != 64 or any(ch not in "0123456789abcdef" for ch in d):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return d


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _local(path: Path) -> Path:
    if path.is_dir():
        candidate = path / "model.onnx"
        if candidate.is_file():
            return candidate
        onnx_files = sorted(path.glob("*.onnx"))
        if len(onnx_files) == 1:
            return onnx_files[0]
        raise FetchError(f"{path} is a directory without model.onnx or a single *.onnx file")
    if not path.is_file():
        raise FetchError(f"model file {path} does not exist")
    return path


def resolve_local(uri: str, pvc_root: str) -> Path | None:
    """The local path a URI names, or None when it must be downloaded."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        host = parsed.netloc
        path = urllib.parse.unquote(parsed.path)
        if host not in ("", "localhost"):
            path = f"/{host}{path}" if path.startswith("/") else f"{host}/{path}"
        return _local(Path(path))
    if scheme == "pvc":
        claim = parsed.netloc
        rel = urllib.parse.unquote(parsed.path).lstrip("/")
        if not claim or ".." in Path(rel).parts:
            raise FetchError(f"pvc URI must be pvc://<claim>/<path>, got {redact(uri)!r}")
        return _local(Path(pvc_root) / claim / rel)
    if scheme in ("http", "https", "s3"):
        return None
    if scheme == "" or len(scheme) == 1:  # plain path (or a Windows drive letter)
        return _local(Path(uri))
    raise FetchError(f"unsupported model URI scheme {scheme!r} in {redact(uri)!r}")


def fetch(
    uri: str,
    *,
    expected_sha256: str | None,
    pvc_root: str,
    cache_dir: str,
    max_bytes: int,
    retries: int = 3,
) -> Fetched:
    """Fetch (if remote) and verify the model. Raises DigestMismatchError or FetchError."""
    expected = normalize_digest(expected_sha256) if expected_sha256 else None
    local = resolve_local(uri, pvc_root)
    downloaded = local is None
    if local is None:
        local = _download(uri, expected, cache_dir, max_bytes, retries)
    actual = sha256_file(local)
    if expected is not None and actual != expected:
        if downloaded:
            local.unlink(missing_ok=True)  # never left in the cache under the digest it does not have
        raise DigestMismatchError(uri, expected, actual)
    return Fetched(local, actual)


def _cache_path(uri: str, expected: str | None, cache_dir: str) -> Path:
    key = expected or hashlib.sha256(uri.encode()).hexdigest()
    d = Path(cache_dir) / "modeldeploy-models"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.onnx"


def _download(uri: str, expected: str | None, cache_dir: str, max_bytes: int, retries: int) -> Path:
    target = _cache_path(uri, expected, cache_dir)
    if expected is not None and target.is_file() and sha256_file(target) == expected:
        log.info("model found in cache at %s", target)
        return target
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    part = target.with_suffix(f".part{os.getpid()}")
    quiet_client_loggers()
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            if scheme == "s3":
                download_s3(uri, part, max_bytes)
            else:
                download_http(uri, part, max_bytes)
            part.replace(target)
            return target
        except FetchError:
            part.unlink(missing_ok=True)
            raise
        except Exception as e:  # network errors: retry with backoff
            part.unlink(missing_ok=True)
            last = e
            log.warning("download of %s failed (attempt %d/%d): %s", redact(uri), attempt, retries, scrub(str(e)))
            if attempt < retries:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))  # backoff between network retries
    raise FetchError(f"download of {redact(uri)} failed after {retries} attempts: {scrub(str(last))}")
