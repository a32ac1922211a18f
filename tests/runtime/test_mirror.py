"""The mirror between real runtime processes over loopback: a stable runtime copies its answered requests
to a candidate (another runtime, or a fake one), compares the answers and counts the outcomes. The live
answers are checked against onnxruntime in every case: the candidate never changes them."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.runtime import models
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer, free_port, start_server, wait_for
from tests.runtime.mirrorkit import (
    CALLER_HEADERS,
    answer_of,
    binary_request,
    black_hole,
    json_request,
    mirror_outcomes,
    recorder,
    value,
)
from tests.runtime.podinfo_dir import PodInfoDir

from modeldeploy.runtime import contract as c

THRESHOLD = 1.2816  # models.diverging_classifier's default: ~10% of N(0, 1) rows
Encode = Callable[[np.ndarray], tuple[bytes, dict[str, str]]]


@pytest.fixture(scope="module")
def stable_pod(tmp_path_factory: pytest.TempPathFactory) -> PodInfoDir:
    p = PodInfoDir(tmp_path_factory.mktemp("stable") / "podinfo")
    p.set(labels={c.POD_LABEL_TRACK: "stable"})
    return p


@pytest.fixture(scope="module")
def stable(stable_pod: PodInfoDir, model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server(
        "clf",
        f"file://{model_files.classifier}",
        "--revision",
        "stable1",
        "--mirror-max-loop-share",
        "1",  # exact counts below: no copy dropped for the loop budget (test_mirror_unit tests it)
        log_dir=log_dir,
        env={c.ENV_POD_INFO: str(stable_pod.root)},
    )
    yield s
    assert s.stop() == 0, s.log()


def _candidate(model: bytes, name: str, root: Path, log_dir: Path, env: dict[str, str] | None = None) -> RuntimeServer:
    path = root / f"{name}.onnx"
    sha = models.write_model(path, model)
    return start_server("clf", f"file://{path}", "--sha256", sha, "--revision", name, log_dir=log_dir, env=env)


@pytest.fixture(scope="module")
def identical(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[tuple[RuntimeServer, PodInfoDir]]:
    """The same model as stable, as a shadow pod whose own mirror annotation points at a live server:
    it must never mirror the copies it gets."""
    root = tmp_path_factory.mktemp("identical")
    pod = PodInfoDir(root / "podinfo")
    pod.set(labels={c.POD_LABEL_TRACK: "shadow"})
    s = _candidate(models.classifier(0), "same", root, log_dir, env={c.ENV_POD_INFO: str(pod.root)})
    yield s, pod
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def diverging(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[RuntimeServer]:
    s = _candidate(models.diverging_classifier(0, THRESHOLD), "div", tmp_path_factory.mktemp("div"), log_dir)
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def erroring(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[RuntimeServer]:
    s = _candidate(models.erroring_classifier(0), "err", tmp_path_factory.mktemp("err"), log_dir)
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture
def mirror_off(stable_pod: PodInfoDir) -> Iterator[None]:
    yield
    stable_pod.mirror(None)


def send(stable: RuntimeServer, x: np.ndarray, encode: Encode, headers: dict[str, str] | None = None) -> np.ndarray:
    """One live request; returns its answer after checking it against onnxruntime."""
    body, h = encode(x)
    r = httpx.post(stable.url + c.infer_path("clf"), content=body, headers={**h, **(headers or {})}, timeout=10)
    got = answer_of(r)
    np.testing.assert_allclose(got, models.classifier_reference(models.classifier(0), x), rtol=1e-5, atol=1e-7)
    return got


def turn_on(stable: RuntimeServer, pod: PodInfoDir, url: str, candidate: str, **extra: object) -> None:
    pod.mirror(url, 100, candidate, **extra)
    series = f'{c.LABEL_CANDIDATE}="{candidate}"'
    wait_for(lambda: series in httpx.get(stable.url + c.METRICS_PATH).text, 5, f"the mirror to {candidate} on")


def wait_outcomes(stable: RuntimeServer, candidate: str, total: int) -> dict[str, float]:
    def done() -> dict[str, float] | None:
        got = mirror_outcomes(stable, candidate)
        return got if sum(got.values()) >= total else None

    try:
        got: dict[str, float] = wait_for(done, 20, f"{total} mirror outcomes for {candidate}")
    except TimeoutError as e:
        raise TimeoutError(f"{e}; got {mirror_outcomes(stable, candidate)}") from None
    assert sum(got.values()) == total, got
    return got


@pytest.mark.usefixtures("mirror_off")
def test_identical_candidate_agrees_on_every_json_and_binary_request(
    stable: RuntimeServer, stable_pod: PodInfoDir, identical: tuple[RuntimeServer, PodInfoDir]
) -> None:
    cand, cand_pod = identical
    rng = np.random.default_rng(0)
    with recorder() as rec:
        cand_pod.mirror(rec.url, 100, "nobody")  # the candidate mirrors too, but never a copy
        turn_on(stable, stable_pod, cand.url, "same")
        for i in range(60):
            send(stable, rng.normal(size=(1 + i % 3, 4)).astype(np.float32), json_request if i % 2 else binary_request)
        got = wait_outcomes(stable, "same", 60)
        assert got == {"agreed": 60, "disagreed": 0, "candidate_error": 0, "dropped": 0}
        # the candidate counts the copies in its own metrics, under its own track
        assert value(cand, c.METRIC_REQUESTS_TOTAL, track="shadow", code="200") == 60
        assert rec.seen == []
    for arm in c.MIRROR_ARMS:
        assert value(stable, c.METRIC_MIRROR_DURATION + "_count", candidate="same", arm=arm, track="stable") == 60
    # probabilities [N, 3] is a class output: no score differences
    assert value(stable, c.METRIC_MIRROR_SCORE_DIFFERENCE + "_count", candidate="same") == 0


@pytest.mark.usefixtures("mirror_off")
def test_a_candidate_differing_on_a_tenth_of_inputs_disagrees_on_exactly_those(
    stable: RuntimeServer, stable_pod: PodInfoDir, diverging: RuntimeServer
) -> None:
    turn_on(stable, stable_pod, diverging.url, "div")
    x = np.random.default_rng(7).normal(size=(300, 4)).astype(np.float32)
    for i, row in enumerate(x):
        send(stable, row[None, :], json_request if i % 2 else binary_request)
    expected = int((x[:, 0] > THRESHOLD).sum())
    assert 15 <= expected <= 45  # about 10%
    got = wait_outcomes(stable, "div", 300)
    assert got == {"agreed": 300 - expected, "disagreed": expected, "candidate_error": 0, "dropped": 0}


@pytest.mark.usefixtures("mirror_off")
def test_candidate_errors_and_a_candidate_down_count_as_candidate_error(
    stable: RuntimeServer, stable_pod: PodInfoDir, erroring: RuntimeServer
) -> None:
    rng = np.random.default_rng(3)
    turn_on(stable, stable_pod, erroring.url, "err")
    for _ in range(20):
        send(stable, rng.normal(size=(1, 4)).astype(np.float32), json_request)
    assert wait_outcomes(stable, "err", 20)["candidate_error"] == 20
    assert value(erroring, c.METRIC_REQUESTS_TOTAL, code="500") == 20
    turn_on(stable, stable_pod, f"http://127.0.0.1:{free_port()}", "down", timeoutMs=500)
    for _ in range(10):
        send(stable, rng.normal(size=(1, 4)).astype(np.float32), binary_request)
    assert wait_outcomes(stable, "down", 10)["candidate_error"] == 10


@pytest.mark.usefixtures("mirror_off")
def test_a_full_queue_drops_and_counts_and_stopping_drops_the_rest(
    stable: RuntimeServer, stable_pod: PodInfoDir
) -> None:
    n = c.MIRROR_QUEUE_SIZE + 44
    rng = np.random.default_rng(5)
    with black_hole() as url:
        turn_on(stable, stable_pod, url, "hole", timeoutMs=60_000)
        for _ in range(n):
            send(stable, rng.normal(size=(1, 4)).astype(np.float32), json_request)
        assert mirror_outcomes(stable, "hole") == {"agreed": 0, "disagreed": 0, "candidate_error": 0, "dropped": 44}
        stable_pod.mirror(None)  # the mirror stops: the copies still waiting are dropped too
        assert wait_outcomes(stable, "hole", n)["dropped"] == n


@pytest.mark.usefixtures("mirror_off")
def test_the_copy_carries_no_caller_headers_and_a_copy_is_never_mirrored(
    stable: RuntimeServer, stable_pod: PodInfoDir
) -> None:
    x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
    with recorder() as rec:
        turn_on(stable, stable_pod, rec.url, "rec")
        send(stable, x, json_request, CALLER_HEADERS)
        send(stable, x, binary_request, CALLER_HEADERS)
        body, h = json_request(x)
        zipped = gzip.compress(body)
        r = httpx.post(
            stable.url + c.infer_path("clf"),
            content=zipped,
            headers={**h, **CALLER_HEADERS, "content-encoding": "gzip"},
        )
        assert r.status_code == 200
        send(stable, x, json_request, {c.MIRROR_HEADER: "1"})  # a copy reaching a mirroring pod: not copied again
        wait_for(lambda: len(rec.seen) >= 3, 10, "three copies at the recorder")
        wait_outcomes(stable, "rec", 3)
    allowed = {
        "host",
        "content-type",
        "content-length",
        "inference-header-content-length",
        "content-encoding",
        c.MIRROR_HEADER,
    }
    bodies = []
    for path, headers, got_body in rec.seen:
        assert path == c.infer_path("clf")
        assert set(headers) <= allowed, set(headers) - allowed
        assert headers[c.MIRROR_HEADER] == c.MIRROR_HEADER_VALUE
        assert headers["content-length"] == str(len(got_body))
        bodies.append((got_body, headers.get("inference-header-content-length"), headers.get("content-encoding")))
    assert bodies[0] == (json_request(x)[0], None, None)
    assert bodies[1] == (binary_request(x)[0], binary_request(x)[1]["inference-header-content-length"], None)
    assert bodies[2] == (zipped, None, "gzip")
    assert len(rec.seen) == 3
