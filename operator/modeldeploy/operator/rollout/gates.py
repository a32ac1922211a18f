"""What stops a rollout before its steps: a spec that cannot run, a cause to roll back, and the model
contract gate (pure)."""

from __future__ import annotations

from typing import Literal

from .. import conditions as cond
from ..api.analysis import Analysis
from ..api.status import AnalysisStatus, ContractStatus, HistoryAction, RevisionRef
from ..contract import ContractReading
from . import situation as sit
from .clock import since
from .pods import target_replicas
from .reasons import OPERATOR, Reason, how_to_allow_contract_change, how_to_retry
from .shadow import shadowing
from .state import Rollout, Tick
from .weights import requested_weight

MAX_NAME_LENGTH = 56
"""`<name>-canary` must fit a Service name (63 characters)."""
MAX_DIFFERENCES = 64
"""status.canary.contract.differences holds at most this many (the CRD's maxItems)."""
CONTRACT_RETRY_S = 2.0
"""A Ready pod did not answer its model metadata: read it again this soon at first..."""
CONTRACT_RETRY_MAX_S = 60.0
"""...doubling while it keeps not answering, up to this."""

# --------------------------------------------------------------------------------- invalid specs


def violations(tick: Tick) -> list[str]:
    """Why the spec cannot be rolled out: the policy's violations, then the planner's own."""
    out = list(tick.rollout.violations)
    name = tick.name
    if len(name) > MAX_NAME_LENGTH:
        out.append(f"metadata.name is {len(name)} characters; at most {MAX_NAME_LENGTH} fit its Services")
    if tick.gateway and tick.observed.gateway_api is False:
        out.append(
            "trafficRouting.gatewayAPI needs the Gateway API CRDs (HTTPRoute in gateway.networking.k8s.io/v1),"
            " which this cluster does not serve: install them, or use replicaRatio"
        )
    steps = tick.rollout.steps
    analysis = tick.rollout.analysis
    for i, s in enumerate(steps):
        if s.analysis is not None and analysis is None:
            out.append(f"steps[{i}] is an analysis step, but no analysis is configured (rollout.analysis)")
        elif s.analysis is not None and requested_weight(steps, i, tick.gateway) == 0:
            out.append(
                f"steps[{i}] is an analysis step at weight 0: the canary takes no traffic there, so no check"
                " can judge it; put a setWeight above 0 before it"
            )
        if s.shadow is not None and analysis is None:
            out.append(
                f"steps[{i}] is a shadow step, which is judged by rollout.analysis (its interval, minRequests,"
                " provider) beside its minAgreementPercent, but no analysis is configured"
            )
    if tick.gateway and analysis is not None and requested_weight(steps, len(steps), gateway=True) == 0:
        out.append(
            "trafficRouting.gatewayAPI keeps the canary at its last setWeight until promotion, and no setWeight"
            " above 0 ends the steps: with rollout.analysis the canary would get no traffic to judge and never"
            " be promoted; add a setWeight step above 0"
        )
    return out


def invalid(tick: Tick, r: Rollout, found: list[str]) -> Rollout:
    """Stalled (InvalidSpec): nothing new starts; what serves keeps serving."""
    message = "The spec cannot be rolled out: " + "; ".join(found) + ". Fix the spec"
    policy = tick.rollout.policy
    message += f" or the RolloutPolicy {policy!r}." if policy else "."
    r = sit.announce(tick, r, "Stalled", "InvalidSpec", message, compare_message=True)
    return r.but(
        situation=cond.Situation(
            state="Stalled",
            reason="InvalidSpec",
            message=message,
            available=tick.ready(r.stable.revision if r.stable else None) > 0,
            available_message=sit.available_message(tick, r),
        )
    )


# ------------------------------------------------------------------------------------- rollbacks


def should_roll_back(verdict: AnalysisStatus | None, analysis: Analysis) -> bool:
    """THE rollback boundary: the check whose consecutive failures reach `failureLimit` rolls back.

    With `failureLimit: 2`, one failed check holds the rollout and the second consecutive one rolls
    it back. An Inconclusive check neither forgives nor adds (the analyser keeps the count).
    """
    return verdict is not None and verdict.consecutive_failures >= analysis.failure_limit


