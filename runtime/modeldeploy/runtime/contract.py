"""The runtime's public contract: flags, environment variables, paths, metric and label names.

This is the only runtime module the operator may import. It imports nothing but the standard
library, so importing it costs nothing and drags in neither onnxruntime nor numpy.

Every CLI flag has an environment variable twin; the flag wins when both are given.
The operator renders PromQL from the metric names below: spell them here and nowhere else.
"""

from __future__ import annotations

from typing import Final

# --- image ------------------------------------------------------------------------------------
IMAGE_REPOSITORY: Final = "ghcr.io/modeldeploy/runtime"
DEFAULT_IMAGE: Final = "ghcr.io/modeldeploy/runtime:0.1.0"
#: How the image's entrypoint starts the server (the local cluster's node agent runs this).
ENTRYPOINT: Final = ("python", "-m", "modeldeploy.runtime")

# --- environment variables (twins of the CLI flags; flags win) ---------------------------------
ENV_MODEL_NAME: Final = "MODELDEPLOY_MODEL_NAME"
ENV_MODEL_VERSION: Final = "MODELDEPLOY_MODEL_VERSION"
ENV_REVISION: Final = "MODELDEPLOY_REVISION"
ENV_TRACK: Final = "MODELDEPLOY_TRACK"
ENV_MODEL_URI: Final = "MODELDEPLOY_MODEL_URI"
ENV_MODEL_SHA256: Final = "MODELDEPLOY_MODEL_SHA256"
ENV_HOST: Final = "MODELDEPLOY_HOST"
ENV_PORT: Final = "MODELDEPLOY_PORT"
ENV_INTRA_OP_THREADS: Final = "MODELDEPLOY_INTRA_OP_THREADS"
ENV_INTER_OP_THREADS: Final = "MODELDEPLOY_INTER_OP_THREADS"
ENV_MAX_BATCH_SIZE: Final = "MODELDEPLOY_MAX_BATCH_SIZE"
ENV_MAX_DELAY_MS: Final = "MODELDEPLOY_MAX_DELAY_MS"
ENV_MAX_BODY_BYTES: Final = "MODELDEPLOY_MAX_BODY_BYTES"
ENV_GRACE_PERIOD_S: Final = "MODELDEPLOY_GRACE_PERIOD_S"
ENV_PREDICTION_OUTPUT: Final = "MODELDEPLOY_PREDICTION_OUTPUT"
ENV_PREDICTION_KIND: Final = "MODELDEPLOY_PREDICTION_KIND"
ENV_ACCESS_LOG: Final = "MODELDEPLOY_ACCESS_LOG"
ENV_DOWNLOAD_MAX_BYTES: Final = "MODELDEPLOY_DOWNLOAD_MAX_BYTES"
ENV_CACHE_DIR: Final = "MODELDEPLOY_CACHE_DIR"
ENV_PVC_ROOT: Final = "MODELDEPLOY_PVC_ROOT"
ENV_LOG_LEVEL: Final = "MODELDEPLOY_LOG_LEVEL"
ENV_INFERENCE_THREAD: Final = "MODELDEPLOY_INFERENCE_THREAD"
ENV_DRAIN_DELAY_S: Final = "MODELDEPLOY_DRAIN_DELAY_S"
ENV_EXECUTION_PROVIDER: Final = "MODELDEPLOY_EXECUTION_PROVIDER"
ENV_LATENCY_BUCKETS: Final = "MODELDEPLOY_LATENCY_BUCKETS"
# request limits (runtime/limits.py says what each bounds and answers)
ENV_MAX_REQUEST_LINE_BYTES: Final = "MODELDEPLOY_MAX_REQUEST_LINE_BYTES"
ENV_MAX_HEADER_BYTES: Final = "MODELDEPLOY_MAX_HEADER_BYTES"
ENV_MAX_HEADERS: Final = "MODELDEPLOY_MAX_HEADERS"
ENV_HEADER_TIMEOUT_S: Final = "MODELDEPLOY_HEADER_TIMEOUT_S"
ENV_REQUEST_TIMEOUT_S: Final = "MODELDEPLOY_REQUEST_TIMEOUT_S"
ENV_KEEPALIVE_TIMEOUT_S: Final = "MODELDEPLOY_KEEPALIVE_TIMEOUT_S"
ENV_MAX_CONNECTIONS: Final = "MODELDEPLOY_MAX_CONNECTIONS"
ENV_WRITE_BUFFER_BYTES: Final = "MODELDEPLOY_WRITE_BUFFER_BYTES"
ENV_MAX_TENSOR_ELEMENTS: Final = "MODELDEPLOY_MAX_TENSOR_ELEMENTS"
ENV_MAX_BYTES_ELEMENTS: Final = "MODELDEPLOY_MAX_BYTES_ELEMENTS"
ENV_MAX_BYTES_TOTAL: Final = "MODELDEPLOY_MAX_BYTES_TOTAL"
#: a directory holding a downward-API volume of the pod's `labels` and `annotations` (below)
ENV_POD_INFO: Final = "MODELDEPLOY_POD_INFO"
ENV_MIRROR_MAX_LOOP_SHARE: Final = "MODELDEPLOY_MIRROR_MAX_LOOP_SHARE"

