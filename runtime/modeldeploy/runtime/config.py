"""Command line and environment: every flag has an environment variable twin; flags win."""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.runtime import contract as c
from modeldeploy.runtime import limits as lim


class ConfigError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Config:
    model_name: str
    model_uri: str
    model_version: str = c.DEFAULT_MODEL_VERSION
    revision: str = ""
    track: str = c.DEFAULT_TRACK
    sha256: str | None = None
    host: str = c.DEFAULT_HOST
    port: int = c.DEFAULT_PORT
    intra_op_threads: int = c.DEFAULT_INTRA_OP_THREADS
    inter_op_threads: int = c.DEFAULT_INTER_OP_THREADS
    max_batch_size: int = c.DEFAULT_MAX_BATCH_SIZE
    max_delay_ms: float = c.DEFAULT_MAX_DELAY_MS
    max_body_bytes: int = c.DEFAULT_MAX_BODY_BYTES
    grace_period_s: float = c.DEFAULT_GRACE_PERIOD_S
    prediction_output: str | None = None
    prediction_kind: str = c.DEFAULT_PREDICTION_KIND
    access_log: bool = False
    download_max_bytes: int = c.DEFAULT_DOWNLOAD_MAX_BYTES
    cache_dir: str = ""
    pvc_root: str = c.DEFAULT_PVC_ROOT
    log_level: str = "INFO"
    inference_thread: str = c.DEFAULT_INFERENCE_THREAD
    drain_delay_s: float = c.DEFAULT_DRAIN_DELAY_S
    execution_provider: str = c.DEFAULT_EXECUTION_PROVIDER
    latency_buckets: tuple[float, ...] = c.REQUEST_DURATION_BUCKETS
    #: a downward-API directory of the pod's labels and annotations, followed while serving ("": none)
    pod_info: str = ""
    mirror_max_loop_share: float = c.MIRROR_MAX_LOOP_SHARE
    limits: lim.Limits = field(default_factory=lim.Limits)

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def _nonneg_float(v: str) -> float:
    x = float(v)
    if not x >= 0:
        raise ValueError(f"must be >= 0: {v}")
    return x


def _share(v: str) -> float:
    x = float(v)
    if not 0 < x <= 1:
        raise ValueError(f"must be within (0, 1]: {v}")
    return x


def _buckets(v: str) -> tuple[float, ...]:
    """Comma-separated histogram edges in seconds: positive, finite, increasing, at most 200."""
    try:
        edges = tuple(float(part) for part in v.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"must be comma-separated numbers of seconds: {v}") from None
    if not edges or len(edges) > c.MAX_LATENCY_BUCKETS:
        raise ValueError(f"must list 1 to {c.MAX_LATENCY_BUCKETS} bucket edges: {v}")
    if not all(0 < e < float("inf") for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bucket edges must be positive, finite and increasing: {v}")
    return edges


_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--model-name", "model_name", str, "model name on the inference protocol (required)"),
    ("--model-uri", "model_uri", str, "file://, plain path, pvc://claim/path, https://, s3:// (required)"),
    ("--model-version", "model_version", str, f"model version (default {c.DEFAULT_MODEL_VERSION})"),
    ("--revision", "revision", str, "operator revision hash, a metric label"),
    ("--track", "track", str, f"one of {', '.join(c.TRACKS)}, a metric label"),
    ("--sha256", "sha256", str, "expected sha256 of the model file; a mismatch exits 4"),
    ("--host", "host", str, f"address to listen on (default {c.DEFAULT_HOST})"),
    ("--port", "port", lim.nonneg_int, f"port (default {c.DEFAULT_PORT})"),
    ("--intra-op-threads", "intra_op_threads", lim.nonneg_int, "ONNX Runtime intra-op threads (default 1)"),
    ("--inter-op-threads", "inter_op_threads", lim.nonneg_int, "ONNX Runtime inter-op threads (default 1)"),
    ("--max-batch-size", "max_batch_size", lim.nonneg_int, "dynamic batching: rows per batch (0 or 1: off)"),
    ("--max-delay-ms", "max_delay_ms", _nonneg_float, "dynamic batching: longest wait for more requests"),
    ("--max-body-bytes", "max_body_bytes", lim.nonneg_int, "larger request bodies get 413"),
    ("--grace-period-s", "grace_period_s", _nonneg_float, "on SIGTERM, longest drain before exit"),
    (
        "--drain-delay-s",
        "drain_delay_s",
        _nonneg_float,
        "on SIGTERM, keep accepting this long with readiness 503 before closing the listener (default 0)",
    ),
    (
        "--execution-provider",
        "execution_provider",
        str,
        f"ONNX Runtime execution provider, one of {', '.join(c.EXECUTION_PROVIDERS)} (default "
        f"{c.DEFAULT_EXECUTION_PROVIDER}); falls back to cpu, saying so, when it is not available",
    ),
    (
        "--latency-buckets",
        "latency_buckets",
        _buckets,
        "request-duration histogram edges in seconds, comma-separated (default: ten per decade, 0.1 ms to 10 s);"
        " put an edge at every latency SLO the analysis judges",
    ),
    (
        "--pod-info",
        "pod_info",
        str,
        "directory of a downward-API volume with the pod's `labels` and `annotations`, re-read while serving: "
        f"{c.POD_LABEL_TRACK} overrides --track, {c.POD_LABEL_SERVING}=false takes the pod out of serving, "
        f"{c.POD_ANNOTATION_MIRROR} turns the mirror on (default: none, the flags alone)",
    ),
    (
        "--mirror-max-loop-share",
        "mirror_max_loop_share",
        _share,
        "the mirror's budget: the most of each 100 ms of the event loop's CPU time it spends on copies "
        f"(0 < share <= 1; default {c.MIRROR_MAX_LOOP_SHARE}); past it, copies are dropped and counted",
    ),
    ("--prediction-output", "prediction_output", str, "output watched by the prediction metrics"),
    ("--prediction-kind", "prediction_kind", str, "class (argmax counts) or score (histogram)"),
    ("--access-log", "access_log", _bool, "log one line per request (no payloads); off by default"),
    ("--download-max-bytes", "download_max_bytes", lim.nonneg_int, "size limit of downloaded models"),
    ("--cache-dir", "cache_dir", str, "where downloaded models go (default $TMPDIR)"),
    ("--pvc-root", "pvc_root", str, f"where PVC claims are mounted (default {c.DEFAULT_PVC_ROOT})"),
    ("--log-level", "log_level", str, "DEBUG, INFO, WARNING, ERROR"),
    (
        "--inference-thread",
        "inference_thread",
        str,
        "auto (default), on, off: run session.run on a worker thread (auto: when a warm-up run takes "
        f"over {c.INFERENCE_THREAD_AUTO_S * 1000:g} ms)",
    ),
]


