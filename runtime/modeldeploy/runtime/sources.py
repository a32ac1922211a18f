"""Remote model sources: `https://` (and `http://`) with the Secret's `AUTHORIZATION`, and `s3://`.

The operator hands `model.credentialsSecretRef` to the pod as environment variables (envFrom), so the
Secret's keys are read from the environment:

- `AUTHORIZATION`: the `Authorization` header value for https sources, `Bearer <token>` or
  `Basic <base64>` (a bare token is sent as `Bearer <token>`). It goes to the URI's own origin only:
  a redirect elsewhere (a presigned URL on a blob store, say) is followed without it.
- `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`): S3 keys;
  `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`: an endpoint override (MinIO, Ceph, R2, versitygw), then
  path-style addressing; `AWS_REGION` or `AWS_DEFAULT_REGION` (default us-east-1).

No message of this module, logged or raised, holds a credential or a URL's query string (a presigned
URL's signature): `redact` and `scrub` see to it, and the HTTP and S3 client libraries' own loggers are
kept at WARNING (httpx logs every request URL at INFO).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
MAX_REDIRECTS = 5
_QUIET = ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3")
_QUERY = re.compile(r"\?[^\s'\"<>]*")
_SECRET_KEYS = ("AUTHORIZATION", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


class FetchError(Exception):
    """The model could not be fetched (not retried)."""


def redact(uri: str) -> str:
    """A URI as it may be shown: no user info, no query string, no fragment."""
    p = urllib.parse.urlsplit(uri)
    host = p.hostname or ""
    if p.port is not None:
        host = f"{host}:{p.port}"
    return urllib.parse.urlunsplit((p.scheme, host, p.path, "", ""))


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Text from a library (an exception message) as it may be shown: query strings and the values
    of the credential variables replaced."""
    env = os.environ if environ is None else environ
    text = _QUERY.sub("?<redacted>", text)
    for key in _SECRET_KEYS:
        value = env.get(key, "")
        if len(value) >= 4:
            text = text.replace(value, "<redacted>")
            _, _, token = value.partition(" ")
            if token and len(token) >= 4:
                text = text.replace(token, "<redacted>")
    return text


def quiet_client_loggers() -> None:
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))


def authorization(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get("AUTHORIZATION", "").strip()
    if not value:
        return None
    if " " not in value:
        return f"Bearer {value}"
    return value


def _origin(url: Any) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def download_http(uri: str, part: Path, max_bytes: int) -> None:
    """GET the model into `part`, following redirects by hand so that `AUTHORIZATION` goes only to
    the URI's own origin."""
    import httpx  # noqa: PLC0415  (imported only when a model is downloaded)

    auth = authorization()
    origin = _origin(httpx.URL(uri))
    url = httpx.URL(uri)
    with httpx.Client(follow_redirects=False, timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"authorization": auth} if auth is not None and _origin(url) == origin else {}
            with client.stream("GET", url, headers=headers) as r:
                if r.is_redirect:
                    location = r.headers.get("location")
                    if not location:
                        raise FetchError(f"GET {redact(str(url))} answered {r.status_code} without a Location")
                    url = url.join(location)
                    continue
                _save(r, uri, part, max_bytes)
                return
    raise FetchError(f"GET {redact(uri)}: more than {MAX_REDIRECTS} redirects")


def _write_bounded(chunks: Iterable[bytes], part: Path, shown: str, max_bytes: int) -> None:
    """Stream `chunks` into `part`, refusing past `max_bytes` (a server may not send the size it declared)."""
    total = 0
    with part.open("wb") as f:
        for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                raise FetchError(f"model at {shown} exceeds the limit of {max_bytes} bytes")
            f.write(chunk)


def _save(r: Any, uri: str, part: Path, max_bytes: int) -> None:
    shown = redact(uri)
    if r.status_code in (401, 403):
        hint = "" if authorization() else " (no AUTHORIZATION in the credentials Secret)"
        raise FetchError(f"GET {shown} answered {r.status_code}: not authorized{hint}")
    if r.status_code in (404, 410):
        raise FetchError(f"GET {shown} answered {r.status_code}: no such model file")
    if r.status_code >= 400:
        raise OSError(f"GET {shown} answered {r.status_code}")  # retried
    declared = r.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"model at {shown} is {declared} bytes, over the limit of {max_bytes}")
    _write_bounded(r.iter_bytes(CHUNK), part, shown, max_bytes)


# ------------------------------------------------------------------------------------------- S3

_S3_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_S3_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "InvalidToken", "ExpiredToken"}


def s3_client(environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client from the environment (keys, endpoint override, region)."""
    env = os.environ if environ is None else environ
    try:
        boto3: Any = importlib.import_module("boto3")  # the optional `s3` extra
        botocore_config: Any = importlib.import_module("botocore.config")
    except ImportError:
        raise FetchError("s3:// URIs need the optional extra: pip install 'modeldeploy[s3]'") from None
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = botocore_config.Config(
        region_name=region,
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=10,
        read_timeout=30,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def download_s3(uri: str, part: Path, max_bytes: int) -> None:
    p = urllib.parse.urlsplit(uri)
    bucket, key = p.netloc, urllib.parse.unquote(p.path.lstrip("/"))
    shown = redact(uri)
    if not bucket or not key:
        raise FetchError(f"s3 URI must be s3://<bucket>/<key>, got {shown!r}")
    client = s3_client()
    errors: Any = importlib.import_module("botocore.exceptions")
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except errors.NoCredentialsError:
        raise FetchError(
            f"{shown}: no S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the credentials Secret)"
        ) from None
    except errors.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            raise FetchError(f"{shown}: no such bucket {bucket!r}") from None
        if code in _S3_NOT_FOUND:
            raise FetchError(f"{shown}: no such object (bucket {bucket!r}, key {key!r})") from None
        if code in _S3_DENIED:
            raise FetchError(
                f"{shown}: access denied ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "in the credentials Secret"
            ) from None
        raise OSError(f"{shown}: S3 error {code}") from None  # retried
    size = int(obj.get("ContentLength") or 0)
    body = obj["Body"]
    try:
        if size > max_bytes:
            raise FetchError(f"model at {shown} is {size} bytes, over the limit of {max_bytes}")
        _write_bounded(body.iter_chunks(CHUNK), part, shown, max_bytes)
    finally:
        body.close()
