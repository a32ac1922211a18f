"""Colour for a terminal, none otherwise (pure): the words carry the meaning, colour only repeats it."""

from __future__ import annotations

from dataclasses import dataclass

_CODES = {"good": "32", "bad": "31", "warn": "33", "dim": "2", "bold": "1"}

#: words that get a colour when the output is a terminal
_WORDS = {
    "Healthy": "good",
    "Pass": "good",
    "True": "good",
    "Promoted": "good",
    "Approved": "good",
    "Fail": "bad",
    "Failed": "bad",
    "RolledBack": "bad",
    "Aborted": "bad",
    "Stalled": "bad",
    "Inconclusive": "warn",
    "Paused": "warn",
    "AwaitingApproval": "warn",
    "Progressing": "warn",
}


@dataclass(frozen=True)
class Style:
    colour: bool = False

    def paint(self, text: str, kind: str) -> str:
        code = _CODES.get(kind)
        if not self.colour or code is None or not text:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def word(self, text: str) -> str:
        """`text` in the colour its meaning has (`Pass` green, `Fail` red), else plain."""
        return self.paint(text, _WORDS.get(text, ""))


PLAIN = Style(False)
