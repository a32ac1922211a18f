"""What the stories, the demo and the rollback benchmark share: models on a volume, a second
Prometheus, a ModelDeployment's manifest and status, and a status watcher that keeps a timeline.
The operator itself is installed by its Helm chart (e2e/installed.py).

Everything here runs inside the local cluster's network namespace (the pytest plugin or
`LocalCluster.start()` moves the main thread there; threads started afterwards inherit it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from modeldeploy.localcluster.handle import ClusterHandle
from modeldeploy.localcluster.paths import NODE_IP, prometheus_bin_dir

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from tests.runtime import models  # noqa: E402

MODEL_NAME = "classifier"
PORT = 8080
API = "/apis/modeldeploy.io/v1alpha1"
POLL_S = 0.1
T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll until `predicate` returns something truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, KeyError, ValueError) as err:
            last_error = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last error: {last_error!r})")
        time.sleep(POLL_S)  # poll


# ------------------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelFile:
    """One model version on disk, as spec.model names it."""

    version: str
    uri: str
    sha256: str
    what: str

    def spec(self) -> dict[str, str]:
        return {"name": MODEL_NAME, "version": self.version, "uri": self.uri, "sha256": self.sha256}


def build_models(cluster: ClusterHandle, namespace: str) -> dict[str, ModelFile]:
    """The versions the stories roll out: a stable one, a good one, and three bad ones.

    Written to the cluster's files directory; the pods of `namespace` read them through a
    PersistentVolumeClaim (`pvc://models/...`), as a real cluster hands pods files from a volume.
    """
    directory = cluster.files_dir("e2e-models")
    recipes: dict[str, tuple[str, bytes, str]] = {
        "stable": ("1", models.classifier(0), "the serving classifier"),
        "good": ("2", models.classifier(0), "a retrained classifier that behaves like the serving one"),
        "slow": ("3", models.slow_classifier(0, layers=64), "a classifier ~100x slower per request (~30 ms)"),
        "erroring": ("4", models.erroring_classifier(0), "a classifier that fails on every real input (HTTP 500)"),
        "shifted": ("5", models.classifier(1), "a classifier whose predicted class mix differs"),
    }
    out: dict[str, ModelFile] = {}
    for key, (version, data, what) in recipes.items():
        path = directory / f"classifier-{version}.onnx"
        sha = models.write_model(path, data)
        path.chmod(0o644)
        out[key] = ModelFile(version, cluster.model_uri(namespace, path), sha, what)
    return out


# ------------------------------------------------------------------------------------------ cluster


def apply_crds(cluster: ClusterHandle) -> None:
    """The CRDs from crds/, applied and Established."""
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        cluster.apply(path.read_text(), field_manager="modeldeploy-e2e", force_conflicts=True)
        name = path.name.removesuffix(".yaml")

        def established(name: str = name) -> bool:
            # polled rather than `kubectl wait`, which fails while a new CRD has no conditions yet
            response = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = (response.json().get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, 60, f"CRD {name} to be Established")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusProcess:
    """A second Prometheus scraping the cluster's pods (the cluster's own configuration), on a port of its own.

    A story that stops Prometheus mid-analysis stops this one, never the cluster's.
    """

    def __init__(self, cluster: ClusterHandle, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        # the node's address: the operator's pod reaches it there
        self.url = f"http://{NODE_IP}:{self.port}"
        self.config = directory / "prometheus.yml"
        text = (cluster.state_dir / "prometheus.yml").read_text()
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusProcess:
        with (self.directory / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(prometheus_bin_dir() / "prometheus"),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address={NODE_IP}:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            return httpx.get(self.url + "/-/ready", timeout=1, trust_env=False).status_code == 200

        wait_for(ready, 30, "the story's Prometheus to be ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ------------------------------------------------------------------------------------------ the resource


def analysis_spec(prometheus_url: str | None, **checks: Any) -> dict[str, Any]:
    """A fast analysis for stories: 5 s interval, 30 s window; Prometheus or the pods themselves."""
    provider = {"prometheus": {"address": prometheus_url, "timeout": "2s"}} if prometheus_url else {"pods": {}}
    return {
        "interval": "5s",
        "window": "30s",
        "minRequests": 50,
        "failureLimit": 2,
        "inconclusiveLimit": 60,
        "provider": provider,
        **checks,
    }


DEFAULT_STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"analysis": {"duration": "20s"}}]


class ModelDeploymentHandle:
    """One ModelDeployment: its manifest, its status through the API, its Service's address."""

    def __init__(self, cluster: ClusterHandle, namespace: str, name: str = "clf") -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name

    @property
    def path(self) -> str:
        return f"{API}/namespaces/{self.namespace}/modeldeployments/{self.name}"

    def manifest(
        self,
        model: ModelFile,
        analysis: dict[str, Any],
        steps: list[dict[str, Any]] | None = None,
        replicas: int = 2,
    ) -> dict[str, Any]:
        return {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "owner": "team-stories",
                "model": model.spec(),
                "serving": {"replicas": replicas},
                "rollout": {
                    "steps": DEFAULT_STEPS if steps is None else steps,
                    "scaleDownDelay": "10s",
                    "progressDeadline": "5m",
                    "analysis": analysis,
                },
            },
        }

    def apply(self, model: ModelFile, analysis: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> None:
        self.cluster.apply(self.manifest(model, analysis, steps), field_manager="ml-engineer", force_conflicts=True)

    def get(self) -> dict[str, Any]:
        response = self.cluster.api.get(self.path)
        response.raise_for_status()
        obj: dict[str, Any] = response.json()
        return obj

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get().get("status") or {}
        return status

    def condition(self, kind: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        for c in (status if status is not None else self.status()).get("conditions") or []:
            if c["type"] == kind:
                return dict(c)
        return {}

    def wait_condition(self, kind: str, value: str, reason: str | None = None, timeout: float = 120) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get()
            st = obj.get("status") or {}
            if st.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            c = self.condition(kind, st)
            if c.get("status") == value and (reason is None or c.get("reason") == reason):
                return st
            return None

        return wait_for(check, timeout, f"{self.name} {kind}={value} {reason or ''}")

    def endpoint(self) -> str:
        svc = self.cluster.get_json("service", self.name, "-n", self.namespace)
        return f"http://{svc['spec']['clusterIP']}:{PORT}"


# ------------------------------------------------------------------------------------------ timeline


@dataclass(frozen=True)
class Observation:
    """The status as one poll saw it."""

    wall: float
    phase: str
    stable_version: str | None
    canary_version: str | None
    canary_weight: int | None
    effective_weight: int | None
    step: str
    verdict: str | None
    last_run_at: str | None
    analysis_message: str
    conditions: dict[str, tuple[str, str]]

    def line(self) -> str:
        canary = (
            f"canary v{self.canary_version} at {self.effective_weight}% (asked {self.canary_weight}%), step {self.step}"
            if self.canary_version
            else "no canary"
        )
        verdict = f"; last check {self.verdict}" if self.verdict else ""
        return f"{self.phase:<12} stable v{self.stable_version}, {canary}{verdict}"


def observe(status: dict[str, Any]) -> Observation:
    stable = status.get("stable") or {}
    canary = status.get("canary") or {}
    analysis = status.get("analysis") or {}
    step = f"{canary.get('step', 0) + 1}/{canary.get('stepCount', 0)} {canary.get('stepAction') or ''}".strip()
    return Observation(
        wall=time.time(),
        phase=status.get("phase") or "",
        stable_version=stable.get("modelVersion"),
        canary_version=canary.get("modelVersion"),
        canary_weight=canary.get("weight"),
        effective_weight=canary.get("effectiveWeight"),
        step=step if canary else "",
        verdict=analysis.get("verdict"),
        last_run_at=analysis.get("lastRunAt"),
        analysis_message=analysis.get("message") or "",
        conditions={c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []},
    )


@dataclass
class StatusWatcher:
    """Polls a ModelDeployment's status on a thread; keeps every distinct observation."""

    handle: ModelDeploymentHandle
    on_change: Callable[[Observation], None] | None = None
    timeline: list[Observation] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Every distinct analysis tick seen (the status.analysis object, with `seenAt`)."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-watcher", daemon=True)

    def _run(self) -> None:
        with self.handle.cluster.api_client() as client:
            last_key: tuple[Any, ...] | None = None
            last_tick: str | None = None
            while not self._stop.is_set():
                try:
                    response = client.get(self.handle.path)
                    status = response.json().get("status") or {} if response.status_code == 200 else {}
                except (httpx.HTTPError, ValueError):
                    status = {}
                if status:
                    obs = observe(status)
                    key = (obs.phase, obs.canary_version, obs.effective_weight, obs.step, obs.verdict, obs.conditions)
                    if key != last_key:
                        self.timeline.append(obs)
                        last_key = key
                        if self.on_change is not None:
                            self.on_change(obs)
                    analysis = status.get("analysis") or {}
                    tick = json.dumps(analysis, sort_keys=True)
                    if analysis.get("lastRunAt") and tick != last_tick:
                        self.checks.append({**analysis, "seenAt": obs.wall})
                        last_tick = tick
                self._stop.wait(POLL_S)  # poll

    def start(self) -> StatusWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def first_check(self, verdict: str) -> dict[str, Any] | None:
        return next((c for c in self.checks if c.get("verdict") == verdict), None)

    def first(self, predicate: Callable[[Observation], bool]) -> Observation | None:
        return next((o for o in self.timeline if predicate(o)), None)


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
