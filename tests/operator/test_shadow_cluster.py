"""Shadow on the local cluster: stable's pods mirror live requests to the candidate and compare answers, the
operator gates on agreement; and a rolled-back canary stops answering a client that holds a connection.

Live traffic is a client sending random N(0, 1) rows through the endpoint Service (a new connection per
request), every answer checked."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from e2e.installed import InstalledOperator
from prometheus_client.parser import text_string_to_metric_families
from tests.runtime import models

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster

ANALYSIS = {
    "interval": "1s",
    "window": "5s",
    "minRequests": 20,
    "failureLimit": 2,
    "inconclusiveLimit": 1000,
    "compareToStable": {},
    "provider": {"pods": {}},
}
SHADOW = {"shadow": {"percent": 100, "duration": "8s", "minAgreementPercent": 98}}
STEPS: list[dict[str, Any]] = [SHADOW, {"setWeight": 50}, {"pause": {}}]


@dataclass
class Load:
    codes: list[int] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    """The model versions that answered live requests."""
    stop: threading.Event = field(default_factory=threading.Event)

    def since_serving(self) -> set[int]:
        """Status codes from the first answer on (before it, stable's first pod was still starting)."""
        first = self.codes.index(200) if 200 in self.codes else len(self.codes)
        return set(self.codes[first:])


@pytest.fixture
def live(local_cluster: ClusterHandle, mdep: Mdep) -> Iterator[Load]:
    load = Load()

    def run() -> None:
        rng = random.Random(7)
        ip = wait_for(  # the test creates the ModelDeployment (and so its Service) after this starts
            lambda: local_cluster.get_json("service", mdep.name, "-n", mdep.namespace)["spec"]["clusterIP"],
            120,
            "the Service",
        )
        with httpx.Client(trust_env=False, timeout=5) as c:
            while not load.stop.is_set():
                row = [rng.gauss(0, 1) for _ in range(4)]
                body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
                try:
                    r = c.post(
                        f"http://{ip}:8080/v2/models/classifier/infer", json=body, headers={"Connection": "close"}
                    )
                    load.codes.append(r.status_code)
                    if r.status_code == 200:
                        load.versions.add(str(r.json().get("model_version")))
                except httpx.HTTPError:
                    load.codes.append(0)
                time.sleep(0.01)  # poll: paces the live load

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield load
    load.stop.set()
    thread.join(timeout=10)


def model_file(cluster: ClusterHandle, mdep: Mdep, base: Model, name: str, data: bytes, version: str) -> Model:
    path = base.path.parent / name
    sha = models.write_model(path, data)
    path.chmod(0o644)
    return Model(version, cluster.model_uri(mdep.namespace, path), sha, path)


def pod_metrics(mdep: Mdep, revision: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the revision's Ready pods' /metrics, summed over its pods."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for pod in mdep.pods():
        labels = pod["metadata"].get("labels") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if labels.get("modeldeploy.io/revision") != revision or not ip:
            continue
        text = httpx.get(f"http://{ip}:8080/metrics", timeout=5, trust_env=False).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                out[key] = out.get(key, 0.0) + s.value
    return out


def requests_by_track(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "modeldeploy_requests_total":
            track = dict(labels)["track"]
            out[track] = out.get(track, 0.0) + value
    return out


def test_an_agreeing_candidate_passes_the_shadow_and_every_track_is_true(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model], live: Load
) -> None:
    stable = onnx_models["1"]
    same = model_file(local_cluster, mdep, stable, "same.onnx", models.classifier(1), "1b")
    mdep.apply(stable, steps=STEPS, analysis=ANALYSIS)
    mdep.wait_cond("Ready", "True")
    mdep.apply(same, steps=STEPS, analysis=ANALYSIS)

    def shadowing() -> dict[str, Any] | None:
        st = mdep.status()
        ca = st.get("canary") or {}
        return st if ca.get("stepAction") == "shadow" and (st.get("analysis") or {}).get("verdict") else None

    st = wait_for(shadowing, 90, "the shadow step judged")
    candidate = st["canary"]["revision"]
    wait_for(lambda: requests_by_track(pod_metrics(mdep, candidate)).get("shadow", 0) > 0, 30, "mirrored copies")
    # the copies that came before its track label reached it count as the runtime's default track; from
    # then on every answer counts as shadow, and no other track grows
    before = requests_by_track(pod_metrics(mdep, candidate))
    wait_for(
        lambda: requests_by_track(pod_metrics(mdep, candidate))["shadow"] >= before["shadow"] + 20, 30, "more copies"
    )
    after = requests_by_track(pod_metrics(mdep, candidate))
    assert {k: v for k, v in after.items() if k != "shadow"} == {k: v for k, v in before.items() if k != "shadow"}
    assert "canary" not in after
    st = wait_for(lambda: (s := mdep.status()).get("canary", {}).get("step", 0) >= 2 and s, 90, "the first setWeight")
    agreement = next(c for c in st["analysis"]["checks"] if c["metric"] == "agreementPercent")
    assert agreement["verdict"] == "Pass" and agreement["value"] == 100.0
    history = [h for h in st["history"] if h["revision"] == candidate]
    assert not any(h["action"] in ("RolledBack", "Aborted") for h in history)
    # the true track on every pod's metrics: the canary now says canary, stable says stable
    wait_for(lambda: requests_by_track(pod_metrics(mdep, candidate)).get("canary", 0) > 0, 30, "canary-track traffic")
    assert set(requests_by_track(pod_metrics(mdep, st["stable"]["revision"]))) == {"stable"}
    # the mirror is off: stable's pods no longer carry the annotation
    wait_for(
        lambda: all(
            "modeldeploy.io/mirror" not in (p["metadata"].get("annotations") or {})
            for p in mdep.pods()
            if p["metadata"]["labels"].get("modeldeploy.io/revision") == st["stable"]["revision"]
        ),
        30,
        "the mirror annotation gone",
    )
    assert live.since_serving() == {200}
    assert "1b" in live.versions  # live traffic reached it only from the setWeight on


@pytest.mark.parametrize(
    ("candidate_model", "why"),
    [
        (lambda: models.diverging_classifier(1), "agreement"),  # differs on ~10% of rows
        (lambda: models.erroring_classifier(1), "errors"),  # 500 on every non-zero row
    ],
    ids=["diverging-10-percent", "erroring"],
)
def test_a_bad_candidate_fails_the_shadow_and_answers_no_live_request(
    local_cluster: ClusterHandle,
    operator: InstalledOperator,
    mdep: Mdep,
    onnx_models: dict[str, Model],
    live: Load,
    candidate_model: Any,
    why: str,
) -> None:
    stable = onnx_models["1"]
    bad = model_file(local_cluster, mdep, stable, f"{why}.onnx", candidate_model(), "9")
    mdep.apply(stable, steps=STEPS, analysis=ANALYSIS)
    mdep.wait_cond("Ready", "True")
    mdep.apply(bad, steps=STEPS, analysis=ANALYSIS)
    obj = mdep.wait_cond("Stalled", "True", "AnalysisFailed", timeout=120)
    st = obj["status"]
    agreement = next(c for c in st["analysis"]["checks"] if c["metric"] == "agreementPercent")
    assert agreement["verdict"] == "Fail" and agreement["value"] < 98
    assert "no live request reached it" in mdep.cond("Stalled")["message"]
    assert st["rolledBackRevision"]["modelVersion"] == "9"
    assert live.versions == {"1"}, live.versions  # every live answer came from stable: none from the candidate
    assert live.since_serving() == {200}, sorted(set(live.codes))


def test_a_client_holding_a_connection_leaves_a_rolled_back_canary_within_a_second(
    local_cluster: ClusterHandle, operator: InstalledOperator, mdep: Mdep, onnx_models: dict[str, Model]
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    mdep.apply(onnx_models["2"], steps=steps)
    mdep.wait_cond("Paused", "True")
    ip = local_cluster.get_json("service", mdep.name, "-n", mdep.namespace)["spec"]["clusterIP"]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
    held: list[httpx.Client] = []

    def on_canary() -> bool:
        # new connections until one lands on a canary pod (the Service balances connections, not requests)
        for old in held:
            old.close()
        held[:] = [httpx.Client(trust_env=False, timeout=5)]
        answer = held[0].post(f"http://{ip}:8080/v2/models/classifier/infer", json=body).json()
        return bool(answer["model_version"] == "2")

    wait_for(on_canary, 30, "a kept-alive connection to a canary pod")
    client = held[0]
    flipped: list[float] = []

    def watch_label() -> None:
        while not flipped:
            pods = [p for p in mdep.pods() if p["metadata"]["labels"].get("modeldeploy.io/model-version") == "2"]
            if pods and all(p["metadata"]["labels"].get("modeldeploy.io/serving") == "false" for p in pods):
                flipped.append(time.monotonic())
            time.sleep(0.05)  # poll

    threading.Thread(target=watch_label, daemon=True).start()
    mdep.annotate("modeldeploy.io/abort", "INC-7")
    last_canary = time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            answer = client.post(f"http://{ip}:8080/v2/models/classifier/infer", json=body).json()
        except httpx.HTTPError:
            continue  # the connection was closed: the next request opens a new one
        if answer["model_version"] == "2":
            last_canary = time.monotonic()
        elif flipped and time.monotonic() - flipped[0] > 3:
            break
        time.sleep(0.02)  # poll
    client.close()
    assert flipped, "the canary's pods were never taken out of serving"
    late = last_canary - flipped[0]
    print(f"\nthe held connection's last canary answer came {late:.2f}s after the pods left serving")
    assert late <= 1.0
