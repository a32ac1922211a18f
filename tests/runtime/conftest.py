"""Fixtures: ONNX models built with onnx.helper, and real runtime servers over loopback HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.runtime.models` importable however pytest is started
    sys.path.append(str(ROOT))

from tests.runtime import models  # noqa: E402
from tests.runtime.harness import RuntimeServer, start_server  # noqa: E402


class ModelFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.classifier = root / "classifier" / "model.onnx"
        self.classifier_sha = models.write_model(self.classifier, models.classifier(0))
        self.erroring = root / "erroring.onnx"
        self.erroring_sha = models.write_model(self.erroring, models.erroring_classifier(0))
        self.echo = root / "echo.onnx"
        models.write_model(self.echo, models.echo_all_types())
        self.adder = root / "adder.onnx"
        models.write_model(self.adder, models.fixed_shape_adder())


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return ModelFiles(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


SMALL_BODY_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def clf(model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    """The classifier, batching off, a small body limit, labels set."""
    s = start_server(
        "clf",
        f"file://{model_files.classifier}",
        "--sha256",
        model_files.classifier_sha,
        "--model-version",
        "7",
        "--revision",
        "abc123",
        "--track",
        "canary",
        "--max-body-bytes",
        str(SMALL_BODY_LIMIT),
        log_dir=log_dir,
    )
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def clf_batched(model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server(
        "clf",
        str(model_files.classifier.parent),  # a directory holding model.onnx, as a plain path
        "--max-batch-size",
        "16",
        "--max-delay-ms",
        "5",
        log_dir=log_dir,
    )
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def echo(model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server("echo", f"file://{model_files.echo}", log_dir=log_dir)
    yield s
    assert s.stop() == 0, s.log()
