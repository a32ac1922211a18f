"""Helpers of the pod-following and mirror tests: requests in both encodings, metric reads, and two
fake candidates (one that records what it is sent, one that never answers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families
from tests.runtime.harness import RuntimeServer

from modeldeploy.runtime import contract as c

#: headers a caller's proxy or client sends, none of which may reach the candidate
CALLER_HEADERS = {
    "Authorization": "Bearer secret-token",
    "Cookie": "session=abc",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "api.example.com",
    "X-Real-IP": "203.0.113.9",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=1",
    "X-Request-Id": "req-123",
    "User-Agent": "caller/1.0",
}


def json_request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    )
    return body, {"content-type": "application/json"}


def binary_request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    x = np.ascontiguousarray(x, dtype="<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    )
    return header + x.tobytes(), {
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream",
    }


def answer_of(r: httpx.Response) -> np.ndarray:
    """The probabilities of a v2 answer, JSON or binary."""
    assert r.status_code == 200, r.text
    n = r.headers.get("inference-header-content-length")
    if n is None:
        (out,) = r.json()["outputs"]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    meta = orjson.loads(r.content[: int(n)])
    (out,) = meta["outputs"]
    return np.frombuffer(r.content[int(n) :], dtype="<f4").reshape(out["shape"])


def samples(server: RuntimeServer) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(server.url + c.METRICS_PATH, timeout=5.0).text
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(server: RuntimeServer, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(v for n, lab, v in samples(server) if n == name and all(lab.get(k) == w for k, w in labels.items()))


def mirror_outcomes(server: RuntimeServer, candidate: str, track: str = "stable") -> dict[str, float]:
    got = {o: 0.0 for o in c.MIRROR_OUTCOMES}
    for n, lab, v in samples(server):
        if n == c.METRIC_MIRROR_REQUESTS_TOTAL and lab.get("candidate") == candidate and lab.get("track") == track:
            got[lab["outcome"]] += v
    return got


@dataclass
class Recorder:
    """A fake candidate: records each request (path, headers, body) and answers 503."""

    url: str
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def recorder() -> Iterator[Recorder]:
    rec = Recorder("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            rec.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield rec
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def black_hole() -> Iterator[str]:
    """A fake candidate that accepts connections and reads, and never answers: copies pile up."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        lsock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        for conn in held:
            conn.close()
        lsock.close()
