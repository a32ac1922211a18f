"""A real S3 server for the tests: versitygw (posix backend, a temporary directory) on loopback.

The binary is built from its Go module by hack/s3/build-s3.sh (which `make install` runs; cached per
version under ~/.cache/modeldeploy/bin/versitygw-<version>/); the fixture runs the script too, so a
missing binary is built (a minute) rather than skipped. Nothing sleeps for a fixed time: readiness is
polled with a deadline.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
from tests.runtime.harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "s3" / "build-s3.sh"


def versitygw_binary() -> Path:
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1200, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"hack/s3/build-s3.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("VERSITYGW_BIN="))
    return Path(line.split("=", 1)[1]) / "versitygw"


class S3Server:
    """versitygw with one root user; buckets are directories under `root`."""

    def __init__(self, root: Path, log_path: Path, access_key: str, secret_key: str, region: str) -> None:
        self.root = root
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        binary = versitygw_binary()
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "meta").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "ROOT_ACCESS_KEY_ID": self.access_key,
            "ROOT_SECRET_ACCESS_KEY": self.secret_key,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(binary),
                    "--port",
                    f"127.0.0.1:{self.port}",
                    "--region",
                    self.region,
                    "--quiet",
                    "posix",
                    "--sidecar",
                    str(self.root / "meta"),
                    str(self.root / "data"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"versitygw exited with {self.proc.returncode}:\n{self.log()}")
            try:
                httpx.get(self.endpoint, timeout=1.0)
            except httpx.HTTPError:
                return False
            return True

        wait_for(up, 30, "versitygw to listen")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
