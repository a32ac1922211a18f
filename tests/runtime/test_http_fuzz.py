"""A raw-bytes fuzz of the HTTP layer (hypothesis, issue 14): random bytes, and requests built from
parts that are each sometimes valid and sometimes not (method, target, version, header names and
values with invalid UTF-8, Content-Length and Transfer-Encoding disagreements, chunk sizes, bodies
that are JSON mutations of a valid inference request). Each goes on a fresh connection that is then
half-closed: the server must answer only below 500 and close within the deadline; its log must hold
no traceback and no internal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.runtime.attack import echo_request, exchange
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer, start_server

pytestmark = pytest.mark.slow

PATHS = [
    "/v2/models/echo/infer",
    "/v2/models/echo/versions/1/infer",
    "/v2/models/echo",
    "/v2/models/echo/ready",
    "/v2/models/other/infer",
    "/v2/health/ready",
    "/v2",
    "/metrics",
    "/v2/models/echo/infer?x=1",
    "/v2/models/%65cho/infer",
    "*",
    "http://h/v2",
]
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE", b"G\x00T"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b"", b"http/1.1"]
HEADER_NAMES = [
    b"content-length",
    b"transfer-encoding",
    b"content-encoding",
    b"inference-header-content-length",
    b"expect",
    b"connection",
    b"host",
    b"x-\xff",
    b"bad name",
    b"",
]


@pytest.fixture(scope="module")
def fuzzed(model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server(
        "echo",
        str(model_files.echo),
        "--max-body-bytes",
        str(64 * 1024),
        "--header-timeout-s",
        "2",
        "--request-timeout-s",
        "3",
        log_dir=log_dir,
    )
    yield s
    assert s.stop() == 0
    log = s.log()
    assert "Traceback" not in log and "internal error" not in log, log[-5000:]


def _json_mutation(doc: object, draw: st.DrawFn) -> object:
    """Replace a random part of a JSON document by a random JSON value."""
    leaf = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        return {**doc, key: _json_mutation(doc[key], draw)}
    if isinstance(doc, list) and doc and draw(st.booleans()):
        i = draw(st.integers(0, len(doc) - 1))
        return [*doc[:i], _json_mutation(doc[i], draw), *doc[i + 1 :]]
    return draw(leaf)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    doc = orjson.loads(echo_request())
    if kind == "mutated":
        doc = _json_mutation(doc, draw)
    try:
        return orjson.dumps(doc)
    except TypeError:  # a float such as nan: orjson writes null, integers past 64 bits refuse
        return b'{"inputs": 1}'


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=400))
    method = draw(st.sampled_from(METHODS))
    target = draw(st.sampled_from(PATHS)).encode() + draw(st.binary(max_size=6).filter(lambda b: b" " not in b))
    version = draw(st.sampled_from(VERSIONS))
    body = draw(bodies())
    headers: list[bytes] = [b"host: fuzz"]
    framing = draw(st.sampled_from(["length", "chunked", "both", "none", "wrong-length"]))
    if framing in ("length", "both"):
        headers.append(b"content-length: %d" % len(body))
    if framing == "wrong-length":
        headers.append(b"content-length: %d" % draw(st.integers(0, len(body) + 10)))
    if framing in ("chunked", "both"):
        headers.append(b"transfer-encoding: chunked")
        size = draw(st.sampled_from([b"%x" % len(body), b"ffffffffffffffffff", b"-1", b"zz", b"0"]))
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(HEADER_NAMES))
        value = draw(st.sampled_from([b"gzip", b"100-continue", b"close", b"12", b"-5", b"\xc3\x28", b"deflate"]))
        headers.append(name + b": " + value)
    return method + b" " + target + b" " + version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=requests())
def test_no_bytes_make_a_server_error(fuzzed: RuntimeServer, raw: bytes) -> None:
    codes, answer, closed = exchange(fuzzed.port, raw, deadline_s=6.0)
    assert all(code < 500 for code in codes), answer[:500]
    assert closed, f"the server neither closed nor finished: {answer[:200]!r}"
