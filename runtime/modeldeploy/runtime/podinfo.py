"""What the runtime reads from its pod (issue 13): pure parsing, no I/O.

A Kubernetes downward-API volume writes a pod's labels and annotations as files of lines
`key="value"`, the value quoted as Go's `%q` does (`\\"`, `\\\\`, `\\n`, `\\t`, `\\xNN`, `\\uNNNN`, ...).
`parse_downward` reads that format; `pod_view` turns labels and annotations into what the runtime
follows: its track, whether it serves, and the mirror settings (`parse_mirror`). Every problem is
returned as a message, never raised: a bad value leaves that setting at its safe default (the flag's
track, serving, no mirror) and the watcher logs the message once.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from typing import Any

import orjson

from modeldeploy.runtime import contract as c

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


class QuoteError(ValueError):
    pass


def go_unquote(quoted: str) -> str:
    """The string a Go double-quoted literal (strconv.Quote's output) stands for. `\\xNN` and octal
    escapes are bytes, joined and decoded as UTF-8 (invalid sequences replaced)."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise QuoteError("value is not a double-quoted string")
    s = quoted[1:-1]
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            raise QuoteError("unescaped quote inside the value")
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        if i + 1 >= n:
            raise QuoteError("value ends inside an escape")
        e = s[i + 1]
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            i += 2
        elif e in _HEX_WIDTH:
            width = _HEX_WIDTH[e]
            digits = s[i + 2 : i + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise QuoteError(f"bad \\{e} escape")
            value = int(digits, 16)
            if e == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise QuoteError(f"\\{e}{digits} is not a Unicode scalar value")
                out += chr(value).encode()
            i += 2 + width
        elif e in "01234567":
            digits = s[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise QuoteError("bad octal escape")
            out.append(int(digits, 8))
            i += 4
        else:
            raise QuoteError(f"unknown escape \\{e}")
    return out.decode("utf-8", errors="replace")


def parse_downward(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse a downward-API labels or annotations file: (key -> value, problems). A line that does not
    parse is skipped and named in the problems; the others still count."""
    items: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        key, sep, rest = line.partition("=")
        if not sep or not key:
            problems.append(f'line {number}: not key="value"')
            continue
        try:
            items[key] = go_unquote(rest)
        except QuoteError as e:
            problems.append(f"line {number} ({key[:100]}): {e}")
    return items, problems


@dataclass(frozen=True, slots=True)
class MirrorSettings:
    url: str  # scheme://host:port, no path
    host: str
    port: int
    percent: float
    candidate: str
    timeout_s: float
    absolute_tolerance: float
    relative_tolerance: float


def _number(doc: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = doc.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"{key} must be a number, got {raw!r}"[:200])
    if not low <= raw <= high:
        raise ValueError(f"{key} must be within {low:g}..{high:g}, got {raw!r}")
    return float(raw)


def parse_mirror(raw: str | None) -> tuple[MirrorSettings | None, str | None]:
    """The mirror annotation's JSON: (settings, None), (None, None) when absent or empty (mirror off),
    or (None, problem) when it is not valid (mirror off, and the problem logged)."""
    if raw is None or not raw.strip():
        return None, None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"{c.POD_ANNOTATION_MIRROR} is not JSON: {e}"[:300]
    if not isinstance(doc, dict):
        return None, f"{c.POD_ANNOTATION_MIRROR} must be a JSON object"
    try:
        url = doc.get(c.MIRROR_KEY_URL)
        if not isinstance(url, str):
            raise ValueError(f"{c.MIRROR_KEY_URL} must be a string like http://host:port")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{c.MIRROR_KEY_URL} must be http://host[:port], got {url[:200]!r}")
        try:
            port = parts.port or 80
        except ValueError:
            raise ValueError(f"{c.MIRROR_KEY_URL} has a bad port: {url[:200]!r}") from None
        candidate = doc.get(c.MIRROR_KEY_CANDIDATE)
        if not isinstance(candidate, str) or not candidate or len(candidate) > 253:
            raise ValueError(f"{c.MIRROR_KEY_CANDIDATE} must be the candidate's revision (a non-empty string)")
        percent = _number(doc, c.MIRROR_KEY_PERCENT, 0.0, 0.0, 100.0)
        timeout_ms = _number(doc, c.MIRROR_KEY_TIMEOUT_MS, c.DEFAULT_MIRROR_TIMEOUT_MS, 1.0, 600_000.0)
        tol = doc.get(c.MIRROR_KEY_SCORE_TOLERANCE, {})
        if not isinstance(tol, dict):
            raise ValueError(f"{c.MIRROR_KEY_SCORE_TOLERANCE} must be an object")
        absolute = _number(tol, c.MIRROR_KEY_ABSOLUTE, c.DEFAULT_MIRROR_ABSOLUTE_TOLERANCE, 0.0, math.inf)
        relative = _number(tol, c.MIRROR_KEY_RELATIVE, c.DEFAULT_MIRROR_RELATIVE_TOLERANCE, 0.0, math.inf)
    except ValueError as e:
        return None, f"{c.POD_ANNOTATION_MIRROR}: {e}"
    return (
        MirrorSettings(
            url=f"http://{parts.netloc}",
            host=parts.hostname,
            port=port,
            percent=percent,
            candidate=candidate,
            timeout_s=timeout_ms / 1000.0,
            absolute_tolerance=absolute,
            relative_tolerance=relative,
        ),
        None,
    )


@dataclass(frozen=True, slots=True)
class PodView:
    """What the runtime follows from its pod; `problems` says what was ignored and why."""

    track: str
    serving: bool
    mirror: MirrorSettings | None
    problems: tuple[str, ...] = ()


def pod_view(labels: dict[str, str], annotations: dict[str, str], default_track: str) -> PodView:
    problems: list[str] = []
    track = labels.get(c.POD_LABEL_TRACK, default_track)
    if track not in c.TRACKS:
        problems.append(f"label {c.POD_LABEL_TRACK}={track[:100]!r} is not one of {', '.join(c.TRACKS)}; ignored")
        track = default_track
    serving_raw = labels.get(c.POD_LABEL_SERVING, c.SERVING_TRUE)
    serving = serving_raw.strip().lower() != c.SERVING_FALSE
    mirror, problem = parse_mirror(annotations.get(c.POD_ANNOTATION_MIRROR))
    if problem is not None:
        problems.append(problem + "; mirror off")
    return PodView(track, serving, mirror, tuple(problems))
