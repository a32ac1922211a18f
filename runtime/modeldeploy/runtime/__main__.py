"""`python -m modeldeploy.runtime`: listen, load and verify the model, warm up, serve, drain on SIGTERM.

The listener opens first so that liveness answers while the model loads; readiness (and
inference) answer 503 until the model is fetched, its sha256 verified, the session created and
a warm-up inference done. Exit codes: 0 after a drain, 2 bad configuration, 3 the model could not
be loaded, 4 sha256 mismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.app import App
from modeldeploy.runtime.batching import Batcher
from modeldeploy.runtime.config import Config, ConfigError, parse
from modeldeploy.runtime.httpserver import HttpServer
from modeldeploy.runtime.loading import DigestMismatchError, fetch
from modeldeploy.runtime.metrics import Metrics
from modeldeploy.runtime.model import Model
from modeldeploy.runtime.podwatch import follow_pod
from modeldeploy.runtime.sources import scrub
from modeldeploy.runtime.tracing import Tracing, correlate_logs
from modeldeploy.runtime.tracing import from_env as tracing_from_env
from modeldeploy.runtime.tracing import install as install_tracing

log = logging.getLogger("modeldeploy.runtime")


class _LoadResult:
    def __init__(self, model: Model, sha256: str, seconds: float, run_s: float, batch_gain: float) -> None:
        self.model = model
        self.sha256 = sha256
        self.seconds = seconds
        self.run_s = run_s  # fastest warm-up run at batch 1
        self.batch_gain = batch_gain  # per-row speed-up of a batch over single rows


def _load(cfg: Config) -> _LoadResult:
    t0 = time.perf_counter()
    fetched = fetch(
        cfg.model_uri,
        expected_sha256=cfg.sha256,
        pvc_root=cfg.pvc_root,
        cache_dir=cfg.cache_dir,
        max_bytes=cfg.download_max_bytes,
    )
    model = Model.load(fetched.path, cfg.intra_op_threads, cfg.inter_op_threads, cfg.execution_provider)
    if cfg.prediction_output is not None and cfg.prediction_output not in model.outputs:
        raise ConfigError(
            f"--prediction-output {cfg.prediction_output!r} is not an output of the model "
            f"({', '.join(model.output_names)})"
        )
    run_s = model.warm_up()
    gain = 1.0
    if cfg.batching and model.batchable:
        gain = model.batch_gain(min(cfg.max_batch_size, c.BATCH_PROBE_ROWS))
    return _LoadResult(model, fetched.sha256, time.perf_counter() - t0, run_s, gain)


def _load_in_thread(cfg: Config) -> Future[_LoadResult]:
    """A daemon thread: a SIGTERM during a long download must not wait for it."""
    fut: Future[_LoadResult] = Future()

    def target() -> None:
        try:
            fut.set_result(_load(cfg))
        except BaseException as e:
            fut.set_exception(e)

    threading.Thread(target=target, name="model-load", daemon=True).start()
    return fut


async def serve(cfg: Config, tracing: Tracing | None = None) -> int:
    loop = asyncio.get_running_loop()
    metrics = Metrics(
        cfg.model_name,
        cfg.model_version,
        cfg.revision,
        cfg.track,
        cfg.prediction_kind,
        latency_buckets=cfg.latency_buckets,
    )
    app = App(cfg, metrics)
    if tracing is not None:
        install_tracing(app, tracing)
    server = HttpServer(app, cfg.host, cfg.port, cfg.max_body_bytes, access_log=cfg.access_log, limits=cfg.limits)
    try:
        await server.start()
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", cfg.host, cfg.port, e)
        return c.EXIT_CONFIG
    watcher = follow_pod(cfg, app, server, metrics)
    log.info(
        "listening on %s:%d; loading model %s version %s",
        cfg.host,
        server.bound_port(),
        cfg.model_name,
        cfg.model_version,
    )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    load = asyncio.wrap_future(_load_in_thread(cfg))
    stopper: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {load, stopper}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not load.done():
        log.info("stopped while loading the model")
        server.begin_drain()
        await server.wait_drained(cfg.grace_period_s)
        server.close_all()
        return c.EXIT_OK
    try:
        result = load.result()
    except DigestMismatchError as e:
        print(f"modeldeploy-runtime: {e}", file=sys.stderr, flush=True)
        log.error("%s", e)
        server.close_all()
        return c.EXIT_DIGEST_MISMATCH
    except ConfigError as e:
        log.error("%s", e)
        server.close_all()
        return c.EXIT_CONFIG
    except Exception as e:
        print(f"modeldeploy-runtime: cannot load the model: {scrub(str(e))}", file=sys.stderr, flush=True)
        server.close_all()
        return c.EXIT_LOAD_FAILED
    model = result.model
    batching = cfg.batching and model.batchable and result.batch_gain >= c.BATCH_MIN_GAIN
    if cfg.batching and not model.batchable:
        log.info("dynamic batching off: the model has no dynamic batch dimension on every input and output")
    elif cfg.batching and not batching:
        log.info(
            "dynamic batching off: at warm-up a batch made each row only %.2fx cheaper (under %.2fx)",
            result.batch_gain,
            c.BATCH_MIN_GAIN,
        )
    threaded = cfg.inference_thread == "on" or (
        cfg.inference_thread == "auto" and result.run_s > c.INFERENCE_THREAD_AUTO_S
    )
    if batching or threaded:
        app.batcher = Batcher(
            model,
            metrics,
            max_batch_size=cfg.max_batch_size if batching else 1,
            max_delay_s=cfg.max_delay_ms / 1000.0,
            receiving=lambda: server.receiving,
            connections=lambda: len(server.connections),
            on_outputs=app.record_outputs,
            threaded=threaded,
        )
    log.info(
        "inference on %s%s %s, dynamic batching %s (warm-up run %.3f ms, batch gain %.2fx)",
        model.execution_provider,
        f" (fallback: {model.requested_provider} is not available)" if model.provider_fallback else "",
        "on a worker thread" if threaded else "inline on the event loop",
        f"up to {cfg.max_batch_size} rows within {cfg.max_delay_ms:g} ms" if batching else "off",
        result.run_s * 1000,
        result.batch_gain,
    )
    app.set_model(model, result.sha256, result.seconds)
    app.set_ready(True)
    log.info(
        "ready: model %s version %s sha256 %s loaded and warmed up in %.3fs",
        cfg.model_name,
        cfg.model_version,
        result.sha256,
        result.seconds,
    )

    await stopper
    log.info("SIGTERM: not ready, draining for at most %.1fs", cfg.grace_period_s)
    if watcher is not None:
        await watcher.stop()
    if app.mirror is not None:
        app.mirror.close()
    app.set_ready(False)
    app.state.draining = True
    t_term = loop.time()
    delay = min(cfg.drain_delay_s, cfg.grace_period_s)
    if delay > 0:
        # still accepting, readiness 503: endpoints and load balancers stop sending meanwhile;
        # a second SIGTERM (or SIGINT) ends the delay early
        stop.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    server.begin_drain()
    drained = await server.wait_drained(max(0.0, cfg.grace_period_s - (loop.time() - t_term)))
    if not drained:
        log.warning("grace period over with %d connection(s) open; closing them", len(server.connections))
    server.close_all()
    if app.batcher is not None:
        app.batcher.shutdown()
        if app.batcher.busy:
            # the grace period is over and an inference still runs on the worker thread: the
            # interpreter would join that thread at exit, so leave without waiting for it
            log.warning("grace period over during an inference; exiting without waiting for it")
            if tracing is not None:
                tracing.shutdown()
            logging.shutdown()
            os._exit(c.EXIT_OK)
    log.info("drained; exiting")
    return c.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse(argv)
    except ConfigError as e:
        print(f"modeldeploy-runtime: {e}", file=sys.stderr)
        return c.EXIT_CONFIG
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        tracing = tracing_from_env(os.environ, cfg.model_name, cfg.model_version, cfg.revision, cfg.track)
    except ConfigError as e:
        print(f"modeldeploy-runtime: {e}", file=sys.stderr)
        return c.EXIT_CONFIG
    if tracing is not None:
        correlate_logs()
        log.info("tracing on: a span per inference, exported as OTEL_* says")
    try:
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:  # pragma: no cover - uvloop is a runtime dependency off Windows
            return asyncio.run(serve(cfg, tracing))
        return uvloop.run(serve(cfg, tracing))
    finally:
        if tracing is not None:
            tracing.shutdown()


if __name__ == "__main__":
    sys.exit(main())
