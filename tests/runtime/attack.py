"""Tools for the hostile-client tests: raw sockets, a prober that measures the other clients' latency
while an attack runs, and the server's resident memory read from /proc.

Nothing here sleeps for a fixed time: reads wait on the socket up to a deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import orjson

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def connect(port: int, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    """A connection to the server; `rcvbuf` shrinks the receive buffer (set before connecting, so the
    TCP window follows) for a client that reads little or nothing."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s: socket.socket, deadline_s: float, limit: int = 1 << 24) -> tuple[bytes, bool]:
    """Read until the server closes (or resets) the connection, at most `deadline_s` seconds.
    Returns the bytes read and whether the server closed."""
    end = time.monotonic() + deadline_s
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        left = end - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except TimeoutError:
            return b"".join(chunks), False
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
        total += len(data)
    return b"".join(chunks), False


def statuses(raw: bytes) -> list[int]:
    """Status codes of every response in a byte stream (the start of each status line)."""
    return [int(m.group(1)) for m in _STATUS.finditer(raw)]


def send_all(s: socket.socket, data: bytes, deadline_s: float = 10.0) -> int:
    """Send as much of `data` as the server takes within the deadline (it may stop reading)."""
    end = time.monotonic() + deadline_s
    sent = 0
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            sent += s.send(view[sent : sent + 65536])
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
    return sent


def exchange(port: int, data: bytes, deadline_s: float = 10.0) -> tuple[list[int], bytes, bool]:
    """Send raw bytes on a new connection, half-close, read the answers until the server closes."""
    with connect(port) as s:
        send_all(s, data, deadline_s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        raw, closed = read_until_closed(s, deadline_s)
    return statuses(raw), raw, closed


def echo_request(**override: dict[str, object]) -> bytes:
    """A valid request for the echo model (every datatype, shape [1, 1]); `override` replaces inputs."""
    inputs: dict[str, dict[str, object]] = {}
    for dt in (
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
    ):
        inputs[f"in_{dt}"] = {
            "name": f"in_{dt}",
            "datatype": dt,
            "shape": [1, 1],
            "data": [False if dt == "BOOL" else 0],
        }
    inputs["in_BYTES"] = {"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}
    for name, tensor in override.items():
        inputs[name] = {"name": name, **tensor}
    return orjson.dumps({"inputs": list(inputs.values())})


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        extra,
        body,
    )


@dataclass
class Probe:
    """Latencies (seconds) of a polite client's requests and the server's peak RSS meanwhile."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peak_rss: int = 0

    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99)) if self.latencies else float("inf")


class Prober:
    """A polite client on its own keep-alive connection: one inference after another until stopped,
    recording each latency, and the server's RSS after each."""

    def __init__(self, port: int, pid: int, path: str, body: bytes) -> None:
        self.port = port
        self.pid = pid
        self.path = path
        self.body = body
        self.probe = Probe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"content-type": "application/json"}
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("POST", self.path, self.body, headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                self.probe.failures.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            self.probe.latencies.append(time.perf_counter() - t0)
            if status != 200:
                self.probe.failures.append(f"status {status}")
            self.probe.peak_rss = max(self.probe.peak_rss, rss_bytes(self.pid))
        conn.close()

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> None:
        end = time.monotonic() + timeout_s
        while len(self.probe.latencies) < n:
            if time.monotonic() > end:
                raise TimeoutError(f"the prober got {len(self.probe.latencies)} answers, wanted {n}")
            self._stop.wait(0.01)  # poll

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
