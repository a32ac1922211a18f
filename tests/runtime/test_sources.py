"""Remote model sources against real servers (issue 14): S3 on a real versitygw started here, and an
https origin (Python's TLS server, a self-signed certificate made with openssl) that wants the
credentials Secret's AUTHORIZATION and redirects to another host. Every runtime log is grepped for
the secrets: no credential and no query string may appear in it.
"""

from __future__ import annotations

import http.server
import importlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer
from tests.runtime.s3server import S3Server

pytestmark = pytest.mark.slow

ACCESS = "modeldeploy-test-access"
SECRET = "s3-secret-Zq81xVb0LkP3"
REGION = "eu-test-1"
TOKEN = "bearer-secret-Hh72Kd9Q"
SIGNATURE = "presigned-signature-Xy93Bv"
BUCKET = "models"
SECRETS = (SECRET, TOKEN, SIGNATURE, "X-Amz-Signature")
ONE_ROW = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[0.1,0.2,0.3,0.4]}]}'


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, model_files: ModelFiles) -> Iterator[S3Server]:
    root = tmp_path_factory.mktemp("s3")
    server = S3Server(root, root / "versitygw.log", ACCESS, SECRET, REGION).start()
    boto3: Any = importlib.import_module("boto3")  # the s3 extra (no type stubs)
    client: Any = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name=REGION,
    )
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="clf/7/model.onnx", Body=model_files.classifier.read_bytes())
    yield server
    server.stop()


def s3_env(server: S3Server, secret: str = SECRET) -> dict[str, str]:
    """What the operator's envFrom puts in the pod from the credentials Secret."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def runtime(uri: str, tmp_path: Path, log_dir: Path, env: dict[str, str], *extra: str) -> RuntimeServer:
    return RuntimeServer(
        "clf", uri, "--cache-dir", str(tmp_path), "--log-level", "DEBUG", *extra, log_dir=log_dir, env=env
    ).start()


def assert_no_secret(log: str) -> None:
    for s in SECRETS:
        assert s not in log, f"{s!r} leaked into the log:\n{log[-3000:]}"


# ------------------------------------------------------------------------------------------ S3


def test_s3_a_good_object_loads_with_keys_endpoint_and_region(
    s3: S3Server, model_files: ModelFiles, tmp_path: Path, log_dir: Path
) -> None:
    s = runtime(
        f"s3://{BUCKET}/clf/7/model.onnx", tmp_path, log_dir, s3_env(s3), "--sha256", model_files.classifier_sha
    )
    try:
        s.wait_ready(60)
        r = httpx.post(s.url + "/v2/models/clf/infer", content=ONE_ROW)
        assert r.status_code == 200, r.text
    finally:
        assert s.stop() == 0
    assert_no_secret(s.log())


def test_s3_a_wrong_digest_never_serves(s3: S3Server, tmp_path: Path, log_dir: Path) -> None:
    s = runtime(f"s3://{BUCKET}/clf/7/model.onnx", tmp_path, log_dir, s3_env(s3), "--sha256", "0" * 64)
    assert s.wait_exit(60) == 4
    assert "sha256 mismatch" in s.log()
    assert not list((tmp_path / "modeldeploy-models").glob("*.onnx"))  # nothing left to serve later
    assert_no_secret(s.log())


def test_s3_wrong_keys_give_a_clear_error(s3: S3Server, tmp_path: Path, log_dir: Path) -> None:
    s = runtime(f"s3://{BUCKET}/clf/7/model.onnx", tmp_path, log_dir, s3_env(s3, secret=SECRET[::-1]))
    assert s.wait_exit(60) == 3
    log = s.log()
    assert "access denied" in log and "AWS_SECRET_ACCESS_KEY" in log, log
    assert_no_secret(log)
    assert SECRET[::-1] not in log


def test_s3_a_missing_object_says_which(s3: S3Server, tmp_path: Path, log_dir: Path) -> None:
    s = runtime(f"s3://{BUCKET}/clf/8/model.onnx", tmp_path, log_dir, s3_env(s3))
    assert s.wait_exit(60) == 3
    assert "no such object (bucket 'models', key 'clf/8/model.onnx')" in s.log(), s.log()
    s = runtime("s3://no-such-bucket/m.onnx", tmp_path, log_dir, s3_env(s3))
    assert s.wait_exit(60) == 3
    assert "no such bucket 'no-such-bucket'" in s.log(), s.log()
    assert_no_secret(s.log())


# ------------------------------------------------------------------------------------------ https


class Recorder:
    """An HTTP(S) server on loopback that records the Authorization header of every request."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes]], tls: Path | None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("authorization")
                outer.seen.append((self.path, auth))
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404)
                    return
                status, headers, body = route[0], dict(route[1]), route[2]
                if headers.pop("x-needs-auth", None) == "1" and auth != f"Bearer {TOKEN}":
                    headers = {}
                    status, body = 401, b"no"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v.replace("{port}", str(outer.port)))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls / "cert.pem", tls / "key.pem")
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return d


