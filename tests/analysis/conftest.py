"""Real runtimes (subprocesses on loopback) scraped by a real Prometheus, for the analysis tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.runtime...` importable however pytest is started
    sys.path.append(str(ROOT))

from tests.runtime import models  # noqa: E402
from tests.runtime.harness import RuntimeServer, free_port, wait_for  # noqa: E402

from modeldeploy.localcluster.paths import prometheus_bin_dir  # noqa: E402

NAMESPACE = "ml"
MODEL = "fraud-scorer"
SCRAPE_INTERVAL = "1s"


@dataclass(frozen=True)
class Revision:
    """One runtime process standing for a revision's single pod."""

    name: str
    server: RuntimeServer

    @property
    def url(self) -> str:
        return self.server.url


def _runtime(root: Path, log_dir: Path, revision: str, track: str, model: bytes) -> Revision:
    path = root / f"{revision}.onnx"
    sha = models.write_model(path, model)
    server = RuntimeServer(
        MODEL,
        f"file://{path}",
        "--sha256",
        sha,
        "--revision",
        revision,
        "--track",
        track,
        "--model-version",
        revision,
        log_dir=log_dir,
    )
    return Revision(revision, server.start())


@dataclass(frozen=True)
class Runtimes:
    stable: Revision
    same: Revision
    """Same model as stable under another revision: a good canary."""
    shifted: Revision
    """Another seed: a different class mix on the same inputs."""
    erroring: Revision
    """Answers 500 to every real input."""

    def all(self) -> tuple[Revision, ...]:
        return (self.stable, self.same, self.shifted, self.erroring)


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtimes]:
    root = tmp_path_factory.mktemp("analysis-models")
    logs = tmp_path_factory.mktemp("analysis-logs")
    started = Runtimes(
        stable=_runtime(root, logs, "stable0", "stable", models.classifier(0)),
        same=_runtime(root, logs, "same0", "canary", models.classifier(0)),
        shifted=_runtime(root, logs, "shifted1", "canary", models.classifier(1)),
        erroring=_runtime(root, logs, "erroring0", "canary", models.erroring_classifier(0)),
    )
    try:
        for r in started.all():
            r.server.wait_ready()
        yield started
    finally:
        for r in started.all():
            r.server.stop()


class Prometheus:
    """A Prometheus process of our own: file_sd targets, 1 s scrapes, its own data dir."""

    def __init__(self, root: Path, targets: list[tuple[str, dict[str, str]]]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets_file = root / "targets.yaml"
        self.targets_file.write_text(
            yaml.safe_dump([{"targets": [t], "labels": labels} for t, labels in targets], sort_keys=False)
        )
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [
                {
                    "job_name": "runtime",
                    "scrape_interval": SCRAPE_INTERVAL,
                    "scrape_timeout": SCRAPE_INTERVAL,
                    "file_sd_configs": [{"files": [str(self.targets_file)], "refresh_interval": "1s"}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = root / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        built = prometheus_bin_dir() / "prometheus"
        binary = str(built) if built.exists() else None
        if binary is None:
            pytest.fail(f"prometheus is not built ({built}): run `bash hack/cluster/build-node.sh` (make install does)")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.root / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._ready, 30, "Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def targets_up(self) -> int:
        body = httpx.get(self.url + "/api/v1/query", params={"query": "sum(up)"}, timeout=2).json()
        result = body["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def prometheus(runtimes: Runtimes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    targets = [
        (r.url.removeprefix("http://"), {"namespace": NAMESPACE, "pod": f"{r.name}-pod"}) for r in runtimes.all()
    ]
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), targets).start()
    try:
        wait_for(lambda: prom.targets_up() == len(targets), 30, "Prometheus to scrape every runtime")
        yield prom
    finally:
        prom.stop()