def should_hold_inconclusive(verdict: AnalysisStatus | None, analysis: Analysis) -> bool:
    """Too many Inconclusive checks in a row hold the rollout (Paused, reason AnalysisInconclusive)."""
    return verdict is not None and verdict.consecutive_inconclusive >= analysis.inconclusive_limit


def roll_back(tick: Tick, r: Rollout, reason: Reason, message: str, author: str = OPERATOR) -> Rollout:
    """The canary is dropped: no traffic from this tick's apply on, retired after scaleDownDelay."""
    ca = r.canary
    assert ca is not None
    r = r.but(rolled_back=RevisionRef(revision=ca.revision, model_version=ca.model_version, sha256=ca.sha256))
    r = r.retire(tick, ca.revision, ca.model_version)
    if r.stable is not None:
        back = f" Traffic is back on stable version {r.stable.model_version} (revision {r.stable.revision})."
    else:
        back = " No stable revision serves."
    action: HistoryAction = "Aborted" if reason == "Aborted" else "RolledBack"
    text = message + back + how_to_retry(tick.name, ca.revision)
    r = r.record(tick, action, ca.revision, ca.model_version, reason, text, author, "Warning")
    return r.but(canary=None, rollback=reason)


def live_before(tick: Tick, r: Rollout) -> bool:
    """Whether a step before the current one sent the canary live traffic."""
    assert r.canary is not None
    return any((st.set_weight or 0) > 0 for st in tick.rollout.steps[: r.canary.step])


def judged(tick: Tick, r: Rollout) -> Analysis | None:
    """The analysis that judges this canary (None for a first revision or without analysis)."""
    return tick.rollout.analysis if r.stable is not None else None


def rollback_cause(tick: Tick, r: Rollout) -> Rollout:
    """Roll the canary back for failing pods, or for analysis at its failureLimit; else note a failed
    check below the limit (an Event, once per check)."""
    ca = r.canary
    assert ca is not None
    problem = tick.observed.problems.get(ca.revision)
    if problem is not None:
        return roll_back(tick, r, problem.reason, problem.message)
    analysis = judged(tick, r)
    if analysis is None or tick.spec.paused or r.analysis is None:
        return r
    if should_roll_back(r.analysis, analysis):
        unseen = (
            " It was a shadow: it answered mirrored copies only, and no live request reached it."
            if shadowing(tick, r) is not None and not live_before(tick, r)
            else ""
        )
        return roll_back(
            tick,
            r,
            "AnalysisFailed",
            f"Analysis failed {r.analysis.consecutive_failures} checks in a row (failureLimit"
            f" {analysis.failure_limit}): {r.analysis.message}{unseen}",
        )
    v = tick.verdict
    if v is not None and v.verdict == "Fail":
        r = r.emit(
            "Warning",
            "AnalysisCheckFailed",
            f"Analysis check {v.consecutive_failures} of failureLimit {analysis.failure_limit} failed for revision"
            f" {ca.revision}; the rollout holds its weight: {v.message}",
        )
    return r


# -------------------------------------------------------------------------------- contract gate


def contract_status(reading: ContractReading, now: str) -> ContractStatus:
    """A contract reading as status holds it: at most MAX_DIFFERENCES, the last one counting the rest."""
    diffs = list(reading.differences)
    if len(diffs) > MAX_DIFFERENCES:
        rest = len(diffs) - (MAX_DIFFERENCES - 1)
        diffs = [*diffs[: MAX_DIFFERENCES - 1], f"... and {rest} more differences"]
    return ContractStatus(checked=True, compatible=not reading.differences, differences=diffs, checked_at=now)


Gate = Literal["open", "closed"]