@pytest.fixture
def origins(tls: Path, model_files: ModelFiles) -> Iterator[tuple[Recorder, Recorder]]:
    data = model_files.classifier.read_bytes()
    # another host: a presigned-URL blob store on 127.0.0.2 that wants no Authorization
    other = Recorder("127.0.0.2", {"/blob/model.onnx": (200, {}, data)}, None)
    origin = Recorder(
        "127.0.0.1",
        {
            "/models/model.onnx": (200, {"x-needs-auth": "1"}, data),
            "/same": (302, {"x-needs-auth": "1", "Location": "/models/model.onnx"}, b""),
            "/away": (
                302,
                {"x-needs-auth": "1", "Location": f"{other.url}/blob/model.onnx?X-Amz-Signature={SIGNATURE}"},
                b"",
            ),
        },
        tls,
    )
    yield origin, other
    origin.close()
    other.close()


def https_env(tls: Path, token: str = TOKEN) -> dict[str, str]:
    return {"AUTHORIZATION": f"Bearer {token}", "SSL_CERT_FILE": str(tls / "cert.pem")}


@pytest.mark.parametrize("path", ["/models/model.onnx", "/same"])
def test_https_sends_the_secrets_authorization_to_its_origin(
    origins: tuple[Recorder, Recorder], tls: Path, model_files: ModelFiles, tmp_path: Path, log_dir: Path, path: str
) -> None:
    origin, _ = origins
    s = runtime(origin.url + path, tmp_path, log_dir, https_env(tls), "--sha256", model_files.classifier_sha)
    try:
        s.wait_ready(60)
    finally:
        assert s.stop() == 0
    assert all(auth == f"Bearer {TOKEN}" for _p, auth in origin.seen), origin.seen
    assert_no_secret(s.log())


def test_https_never_sends_authorization_to_another_host_after_a_redirect(
    origins: tuple[Recorder, Recorder], tls: Path, model_files: ModelFiles, tmp_path: Path, log_dir: Path
) -> None:
    origin, other = origins
    s = runtime(origin.url + "/away", tmp_path, log_dir, https_env(tls), "--sha256", model_files.classifier_sha)
    try:
        s.wait_ready(60)
    finally:
        assert s.stop() == 0
    assert origin.seen == [("/away", f"Bearer {TOKEN}")]
    assert [auth for _p, auth in other.seen] == [None], other.seen
    assert_no_secret(s.log())


def test_https_errors_name_neither_the_token_nor_the_query(
    origins: tuple[Recorder, Recorder], tls: Path, tmp_path: Path, log_dir: Path
) -> None:
    origin, _ = origins
    # a wrong token: 401, said without the token
    s = runtime(origin.url + "/models/model.onnx?sig=" + SIGNATURE, tmp_path, log_dir, https_env(tls, "wrong-tok"))
    assert s.wait_exit(60) == 3
    assert "answered 401: not authorized" in s.log()
    assert "wrong-tok" not in s.log()
    assert_no_secret(s.log())
    # a digest mismatch after a redirect to a presigned URL: the URL is shown without its query
    s = runtime(origin.url + "/away?token=" + SIGNATURE, tmp_path, log_dir, https_env(tls), "--sha256", "1" * 64)
    assert s.wait_exit(60) == 4
    assert "sha256 mismatch" in s.log()
    assert_no_secret(s.log())