#: flag -> environment variable, for documentation and for the operator's pod templates.
FLAG_ENV: Final[dict[str, str]] = {
    "--model-name": ENV_MODEL_NAME,
    "--model-version": ENV_MODEL_VERSION,
    "--revision": ENV_REVISION,
    "--track": ENV_TRACK,
    "--model-uri": ENV_MODEL_URI,
    "--sha256": ENV_MODEL_SHA256,
    "--host": ENV_HOST,
    "--port": ENV_PORT,
    "--intra-op-threads": ENV_INTRA_OP_THREADS,
    "--inter-op-threads": ENV_INTER_OP_THREADS,
    "--max-batch-size": ENV_MAX_BATCH_SIZE,
    "--max-delay-ms": ENV_MAX_DELAY_MS,
    "--max-body-bytes": ENV_MAX_BODY_BYTES,
    "--grace-period-s": ENV_GRACE_PERIOD_S,
    "--prediction-output": ENV_PREDICTION_OUTPUT,
    "--prediction-kind": ENV_PREDICTION_KIND,
    "--access-log": ENV_ACCESS_LOG,
    "--download-max-bytes": ENV_DOWNLOAD_MAX_BYTES,
    "--cache-dir": ENV_CACHE_DIR,
    "--pvc-root": ENV_PVC_ROOT,
    "--log-level": ENV_LOG_LEVEL,
    "--inference-thread": ENV_INFERENCE_THREAD,
    "--drain-delay-s": ENV_DRAIN_DELAY_S,
    "--max-request-line-bytes": ENV_MAX_REQUEST_LINE_BYTES,
    "--max-header-bytes": ENV_MAX_HEADER_BYTES,
    "--max-headers": ENV_MAX_HEADERS,
    "--header-timeout-s": ENV_HEADER_TIMEOUT_S,
    "--request-timeout-s": ENV_REQUEST_TIMEOUT_S,
    "--keepalive-timeout-s": ENV_KEEPALIVE_TIMEOUT_S,
    "--max-connections": ENV_MAX_CONNECTIONS,
    "--write-buffer-bytes": ENV_WRITE_BUFFER_BYTES,
    "--max-tensor-elements": ENV_MAX_TENSOR_ELEMENTS,
    "--max-bytes-elements": ENV_MAX_BYTES_ELEMENTS,
    "--max-bytes-total": ENV_MAX_BYTES_TOTAL,
    "--execution-provider": ENV_EXECUTION_PROVIDER,
    "--latency-buckets": ENV_LATENCY_BUCKETS,
    "--pod-info": ENV_POD_INFO,
    "--mirror-max-loop-share": ENV_MIRROR_MAX_LOOP_SHARE,
}