def contract_gate(tick: Tick, r: Rollout) -> tuple[Gate, Rollout]:
    """Open when the canary may take traffic: its model contract was read and is compatible with
    stable's, or incompatible and `rollout.allowContractChange` is true.

    Until then the canary runs pods (so that one can be read) that take no traffic: out of the
    endpoint, weight 0 on the HTTPRoute, effective weight 0, and no analysis. A contract that cannot
    be read (a pod that does not answer) is not yet known: the tick waits, with a back-off, within
    the progress deadline. An incompatible one that is not allowed stalls (`ContractChanged`).
    """
    ca = r.canary
    assert ca is not None
    checked = ca.contract
    reading = tick.observed.contract
    fresh = reading is not None and reading.revision == ca.revision and reading.unknown is None
    if (checked is None or not checked.checked) and fresh and reading is not None:
        checked = contract_status(reading, tick.now_s)
        r = r.with_canary(contract=checked, last_progress_at=tick.now_s)
        if checked.compatible:
            r = r.emit(
                "Normal",
                "ContractChecked",
                f"The model contract of revision {ca.revision} (version {ca.model_version}) matches"
                " stable's: inputs and outputs keep their names, datatypes and shapes.",
            )
    if checked is not None and checked.checked:
        if checked.compatible:
            return "open", r
        if tick.rollout.allow_contract_change:
            if not checked.allowed:
                r = r.with_canary(contract=checked.model_copy(update={"allowed": True}))
                r = r.record(
                    tick,
                    "ContractChangeAllowed",
                    ca.revision,
                    ca.model_version,
                    "ContractChangeAllowed",
                    f"The model contract of revision {ca.revision} differs from stable's: "
                    + "; ".join(checked.differences)
                    + ". rollout.allowContractChange is true, so the rollout goes on.",
                    tick.spec_author("rollout", "allowContractChange"),
                )
            return "open", r
    r = hold_for_contract(tick, r)
    if checked is not None and checked.checked:
        return "closed", contract_changed(tick, r, checked)
    if not pods_at_gate_ready(tick, r):
        return "closed", sit.wait_for_pods(tick, r, "reading the model contract: waiting for a Ready canary pod")
    why = reading.unknown if reading is not None and reading.revision == ca.revision else None
    doing = f"reading the model contract{f' ({why})' if why else ''}"
    return "closed", sit.within_deadline(
        tick, r, doing, f"waiting for pods ({doing})", poll_s=contract_retry_s(tick, r)
    )


def contract_retry_s(tick: Tick, r: Rollout) -> float:
    """When to read an unanswered contract again: as long again as it has waited since the canary's
    pods last made progress (a doubling back-off), at least 2 s and at most 60 s."""
    assert r.canary is not None
    waited = since(r.canary.last_progress_at, tick.now) or 0.0
    return min(max(CONTRACT_RETRY_S, waited), CONTRACT_RETRY_MAX_S)


def hold_for_contract(tick: Tick, r: Rollout) -> Rollout:
    """The canary's pods while its contract is not settled: at the current step's size (at least one,
    to have a pod to read), out of rotation, effective weight 0 (the step's weight stays the requested one)."""
    ca = r.canary
    assert ca is not None
    steps = tick.steps_for(r.stable)
    weight = requested_weight(steps, ca.step, tick.gateway)
    want = target_replicas(tick, r, 100 if ca.step >= ca.step_count else weight)
    want = max(1, want)
    ready = tick.ready(ca.revision)
    update: dict[str, object] = {"weight": weight, "replicas": want, "ready_replicas": ready, "effective_weight": 0}
    if ready > ca.ready_replicas:
        update["last_progress_at"] = tick.now_s
    return r.with_canary(**update).but(contract_held=True)


def pods_at_gate_ready(tick: Tick, r: Rollout) -> bool:
    assert r.canary is not None
    seen = tick.observed.deployments.get(r.canary.revision)
    return seen is not None and seen.up_to_date and seen.ready_replicas >= 1


def contract_changed(tick: Tick, r: Rollout, checked: ContractStatus) -> Rollout:
    ca = r.canary
    assert ca is not None
    message = (
        f"The model contract of version {ca.model_version} (revision {ca.revision}) is incompatible with stable"
        f" version {r.stable.model_version if r.stable else '?'}'s: "
        + "; ".join(checked.differences)
        + ". The canary gets no traffic; stable keeps serving. To roll it out anyway, set "
        + how_to_allow_contract_change(tick.name)
        + "; or fix the model, or abort."
    )
    return sit.stalled(tick, r, "ContractChanged", message)
