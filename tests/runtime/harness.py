"""Start the real runtime (`python -m modeldeploy.runtime`) as a subprocess on loopback and wait on it.

Reusable outside these tests (the cluster tests start pods the same way). Nothing here sleeps for a
fixed time: every wait polls a condition until a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

POLL_S = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_S)  # poll


class RuntimeServer:
    def __init__(
        self,
        model_name: str,
        model_uri: str,
        *extra: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args: list[str] = [
            sys.executable,
            "-m",
            "modeldeploy.runtime",
            "--model-name",
            model_name,
            "--model-uri",
            model_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        ]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_dir / f"runtime-{model_name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeServer:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self, path: str) -> int | None:
        try:
            return httpx.get(self.url + path, timeout=2.0).status_code
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 60.0) -> RuntimeServer:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtime exited with {self.proc.returncode}:\n{self.log()}")
            return self.status("/v2/health/ready") == 200

        wait_for(ready, timeout, f"{self.model_name} to be ready")
        return self

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def start_server(
    model_name: str, model_uri: str, *extra: str, log_dir: Path, env: dict[str, str] | None = None
) -> RuntimeServer:
    return RuntimeServer(model_name, model_uri, *extra, log_dir=log_dir, env=env).start().wait_ready()