# --- defaults ---------------------------------------------------------------------------------
DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_PORT: Final = 8080
DEFAULT_MODEL_VERSION: Final = "1"
DEFAULT_TRACK: Final = "stable"
TRACKS: Final = ("stable", "canary", "shadow")
DEFAULT_INTRA_OP_THREADS: Final = 1
DEFAULT_INTER_OP_THREADS: Final = 1
DEFAULT_MAX_BATCH_SIZE: Final = 0  # 0 or 1: batching off
DEFAULT_MAX_DELAY_MS: Final = 2.0
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
DEFAULT_GRACE_PERIOD_S: Final = 25.0
#: on SIGTERM, seconds to keep accepting (while readiness answers 503) before the listener closes,
#: so that endpoints and load balancers stop sending first; counted inside the grace period
DEFAULT_DRAIN_DELAY_S: Final = 0.0
DEFAULT_DOWNLOAD_MAX_BYTES: Final = 4 * 1024 * 1024 * 1024
#: the operator mounts PVC `<claim>` at `<pvc root>/<claim>`:
#: pvc://claim/a/b -> /mnt/models/claim/a/b
DEFAULT_PVC_ROOT: Final = "/mnt/models"
#: session.run on a worker thread: "on", "off", or "auto" (on when the fastest warm-up run takes longer
#: than INFERENCE_THREAD_AUTO_S, so that heavy models never stall health probes)
INFERENCE_THREAD_MODES: Final = ("auto", "on", "off")
DEFAULT_INFERENCE_THREAD: Final = "auto"
INFERENCE_THREAD_AUTO_S: Final = 0.002
#: dynamic batching stays off when, at warm-up, a batch of min(max batch size, 8) rows costs per row
#: more than 1/BATCH_MIN_GAIN of a single row (it would add latency and buy no throughput)
BATCH_MIN_GAIN: Final = 1.3
BATCH_PROBE_ROWS: Final = 8
PREDICTION_KINDS: Final = ("class", "score")
#: ONNX Runtime execution provider asked for; when it is not available the runtime falls back to CPU,
#: says so in its log and in GET /v2/models/{name} (parameters.execution_provider)
EXECUTION_PROVIDERS: Final = ("cpu", "cuda", "tensorrt")
DEFAULT_EXECUTION_PROVIDER: Final = "cpu"
DEFAULT_PREDICTION_KIND: Final = "class"

# --- exit codes -------------------------------------------------------------------------------
EXIT_OK: Final = 0
EXIT_CONFIG: Final = 2  # bad flags or environment
EXIT_LOAD_FAILED: Final = 3  # model could not be fetched or loaded
EXIT_DIGEST_MISMATCH: Final = 4  # sha256 of the model file differs from the expected one

# --- HTTP paths -------------------------------------------------------------------------------
HEALTH_LIVE_PATH: Final = "/v2/health/live"
HEALTH_READY_PATH: Final = "/v2/health/ready"
SERVER_METADATA_PATH: Final = "/v2"
METRICS_PATH: Final = "/metrics"
DEFAULT_CONTAINER_PORT_NAME: Final = "http"


def model_path(model: str) -> str:
    return f"/v2/models/{model}"


def model_ready_path(model: str) -> str:
    return f"/v2/models/{model}/ready"


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


