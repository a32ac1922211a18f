"""Redrawing a frame in place on a terminal (pure: frames in, the bytes to write out).

A frame overwrites the previous one from the top-left corner, line by line, each line clipped to
the terminal's width and erased to its end, then everything below erased: no flicker, and no
line wraps that would shift the next redraw. A frame taller than the terminal is cut, with a last
line saying so. Off a terminal there is no redraw: each changed frame is printed after the last.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

HOME = "\x1b[H"
CLEAR_SCREEN = "\x1b[2J"
ERASE_LINE_END = "\x1b[K"
ERASE_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
RESET = "\x1b[0m"


def visible(line: str) -> str:
    """`line` without its escape sequences."""
    return _ESCAPE.sub("", line)


def clip(line: str, width: int) -> str:
    """The first `width` visible characters of `line`, escape sequences kept (and reset if any)."""
    if len(visible(line)) <= width:
        return line
    out: list[str] = []
    shown = 0
    i = 0
    coloured = False
    while i < len(line) and shown < width:
        m = _ESCAPE.match(line, i)
        if m is not None:
            out.append(m.group(0))
            coloured = True
            i = m.end()
            continue
        out.append(line[i])
        shown += 1
        i += 1
    return "".join(out) + (RESET if coloured else "")


def frame(text: str, width: int, height: int, first: bool) -> str:
    """What to write to a terminal of `width` x `height` to show `text` in place of the last frame."""
    lines = text.split("\n")
    room = max(1, height - 1)  # the cursor's line stays free, so the terminal never scrolls
    if len(lines) > room:
        cut = len(lines) - room + 1
        lines = [*lines[: room - 1], f"... {cut} more lines (a taller terminal shows them)"]
    body = "".join(clip(line, max(1, width - 1)) + ERASE_LINE_END + "\n" for line in lines)
    return (HIDE_CURSOR + HOME + CLEAR_SCREEN if first else HOME) + body + ERASE_BELOW