def _all_options() -> list[tuple[str, str, Callable[[str], Any], str]]:
    return _OPTIONS + [(flag, dest, lim.converter(flag, kind), help_) for flag, dest, kind, help_ in lim.FLAGS]


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    ap = argparse.ArgumentParser(
        prog="python -m modeldeploy.runtime",
        description="modeldeploy ONNX Runtime server on the Open Inference Protocol v2 (REST). "
        "Every flag has an environment variable twin; flags win.",
    )
    for flag, dest, _conv, help_ in _all_options():
        ap.add_argument(flag, dest=dest, default=None, help=f"{help_} [env {c.FLAG_ENV[flag]}]")
    ns = ap.parse_args(argv)
    values: dict[str, Any] = {}
    for flag, dest, conv, _help in _all_options():
        raw = getattr(ns, dest)
        source = flag
        if raw is None:
            raw = env.get(c.FLAG_ENV[flag])
            source = c.FLAG_ENV[flag]
        if raw is None or (raw == "" and dest not in ("revision",)):
            continue
        try:
            values[dest] = conv(raw)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    for required in ("model_name", "model_uri"):
        if not values.get(required):
            flag = "--" + required.replace("_", "-")
            raise ConfigError(f"{flag} (or {c.FLAG_ENV[flag]}) is required")
    if values.get("track", c.DEFAULT_TRACK) not in c.TRACKS:
        raise ConfigError(f"--track must be one of {c.TRACKS}, got {values['track']!r}")
    if values.get("prediction_kind", c.DEFAULT_PREDICTION_KIND) not in c.PREDICTION_KINDS:
        raise ConfigError(f"--prediction-kind must be one of {c.PREDICTION_KINDS}")
    if values.get("inference_thread", c.DEFAULT_INFERENCE_THREAD) not in c.INFERENCE_THREAD_MODES:
        raise ConfigError(f"--inference-thread must be one of {c.INFERENCE_THREAD_MODES}")
    if values.get("execution_provider", c.DEFAULT_EXECUTION_PROVIDER) not in c.EXECUTION_PROVIDERS:
        raise ConfigError(f"--execution-provider must be one of {c.EXECUTION_PROVIDERS}")
    limit_fields = {dest for _f, dest, _k, _h in lim.FLAGS}
    values["limits"] = lim.Limits(**{k: values.pop(k) for k in list(values) if k in limit_fields})
    if "/" in values["model_name"] or "?" in values["model_name"]:
        raise ConfigError("--model-name must not contain '/' or '?'")
    if not values.get("cache_dir"):
        values["cache_dir"] = tempfile.gettempdir()
    return Config(**values)
