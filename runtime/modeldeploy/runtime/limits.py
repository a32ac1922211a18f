"""Limits on every part of a request, each a flag with a default, and the 4xx that names it.

A client can make the server hold memory or a connection only within these bounds:

| limit                     | default      | answer                                                  |
| ------------------------- | ------------ | ------------------------------------------------------- |
| `--max-request-line-bytes` | 8 KiB       | 414 (the request target is longer)                      |
| `--max-header-bytes`       | 16 KiB      | 431 (names and values together)                         |
| `--max-headers`            | 100         | 431                                                     |
| `--header-timeout-s`       | 10 s        | 408 (total time from a request's first byte to its blank line) |
| `--request-timeout-s`      | 60 s        | 408 (total time from a request's first byte to its last) |
| `--keepalive-timeout-s`    | 75 s        | an idle connection is closed                            |
| `--max-connections`        | 1024        | 503 and close for connections past it                   |
| `--write-buffer-bytes`     | 1 MiB       | unsent answers past it pause reading; resumes below 1/4 |
| `--max-tensor-elements`    | body limit  | 400 (a dimension, or the element count, over it)        |
| `--max-bytes-elements`     | 131072      | 413 (BYTES elements in one request)                     |
| `--max-bytes-total`        | 16 MiB      | 413 (bytes of BYTES elements in one request)            |

The body limit (`--max-body-bytes`, 413) lives with the other server options. Every tensor
element takes at least one byte of the body, so the default element limit is the body limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

#: flag -> Limits field, converter kind, help; read by config.parse like every other option
FLAGS: Final[list[tuple[str, str, str, str]]] = [
    ("--max-request-line-bytes", "max_request_line_bytes", "int", "a longer request target gets 414"),
    ("--max-header-bytes", "max_header_bytes", "int", "more header bytes (names + values) get 431"),
    ("--max-headers", "max_headers", "int", "more header fields get 431"),
    ("--header-timeout-s", "header_timeout_s", "float", "a request whose headers take longer gets 408"),
    ("--request-timeout-s", "request_timeout_s", "float", "a request (headers and body) taking longer gets 408"),
    ("--keepalive-timeout-s", "keepalive_timeout_s", "float", "an idle keep-alive connection is closed after this"),
    ("--max-connections", "max_connections", "int", "connections past this many get 503 and are closed"),
    (
        "--write-buffer-bytes",
        "write_buffer_bytes",
        "int",
        "unsent answers past this pause reading the connection (resumes below a quarter of it)",
    ),
    (
        "--max-tensor-elements",
        "max_tensor_elements",
        "int",
        "a tensor dimension or element count over this gets 400 (0: the body limit)",
    ),
    ("--max-bytes-elements", "max_bytes_elements", "int", "more BYTES elements in one request get 413"),
    ("--max-bytes-total", "max_bytes_total", "int", "more bytes of BYTES elements in one request get 413"),
]


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0  # longer than the usual load balancer idle timeout (60 s)
    max_connections: int = 1024
    write_buffer_bytes: int = 1024 * 1024
    max_tensor_elements: int = 0  # 0: the body limit
    max_bytes_elements: int = 128 * 1024
    max_bytes_total: int = 16 * 1024 * 1024

    def tensor_elements(self, max_body_bytes: int) -> int:
        return self.max_tensor_elements or max_body_bytes

    def sweep_every_s(self) -> float:
        """How often the server looks for connections past a timeout: a quarter of the shortest."""
        shortest = min(self.header_timeout_s, self.request_timeout_s, self.keepalive_timeout_s)
        return min(5.0, max(0.02, shortest / 4))


@dataclass(frozen=True, slots=True)
class TensorLimits:
    """What the codec checks: element counts and BYTES sizes."""

    max_elements: int
    max_bytes_elements: int
    max_bytes_total: int


def _positive_int(v: str) -> int:
    n = int(v)
    if n <= 0:
        raise ValueError(f"must be > 0: {v}")
    return n


def nonneg_int(v: str) -> int:
    """An integer >= 0 (a flag's value)."""
    n = int(v)
    if n < 0:
        raise ValueError(f"must be >= 0: {v}")
    return n


def _positive_float(v: str) -> float:
    x = float(v)
    if not x > 0 or x == float("inf"):
        raise ValueError(f"must be a finite number > 0: {v}")
    return x


def converter(flag: str, kind: str) -> Callable[[str], Any]:
    if kind == "float":
        return _positive_float
    return nonneg_int if flag == "--max-tensor-elements" else _positive_int
