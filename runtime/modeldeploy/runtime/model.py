"""The loaded model: an ONNX Runtime session, its v2 signature, warm-up and inference."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from modeldeploy.runtime.codec import ORT_TO_OIP, TensorSpec

log = logging.getLogger("modeldeploy.runtime")


class ModelLoadError(Exception):
    """The model file could not be turned into a session that serves."""


class ModelRunError(Exception):
    """session.run failed on input that matched the signature: the model's fault, a 500 (the
    canary analysis counts it), logged in one line with a request id."""


def session_options(intra_op_threads: int, inter_op_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, intra_op_threads)
    so.inter_op_num_threads = max(1, inter_op_threads)
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if inter_op_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # fatal only: a failing run is answered (500) and counted, never logged per request
    # pods share cores: worker threads sleep rather than spin between runs
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


#: --execution-provider -> the ONNX Runtime provider names to ask for, best first (CPU always last)
PROVIDER_CHAINS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
_PROVIDER_FLAG = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt",
}


def _providers(requested: str) -> list[str]:
    available = set(ort.get_available_providers())
    return [p for p in PROVIDER_CHAINS[requested] if p in available or p == "CPUExecutionProvider"]


def _spec(arg: Any) -> TensorSpec:
    datatype = ORT_TO_OIP.get(arg.type)
    if datatype is None:
        raise ModelLoadError(f"tensor {arg.name!r} has type {arg.type}, which this server cannot serve")
    shape = arg.shape
    dims = None if shape is None else tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)
    return TensorSpec(arg.name, datatype, dims)


@dataclass(slots=True)
class Model:
    session: ort.InferenceSession
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    output_names: list[str]
    #: every input and output has a dynamic first dimension: requests can be stacked on axis 0
    batchable: bool
    #: the execution provider the session runs on (cpu, cuda, tensorrt) and the one asked for
    execution_provider: str = "cpu"
    requested_provider: str = "cpu"

    @property
    def provider_fallback(self) -> bool:
        return self.execution_provider != self.requested_provider

    @classmethod
    def load(
        cls, path: Path, intra_op_threads: int = 1, inter_op_threads: int = 1, execution_provider: str = "cpu"
    ) -> Model:
        chain = _providers(execution_provider)
        try:
            sess = ort.InferenceSession(
                str(path),
                sess_options=session_options(intra_op_threads, inter_op_threads),
                providers=chain,
            )
        except Exception as e:
            raise ModelLoadError(f"onnxruntime cannot load {path}: {e}") from e
        # a provider that is installed but cannot start (no driver, no device) is dropped by the session
        effective = _PROVIDER_FLAG.get(sess.get_providers()[0], "cpu")
        if effective != execution_provider:
            log.warning(
                "execution provider %s requested but not available (onnxruntime offers %s): running on %s",
                execution_provider,
                ", ".join(ort.get_available_providers()),
                effective,
            )
        inputs = {a.name: _spec(a) for a in sess.get_inputs()}
        outputs: dict[str, TensorSpec] = {}
        for a in sess.get_outputs():
            if a.type in ORT_TO_OIP:
                outputs[a.name] = _spec(a)
            else:  # e.g. sklearn-onnx's ZipMap seq(map(...)): not a v2 tensor; served without it
                log.warning("output %r of type %s is not a tensor: it is left out of the v2 signature", a.name, a.type)
        if not outputs:
            raise ModelLoadError("the model has no tensor output this server can return")
        batchable = all(
            s.shape is not None and len(s.shape) >= 1 and s.shape[0] == -1
            for s in (*inputs.values(), *outputs.values())
        )
        return cls(sess, inputs, outputs, list(outputs), batchable, effective, execution_provider)

    def warmup_feed(self, batch: int = 1) -> dict[str, np.ndarray[Any, Any]]:
        """Zeros (empty strings for BYTES) shaped by the signature, dynamic dims set to 1 (axis 0: batch)."""
        feed: dict[str, np.ndarray[Any, Any]] = {}
        for spec in self.inputs.values():
            dims = spec.shape if spec.shape is not None else (1,)
            shape = tuple((batch if i == 0 else 1) if d < 0 else d for i, d in enumerate(dims))
            feed[spec.name] = (
                np.full(shape, "", dtype=object) if spec.datatype == "BYTES" else np.zeros(shape, dtype=spec.dtype)
            )
        return feed

    def warm_up(self, runs: int = 6) -> float:
        """Run the model on signature-shaped zeros; returns the fastest batch-1 run in seconds (the
        minimum: on a busy machine, the least disturbed estimate of the model's own cost).
        Fails loudly: a model that cannot answer its own signature must never report ready."""
        times = []
        for batch in [1] * runs + ([2] if self.batchable else []):
            feed = self.warmup_feed(batch)
            t0 = time.perf_counter()
            try:
                self.session.run(None, feed)
            except Exception as e:
                raise ModelLoadError(f"warm-up inference failed: {e}") from e
            if batch == 1:
                times.append(time.perf_counter() - t0)
        return min(times[1:])  # the first run pays for lazy initialisation

    def batch_gain(self, rows: int, runs: int = 3) -> float:
        """How much cheaper a row gets when `rows` rows run together: time(1) * rows / time(rows),
        fastest of `runs` each. About 1 for models whose cost is all in per-row compute (convolutions
        on large activations), far above 1 where a run's fixed cost or weight traffic dominates."""
        if not self.batchable or rows <= 1:
            return 1.0

        def fastest(batch: int) -> float:
            feed = self.warmup_feed(batch)
            best = float("inf")
            for _ in range(runs):
                t0 = time.perf_counter()
                self.session.run(None, feed)
                best = min(best, time.perf_counter() - t0)
            return best

        try:
            return fastest(1) * rows / max(fastest(rows), 1e-9)
        except Exception as e:
            raise ModelLoadError(f"warm-up inference at batch {rows} failed: {e}") from e

    def run(
        self, feed: Mapping[str, np.ndarray[Any, Any]], names: Sequence[str] | None = None
    ) -> list[np.ndarray[Any, Any]]:
        try:
            return self.session.run(names or self.output_names, feed)  # type: ignore[no-any-return]
        except Exception as e:
            raise ModelRunError(f"inference failed: {_short(e)}") from e


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0][:500] if msg else type(e).__name__
