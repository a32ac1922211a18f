"""Follow the pod (issue 13): re-read the downward-API files every POD_INFO_POLL_S and apply what changed.

The kubelet updates a downward-API volume by writing a new timestamped directory and swapping the
`..data` symlink, so each file is replaced whole; reading a file by its name follows the symlink at
open time and sees the old or the new content, never a mix. The two files are read (a few hundred
bytes) and compared with what was applied last: no reliance on mtimes, which a symlink swap does
not change on the name. A missing or unreadable file counts as empty (the defaults: the flag's track,
serving, no mirror) and is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.agreement import Rules
from modeldeploy.runtime.app import App
from modeldeploy.runtime.config import Config
from modeldeploy.runtime.httpserver import HttpServer
from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.mirror import Mirror
from modeldeploy.runtime.mirrormetrics import MirrorMetrics
from modeldeploy.runtime.podinfo import PodView, parse_downward, pod_view

log = logging.getLogger("modeldeploy.runtime.pod")


def read_view(directory: Path, default_track: str, complaints: set[str]) -> tuple[tuple[bytes, bytes], PodView]:
    """Read both files once: (their raw contents, what they say). New problems are logged once."""
    raw = _read_both(directory, complaints)
    labels, p1 = parse_downward(raw[0].decode("utf-8", errors="replace"))
    annotations, p2 = parse_downward(raw[1].decode("utf-8", errors="replace"))
    view = pod_view(labels, annotations, default_track)
    for p in (*(f"labels {x}" for x in p1), *(f"annotations {x}" for x in p2), *view.problems):
        _complain(complaints, p)
    return (raw[0], raw[1]), view


def _read_both(directory: Path, complaints: set[str], attempts: int = 3) -> list[bytes]:
    """Both files' bytes. A file that vanishes under the read (the kubelet removing the old version just
    after the swap) is read again, both files together, before it counts as missing."""
    failed: list[str] = []
    raw: list[bytes] = []
    for _ in range(attempts):
        raw, failed = [], []
        for name in (c.POD_INFO_LABELS_FILE, c.POD_INFO_ANNOTATIONS_FILE):
            try:
                raw.append((directory / name).read_bytes())
            except OSError as e:
                failed.append(f"cannot read {directory / name}: {e.strerror or e}; taken as empty")
                raw.append(b"")
        if not failed:
            break
    for message in failed:
        _complain(complaints, message)
    return raw


def _complain(complaints: set[str], message: str) -> None:
    if message not in complaints:
        complaints.add(message)
        log.warning("pod info: %s", message)


class PodWatcher:
    def __init__(
        self,
        directory: Path,
        default_track: str,
        apply: Callable[[PodView], None],
        *,
        poll_s: float = c.POD_INFO_POLL_S,
    ) -> None:
        self.directory = directory
        self.default_track = default_track
        self.apply = apply
        self.poll_s = poll_s
        self._last: tuple[bytes, bytes] | None = None
        self._complaints: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Read the files; apply their view when they changed since the last check."""
        raw, view = read_view(self.directory, self.default_track, self._complaints)
        if raw == self._last:
            return
        self._last = raw
        self.apply(view)

    def start(self) -> None:
        self.check()  # the first view before anything is served
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.check()
            except Exception:  # never let a bad file stop following the pod
                log.exception("pod info: applying a change failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def follow_pod(cfg: Config, app: App, server: HttpServer, metrics: Metrics) -> PodWatcher | None:
    """With --pod-info: give the app a mirror and start following the pod (None without it)."""
    if not cfg.pod_info:
        return None
    rules = Rules(watched_output=cfg.prediction_output, watched_kind=cfg.prediction_kind)
    app.mirror = Mirror(
        asyncio.get_running_loop(),
        cfg.model_name,
        MirrorMetrics(metrics),
        rules,
        max_loop_share=cfg.mirror_max_loop_share,
    )

    def apply(view: PodView) -> None:
        if view.track != app.track:
            log.info("pod info: track %s -> %s", app.track, view.track)
            app.set_track(view.track)
        if view.serving != app.state.serving:
            log.info("pod info: %s", "serving" if view.serving else "not serving: keep-alive connections end")
            app.state.serving = view.serving
            server.set_shedding(not view.serving)
        assert app.mirror is not None
        app.mirror.configure(view.mirror)

    watcher = PodWatcher(Path(cfg.pod_info), cfg.track, apply)
    watcher.start()
    return watcher