# --- the pod the runtime follows (issue 13) -----------------------------------------------------
# With --pod-info / MODELDEPLOY_POD_INFO set, the runtime re-reads POD_INFO_LABELS_FILE and
# POD_INFO_ANNOTATIONS_FILE in that directory (a downward-API volume: one `key="value"` per line, the
# value quoted as Go's %q does) every POD_INFO_POLL_S, so the operator changes these without a restart.
POD_INFO_LABELS_FILE: Final = "labels"
POD_INFO_ANNOTATIONS_FILE: Final = "annotations"
POD_INFO_POLL_S: Final = 0.2
#: pod label, one of TRACKS; overrides --track and every metric's track label follows it
POD_LABEL_TRACK: Final = "modeldeploy.io/track"
#: pod label; "false": every answer carries `connection: close` and keep-alive connections close after the
#: answer in flight (idle ones after 0.2 s); readiness stays the model's (the label alone keeps the pod out of
#: the endpoint, and a shadow must read Ready). "true" or absent: serving.
POD_LABEL_SERVING: Final = "modeldeploy.io/serving"
SERVING_FALSE: Final = "false"
SERVING_TRUE: Final = "true"
#: pod annotation, JSON: {"url": "http://host:port", "percent": 0..100, "candidate": "<revision>",
#: "timeoutMs": 1000, "scoreTolerance": {"absolute": 1e-4, "relative": 1e-3}}; absent or empty: no mirror
POD_ANNOTATION_MIRROR: Final = "modeldeploy.io/mirror"
MIRROR_KEY_URL: Final = "url"
MIRROR_KEY_PERCENT: Final = "percent"
MIRROR_KEY_CANDIDATE: Final = "candidate"
MIRROR_KEY_TIMEOUT_MS: Final = "timeoutMs"
MIRROR_KEY_SCORE_TOLERANCE: Final = "scoreTolerance"
MIRROR_KEY_ABSOLUTE: Final = "absolute"
MIRROR_KEY_RELATIVE: Final = "relative"
DEFAULT_MIRROR_TIMEOUT_MS: Final = 1000
DEFAULT_MIRROR_ABSOLUTE_TOLERANCE: Final = 1e-4
DEFAULT_MIRROR_RELATIVE_TOLERANCE: Final = 1e-3
#: copies waiting for or on their way to the candidate; past it a copy is dropped (outcome "dropped")
MIRROR_QUEUE_SIZE: Final = 256
#: connections to the candidate per mirroring pod
MIRROR_CONNECTIONS: Final = 4
#: the mirror's budget on the event loop that serves live requests (--mirror-max-loop-share): within
#: each MIRROR_BUDGET_WINDOW_S it spends at most this share of the window's CPU time on copies (sending
#: them, reading and comparing answers); past it the window's further copies are dropped (counted).
MIRROR_MAX_LOOP_SHARE: Final = 0.015
MIRROR_BUDGET_WINDOW_S: Final = 0.1
#: what each copy is charged on top of the mirror's own measured CPU time: the loop's work for it outside
#: the mirror's code (the socket reads and writes, epoll wake-ups); about this much was unaccounted per
#: copy in bench/mirror_ab.py (bench/RESULTS.md, "What the mirror costs")
MIRROR_COPY_IO_CHARGE_S: Final = 40e-6
#: request header marking a mirrored copy: the candidate answers it and never mirrors it again
MIRROR_HEADER: Final = "modeldeploy-mirror"
MIRROR_HEADER_VALUE: Final = "1"


# --- metrics ----------------------------------------------------------------------------------
LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
LABEL_REVISION: Final = "revision"
LABEL_TRACK: Final = "track"
#: on every metric, in this order
BASE_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_REVISION, LABEL_TRACK)
LABEL_CODE: Final = "code"  # HTTP status code as a string, e.g. "200"
LABEL_CLASS: Final = "class"  # argmax index as a string, e.g. "2"
LABEL_REASON: Final = "reason"  # one of REJECTION_REASONS

#: histogram, labels BASE_LABELS only (no code: quantiles stay simple). Covers every request.
METRIC_REQUEST_DURATION: Final = "modeldeploy_request_duration_seconds"
#: counter, labels BASE_LABELS + code. Covers every request on the inference paths.
METRIC_REQUESTS_TOTAL: Final = "modeldeploy_requests_total"
#: histogram, labels BASE_LABELS: the size of each batch that reached session.run
METRIC_BATCH_SIZE: Final = "modeldeploy_batch_size"
#: histogram, labels BASE_LABELS: time from arrival in the batcher to the start of session.run
METRIC_QUEUE_DURATION: Final = "modeldeploy_queue_duration_seconds"
#: gauge, labels BASE_LABELS: seconds spent fetching, verifying, loading and warming the model
METRIC_MODEL_LOAD_SECONDS: Final = "modeldeploy_model_load_seconds"
#: gauge, labels BASE_LABELS: 1 when ready (loaded, verified, warmed), 0 otherwise
METRIC_MODEL_READY: Final = "modeldeploy_model_ready"
#: counter, labels BASE_LABELS + class: argmax of the watched output, per row (prediction kind "class")
METRIC_PREDICTION_CLASS_TOTAL: Final = "modeldeploy_prediction_class_total"
#: histogram over 0..1, labels BASE_LABELS: the watched score, per row (prediction kind "score")
METRIC_PREDICTION_SCORE: Final = "modeldeploy_prediction_score"
#: counter, labels BASE_LABELS + reason
METRIC_INPUT_REJECTIONS_TOTAL: Final = "modeldeploy_input_rejections_total"

