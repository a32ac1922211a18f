"""Internal errors: one log line with a request id, and a 500 body that names the id and nothing else.

A bug or a failing model must never put a stack trace in the log per request (a client could fill
the disk with them) nor internals in the answer; the request id ties the answer to the log line.
"""

from __future__ import annotations

import itertools
import logging
import os

import orjson

log = logging.getLogger("modeldeploy.runtime")

_PREFIX = f"{os.getpid():x}-{os.urandom(3).hex()}"
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def one_line(e: BaseException, limit: int = 300) -> str:
    """The exception's type and the first line of its message, shortened."""
    lines = str(e).strip().splitlines()
    msg = lines[0][:limit] if lines else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def safe_path(path: str, limit: int = 200) -> str:
    """A client-sent path as it may appear in a log line: printable, shortened, no query string."""
    return ascii(path.split("?", 1)[0][:limit])


def internal_error(what: str, e: BaseException) -> tuple[str, bytes]:
    """Log one line for an internal error; return its request id and the 500 body."""
    rid = new_request_id()
    log.error("internal error, request id %s, %s: %s", rid, what, one_line(e))
    return rid, orjson.dumps({"error": "internal server error", "request_id": rid})
