"""A downward-API volume as the kubelet writes it, for the runtime's pod-info tests.

The kubelet keeps each version of the files in a timestamped directory, points `..data` at the
current one and the visible names at `..data/<name>`; an update writes a new directory, points a
temporary symlink at it and renames that over `..data` (atomic), then removes the old directory.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

from modeldeploy.runtime import contract as c

_counter = itertools.count()


def go_quote(value: str) -> str:
    """Close enough to Go's %q for the tests (JSON escapes are valid Go escapes)."""
    return json.dumps(value, ensure_ascii=False)


def render(items: dict[str, str]) -> str:
    return "".join(f"{k}={go_quote(v)}\n" for k, v in sorted(items.items()))


class PodInfoDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.labels: dict[str, str] = {}
        self.annotations: dict[str, str] = {}
        self.write()
        for name in (c.POD_INFO_LABELS_FILE, c.POD_INFO_ANNOTATIONS_FILE):
            (root / name).symlink_to(Path("..data") / name)

    def write(self) -> None:
        """Publish the current labels and annotations with the kubelet's atomic symlink swap."""
        version = self.root / f"..2026_11_30_{next(_counter):06d}"
        version.mkdir()
        (version / c.POD_INFO_LABELS_FILE).write_text(render(self.labels))
        (version / c.POD_INFO_ANNOTATIONS_FILE).write_text(render(self.annotations))
        data = self.root / "..data"
        old = data.resolve() if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, data)
        if old is not None:
            shutil.rmtree(old)

    def set(
        self, *, labels: dict[str, str | None] | None = None, annotations: dict[str, str | None] | None = None
    ) -> None:
        """Change some labels or annotations (None removes one) and publish."""
        for target, changes in ((self.labels, labels), (self.annotations, annotations)):
            for k, v in (changes or {}).items():
                if v is None:
                    target.pop(k, None)
                else:
                    target[k] = v
        self.write()

    def mirror(self, url: str | None, percent: float = 100, candidate: str = "cand1", **extra: object) -> None:
        value = None if url is None else json.dumps({"url": url, "percent": percent, "candidate": candidate, **extra})
        self.set(annotations={c.POD_ANNOTATION_MIRROR: value})
