"""The analysis stories, under load, on the local cluster. Each returns what happened, with the numbers.

Used by tests/analysis/test_stories.py (which asserts), bench/rollback.py (which times) and
e2e/demo.py (which narrates). Every wait polls the API with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .harness import (
    MODEL_NAME,
    ModelDeploymentHandle,
    ModelFile,
    Observation,
    StatusWatcher,
    parse_rfc3339,
    wait_for,
)
from .loadgen import Answer, BackgroundLoad, LoadStats

#: requests per second the load generator sends to the model's ClusterIP
LOAD_RATE = 40.0
#: answers the stable version must give before a canary starts (the load reaches the pods)
WARM_ANSWERS = 40
#: how long the load keeps running after the decision, to see that nothing fails afterwards
AFTER_DECISION_S = 4.0


@dataclass
class Outcome:
    """What one rollout did, as the status and the load generator saw it."""

    decision: str
    """Promoted, RolledBack, Inconclusive or whatever the phase ended at."""
    status: dict[str, Any]
    load: LoadStats
    timeline: list[Observation]
    checks: list[dict[str, Any]]
    decided_at: float
    """Wall time the decision was first seen in status."""
    first_fail_at: float | None = None
    """Wall time of the first failing check (its lastRunAt, whole seconds, so never late)."""
    last_canary_answer_at: float | None = None
    """Wall time the last request answered by the canary's version finished."""
    notes: list[str] = field(default_factory=list)

    @property
    def rollback_seconds(self) -> float | None:
        """First failing check -> zero canary traffic, as the client saw it."""
        if self.first_fail_at is None or self.last_canary_answer_at is None:
            return None
        return max(0.0, self.last_canary_answer_at - self.first_fail_at)

    def failed_after(self, wall: float) -> list[Answer]:
        return self.load.failed_after_wall(wall)

    @property
    def message(self) -> str:
        for c in self.status.get("conditions") or []:
            if c["type"] == "Stalled" and c["status"] == "True":
                return str(c["message"])
        return str((self.status.get("analysis") or {}).get("message") or "")


def deploy_stable(md: ModelDeploymentHandle, model: ModelFile, analysis: dict[str, Any]) -> dict[str, Any]:
    """Apply the first version and wait until it serves."""
    md.apply(model, analysis)
    return md.wait_condition("Ready", "True", timeout=180)


#: How long after the operator's decision the data plane may still route the old way: the
#: EndpointSlice controller, then kube-proxy, follow a relabelled pod (measured on the local node:
#: the last canary answer came 0.2-0.3 s after the status write). Requests in this window may still
#: reach the canary; none may after it.
DATAPLANE_S = 2.0


def start_load(md: ModelDeploymentHandle, stable_version: str, rate: float = LOAD_RATE) -> BackgroundLoad:
    """Steady load on the model's ClusterIP; returns once the stable version answers.

    Starts only once the Service answers at all: kube-proxy programs a new Service's endpoints a
    moment after its pods turn Ready.
    """
    endpoint = md.endpoint()
    wait_for(
        lambda: httpx.get(f"{endpoint}/v2/health/ready", timeout=2, trust_env=False).status_code == 200,
        30,
        f"the Service {endpoint} to answer",
    )
    load = BackgroundLoad(md.endpoint(), MODEL_NAME, rate=rate, concurrency=32, timeout_s=10.0).start()
    wait_for(
        lambda: load.stats.versions().get(stable_version, 0) >= WARM_ANSWERS,
        60,
        f"{WARM_ANSWERS} answers from version {stable_version} through the Service",
    )
    return load


def roll_out(
    md: ModelDeploymentHandle,
    load: BackgroundLoad,
    canary: ModelFile,
    analysis: dict[str, Any],
    *,
    until: Callable[[dict[str, Any]], str | None],
    timeout: float = 240,
    on_change: Callable[[Observation], None] | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> Outcome:
    """Change spec.model to `canary`; wait until `until(status)` names a decision; keep the load a bit longer."""
    watcher = StatusWatcher(md, on_change=on_change).start()
    try:
        md.apply(canary, analysis, steps)

        def decided() -> tuple[str, dict[str, Any]] | None:
            obj = md.get()
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            decision = until(status)
            return (decision, status) if decision else None

        decision, status = wait_for(decided, timeout, f"a decision on version {canary.version}")
        decided_at = time.time()
        wait_for(lambda: time.time() - decided_at >= AFTER_DECISION_S, AFTER_DECISION_S + 5, "load after the decision")
    finally:
        watcher.stop()
    outcome = Outcome(
        decision=decision,
        status=status,
        load=load.stats,
        timeline=list(watcher.timeline),
        checks=list(watcher.checks),
        decided_at=decided_at,
    )
    first_fail = watcher.first_check("Fail")
    if first_fail is not None:
        outcome.first_fail_at = parse_rfc3339(first_fail["lastRunAt"])
    last = load.stats.last_answer_from(canary.version)
    if last is not None:
        outcome.last_canary_answer_at = last.wall + (last.finished - last.started)
    return outcome


def rolled_back(status: dict[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c["type"] == "Stalled" and c["status"] == "True":
            return "RolledBack" if c["reason"] == "AnalysisFailed" else c["reason"]
    return None


def promoted_to(version: str) -> Callable[[dict[str, Any]], str | None]:
    def check(status: dict[str, Any]) -> str | None:
        stable = status.get("stable") or {}
        if stable.get("modelVersion") == version and not status.get("canary"):
            return "Promoted"
        return rolled_back(status)

    return check


def held_inconclusive(status: dict[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c["type"] == "Paused" and c["status"] == "True" and c["reason"] == "AnalysisInconclusive":
            return "Inconclusive"
    if not status.get("canary"):
        return "Promoted" if (status.get("stable") or {}).get("modelVersion") else None
    return rolled_back(status)