#: the mirror (issue 13), on the mirroring (stable) pod; labels BASE_LABELS + candidate (+ outcome or arm).
#: The track label is the mirroring pod's; the candidate counts the copies in its own metrics above.
LABEL_CANDIDATE: Final = "candidate"  # the candidate's revision, from the mirror annotation
LABEL_OUTCOME: Final = "outcome"  # one of MIRROR_OUTCOMES
LABEL_ARM: Final = "arm"  # one of MIRROR_ARMS
#: counter, labels BASE_LABELS + candidate + outcome: one per sampled copy
METRIC_MIRROR_REQUESTS_TOTAL: Final = "modeldeploy_mirror_requests_total"
#: histogram, labels BASE_LABELS + candidate: per score output of each compared copy, max |stable - candidate|
METRIC_MIRROR_SCORE_DIFFERENCE: Final = "modeldeploy_mirror_score_difference"
#: histogram, labels BASE_LABELS + candidate + arm, on the compared copies (same buckets as the request duration):
#: arm "stable" the live request's own latency, "candidate" the copy's round trip
METRIC_MIRROR_DURATION: Final = "modeldeploy_mirror_duration_seconds"
MIRROR_AGREED: Final = "agreed"
MIRROR_DISAGREED: Final = "disagreed"
#: non-2xx, timeout, connection error, unreadable answer
MIRROR_CANDIDATE_ERROR: Final = "candidate_error"
#: queue full, the mirror's loop budget spent (MIRROR_MAX_LOOP_SHARE), or the mirror stopping or
#: reconfigured with the copy unanswered
MIRROR_DROPPED: Final = "dropped"
MIRROR_OUTCOMES: Final = (MIRROR_AGREED, MIRROR_DISAGREED, MIRROR_CANDIDATE_ERROR, MIRROR_DROPPED)
ARM_STABLE: Final = "stable"
ARM_CANDIDATE: Final = "candidate"
MIRROR_ARMS: Final = (ARM_STABLE, ARM_CANDIDATE)
#: |stable - candidate| bucket edges: decades from 1e-7 to 1, then 2, 5, 10
MIRROR_SCORE_DIFFERENCE_BUCKETS: Final = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

#: histogram bucket upper bounds (seconds): 100 µs .. 10 s, ten edges per decade (1, 1.25, 1.5, 2, 2.5, 3, 4, 5,
#: 6, 8), so neighbouring edges are at most 1.33x apart: fine enough for the analysis to judge a p99 ratio of
#: 1.2 (bench/RESULTS-judge.md) and to put an edge at most SLOs (40, 100, 250 ms); `--latency-buckets` replaces them.
REQUEST_DURATION_BUCKETS: Final = (
    *(
        round(mantissa * 10.0**exponent, 10)
        for exponent in range(-4, 1)
        for mantissa in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
    ),
    10.0,
)
MAX_LATENCY_BUCKETS: Final = 200
QUEUE_DURATION_BUCKETS: Final = REQUEST_DURATION_BUCKETS
BATCH_SIZE_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: 20 equal buckets over 0..1 (the +Inf bucket is added by the client library)
PREDICTION_SCORE_BUCKETS: Final = tuple(round(i / 20, 2) for i in range(1, 21))

#: values of the `reason` label of METRIC_INPUT_REJECTIONS_TOTAL
REJECTION_MALFORMED: Final = "malformed"  # body is not valid JSON / header length wrong
REJECTION_BODY_TOO_LARGE: Final = "body_too_large"
REJECTION_UNKNOWN_INPUT: Final = "unknown_input"
REJECTION_MISSING_INPUT: Final = "missing_input"
REJECTION_DATATYPE: Final = "datatype"
REJECTION_SHAPE: Final = "shape"
REJECTION_DATA: Final = "data"  # data length or values do not fit shape / datatype
REJECTION_UNKNOWN_OUTPUT: Final = "unknown_output"
REJECTION_UNSUPPORTED: Final = "unsupported"  # e.g. unsupported content encoding or parameter
REJECTION_REASONS: Final = (
    REJECTION_MALFORMED,
    REJECTION_BODY_TOO_LARGE,
    REJECTION_UNKNOWN_INPUT,
    REJECTION_MISSING_INPUT,
    REJECTION_DATATYPE,
    REJECTION_SHAPE,
    REJECTION_DATA,
    REJECTION_UNKNOWN_OUTPUT,
    REJECTION_UNSUPPORTED,
)
