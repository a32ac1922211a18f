"""Flags and their environment twins (flags win), defaults, and refusals; the loading URI rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.config import ConfigError, parse
from modeldeploy.runtime.limits import Limits
from modeldeploy.runtime.loading import FetchError, fetch, normalize_digest, resolve_local
from modeldeploy.runtime.metrics import Metrics

BASE = ["--model-name", "m", "--model-uri", "/x.onnx"]


def test_defaults() -> None:
    cfg = parse(BASE, environ={})
    assert cfg.port == c.DEFAULT_PORT == 8080
    assert cfg.host == "0.0.0.0"
    assert cfg.track == "stable"
    assert cfg.intra_op_threads == 1
    assert not cfg.batching
    assert not cfg.access_log
    assert cfg.cache_dir  # $TMPDIR, never the read-only root filesystem
    assert cfg.pvc_root == "/mnt/models"


def test_every_flag_has_an_environment_twin_and_flags_win() -> None:
    env = {
        c.ENV_MODEL_NAME: "from-env",
        c.ENV_MODEL_URI: "pvc://claim/m.onnx",
        c.ENV_MODEL_VERSION: "3",
        c.ENV_REVISION: "rev",
        c.ENV_TRACK: "canary",
        c.ENV_MODEL_SHA256: "a" * 64,
        c.ENV_HOST: "10.244.0.7",
        c.ENV_PORT: "9000",
        c.ENV_INTRA_OP_THREADS: "2",
        c.ENV_INTER_OP_THREADS: "2",
        c.ENV_MAX_BATCH_SIZE: "16",
        c.ENV_MAX_DELAY_MS: "3.5",
        c.ENV_MAX_BODY_BYTES: "1000",
        c.ENV_GRACE_PERIOD_S: "5",
        c.ENV_PREDICTION_OUTPUT: "probabilities",
        c.ENV_PREDICTION_KIND: "score",
        c.ENV_ACCESS_LOG: "true",
        c.ENV_DOWNLOAD_MAX_BYTES: "10",
        c.ENV_CACHE_DIR: "/tmp/cache",
        c.ENV_PVC_ROOT: "/pvc",
        c.ENV_LOG_LEVEL: "DEBUG",
        c.ENV_INFERENCE_THREAD: "on",
        c.ENV_DRAIN_DELAY_S: "2",
        c.ENV_EXECUTION_PROVIDER: "cuda",
        c.ENV_MAX_REQUEST_LINE_BYTES: "1024",
        c.ENV_MAX_HEADER_BYTES: "2048",
        c.ENV_MAX_HEADERS: "20",
        c.ENV_HEADER_TIMEOUT_S: "1.5",
        c.ENV_REQUEST_TIMEOUT_S: "9",
        c.ENV_KEEPALIVE_TIMEOUT_S: "30",
        c.ENV_MAX_CONNECTIONS: "64",
        c.ENV_WRITE_BUFFER_BYTES: "65536",
        c.ENV_MAX_TENSOR_ELEMENTS: "0",
        c.ENV_MAX_BYTES_ELEMENTS: "100",
        c.ENV_MAX_BYTES_TOTAL: "1000",
        c.ENV_LATENCY_BUCKETS: "0.01,0.02,0.04",
        c.ENV_POD_INFO: "/etc/podinfo",
        c.ENV_MIRROR_MAX_LOOP_SHARE: "0.5",
    }
    assert set(env) == set(c.FLAG_ENV.values())
    cfg = parse([], environ=env)
    assert (cfg.model_name, cfg.model_version, cfg.revision, cfg.track) == ("from-env", "3", "rev", "canary")
    assert (cfg.host, cfg.port, cfg.max_batch_size, cfg.max_delay_ms) == ("10.244.0.7", 9000, 16, 3.5)
    assert cfg.access_log and cfg.batching and cfg.inference_thread == "on"
    assert cfg.prediction_kind == "score" and cfg.pvc_root == "/pvc" and cfg.cache_dir == "/tmp/cache"
    assert cfg.execution_provider == "cuda"
    assert cfg.latency_buckets == (0.01, 0.02, 0.04)
    assert cfg.pod_info == "/etc/podinfo" and cfg.mirror_max_loop_share == 0.5
    assert cfg.limits == Limits(1024, 2048, 20, 1.5, 9.0, 30.0, 64, 65536, 0, 100, 1000)
    assert cfg.limits.tensor_elements(cfg.max_body_bytes) == 1000  # 0: the body limit
    cfg = parse(["--port", "7000", "--track", "shadow", "--access-log", "off", "--max-headers", "7"], environ=env)
    assert (cfg.port, cfg.track, cfg.access_log, cfg.limits.max_headers) == (7000, "shadow", False, 7)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "--model-name"),
        (["--model-name", "m"], "--model-uri"),
        ([*BASE, "--track", "blue"], "--track"),
        ([*BASE, "--port", "x"], "--port"),
        ([*BASE, "--max-batch-size", "-1"], "--max-batch-size"),
        ([*BASE, "--prediction-kind", "both"], "--prediction-kind"),
        ([*BASE, "--inference-thread", "maybe"], "--inference-thread"),
        (["--model-name", "a/b", "--model-uri", "x"], "--model-name"),
        ([*BASE, "--execution-provider", "rocm"], "--execution-provider"),
        ([*BASE, "--max-connections", "0"], "--max-connections"),
        ([*BASE, "--header-timeout-s", "0"], "--header-timeout-s"),
        ([*BASE, "--request-timeout-s", "inf"], "--request-timeout-s"),
        ([*BASE, "--max-tensor-elements", "-1"], "--max-tensor-elements"),
        ([*BASE, "--mirror-max-loop-share", "0"], "--mirror-max-loop-share"),
        ([*BASE, "--mirror-max-loop-share", "1.5"], "--mirror-max-loop-share"),
    ],
)
def test_refusals(argv: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse(argv, environ={})


def test_uri_resolution(tmp_path: Path) -> None:
    (tmp_path / "claim" / "dir").mkdir(parents=True)
    f = tmp_path / "claim" / "dir" / "model.onnx"
    f.write_bytes(b"x")
    assert resolve_local(f"file://{f}", "/nowhere") == f
    assert resolve_local(str(f), "/nowhere") == f
    assert resolve_local(str(f.parent), "/nowhere") == f  # a directory: its model.onnx
    assert resolve_local("pvc://claim/dir/model.onnx", str(tmp_path)) == f
    assert resolve_local("https://example.com/m.onnx", "/") is None
    assert resolve_local("s3://bucket/m.onnx", "/") is None
    with pytest.raises(FetchError, match="pvc"):
        resolve_local("pvc://claim/../../etc/passwd", str(tmp_path))
    with pytest.raises(FetchError, match="scheme"):
        resolve_local("gs://bucket/m.onnx", "/")
    with pytest.raises(FetchError, match="does not exist"):
        resolve_local(str(tmp_path / "missing.onnx"), "/")


def test_digest_forms() -> None:
    assert normalize_digest("SHA256:" + "AB" * 32) == "ab" * 32
    with pytest.raises(ValueError, match="sha256"):
        normalize_digest("abc")


def test_s3_without_the_extra_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 is installed here (make install takes every extra): hide it, as an install without the extra has none
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(FetchError, match=r"modeldeploy\[s3\]"):
        fetch("s3://bucket/m.onnx", expected_sha256=None, pvc_root="/", cache_dir=str(tmp_path), max_bytes=10)


@pytest.mark.parametrize("value", ["", "0.1,0.05", "0,1", "a,b", "1,inf", ",".join(["1"] * 3)])
def test_latency_buckets_are_refused_unless_positive_finite_and_increasing(value: str) -> None:
    with pytest.raises(ConfigError, match="--latency-buckets"):
        parse(["--model-name", "m", "--model-uri", "/m.onnx", "--latency-buckets", value or ","])


def test_default_latency_buckets_have_an_edge_at_common_slos() -> None:
    edges = {round(e * 1000, 6) for e in c.REQUEST_DURATION_BUCKETS}
    assert {40.0, 50.0, 100.0, 250.0, 1000.0} <= edges
    ratios = [b / a for a, b in zip(c.REQUEST_DURATION_BUCKETS, c.REQUEST_DURATION_BUCKETS[1:], strict=False)]
    assert max(ratios) <= 4 / 3 + 1e-9


def test_latency_buckets_are_the_histogram_edges() -> None:
    text = Metrics("m", "1", "r", "stable", "class", latency_buckets=(0.01, 0.04)).render().decode()
    edges = {
        line.split('le="')[1].split('"')[0] for line in text.splitlines() if "request_duration_seconds_bucket" in line
    }
    assert edges == {"0.01", "0.04", "+Inf"}
