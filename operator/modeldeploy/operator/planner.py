"""The planner: every rollout decision, as a pure function of what was read and the time.

    plan(md, effective, observed, verdict, now) -> Plan(children, status, events, requeue_after)

A tick reads the ModelDeployment (spec, annotations, last status), the resolved rollout
(`Effective`: steps, analysis, deadlines, or the policy's violations), what the cluster holds
(`Observed`: the revisions' Deployments and their pods' failures) and, when an analysis tick ran,
its verdict. It returns the children to apply, the next status, the Events to post and when to
look again. Nothing here does I/O or reads a clock; the tests drive it tick by tick.

The rollout, in order of precedence within one tick:

1. Violations (policy or spec) stall the rollout (`InvalidSpec`); what serves keeps serving.
2. Retiring revisions past their scale-down time are scaled to zero.
3. Controls, each once per annotation value: retry (names the rolled-back revision), then the
   spec's revision (a new one starts a canary, superseding any other; the first revision is a
   canary without steps that becomes stable once Ready), then abort, promote-full.
4. The canary: a failing pod (digest mismatch, crash loop) or analysis reaching `failureLimit`
   rolls it back; `spec.paused` or `inconclusiveLimit` holds it; otherwise its steps run
   (setWeight waits for Ready pods, pause, approval, analysis; a shadow step is refused as InvalidSpec
   until mirroring is built), and after
   the last one it is scaled to full size and promoted (with analysis: on a Pass verdict only).

Replica-ratio routing (the default): stable keeps its full size until promotion and
the canary is added beside it. For a requested weight w (0 < w < 100) and a full size of N pods,
the canary gets the number of pods c in 1..N whose share c/(N+c) is closest to w; ties go to
fewer pods. So the canary's share is coarse and never above 50% before promotion (1 pod beside 2
is 33%); status shows the requested weight and the effective one (from Ready pods) side by side.
Weight 0 is no canary pod; the promotion scales the canary to N first.

Gateway API routing (`trafficRouting.gatewayAPI`): the weight is exact, on the backendRefs of an
HTTPRoute the operator owns (`manifests.http_route`): `<name>-stable` gets 100 - w, `<name>-canary`
w. Pods no longer follow the weight: the canary runs at full size (N) from the start of its
rollout, so every later step (setWeight, promotion, promote-full) moves traffic at once without
waiting for pods, the promotion needs no scale-up, and the analysis compares arms of the same size.
The cost is 2N pods during a rollout, as in a blue-green deployment. The route sends the canary
its weight while all N canary pods are Ready and 0 otherwise (no request reaches a canary that
cannot take its share), so once its pods are up `effectiveWeight` equals the requested weight. After the last step the
canary keeps the last setWeight's weight (stable keeps serving the rest, so the analysis that
gates promotion still sees both arms) until the promotion gives the new stable 100%. A rollback
or abort drops the canary from the tick's plan, so the same apply sets its weight to 0. Without
the Gateway API CRDs in the cluster (`Observed.gateway_api` False) the spec stalls (InvalidSpec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import conditions as cond
from . import manifests
from .api.base import parse_duration
from .api.resources import ModelDeployment, RolloutPolicy
from .api.spec import Analysis, ModelDeploymentSpec, Step
from .api.status import (
    MAX_HISTORY,
    AnalysisStatus,
    CanaryStatus,
    ContractStatus,
    HandledControls,
    HistoryAction,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RetiringRevision,
    RevisionRef,
    StableStatus,
)
from .contract import ContractReading
from .controls import Controls, approval_names, field_manager, read_controls
from .policy import DEFAULT_PROGRESS_DEADLINE, Resolution, Unreadable, resolve
from .revision import revision_of

OPERATOR = "modeldeploy"
POD_WAIT_POLL_S = 10.0
"""While waiting for pods, look again at least this often (Deployment and Pod events wake us sooner)."""
CONTRACT_RETRY_S = 2.0
"""A Ready pod did not answer its model metadata: read it again this soon."""
MAX_NAME_LENGTH = 56
"""`<name>-canary` must fit a Service name (63 characters)."""

# ----------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Effective:
    """The rollout as resolved from the spec and the RolloutPolicies (or why it cannot be)."""

    steps: tuple[Step, ...]
    analysis: Analysis | None
    progress_deadline_s: float
    scale_down_delay_s: float
    policy: str | None = None
    violations: tuple[str, ...] = ()


def from_resolution(spec: ModelDeploymentSpec, resolution: Resolution) -> Effective:
    """The planner's view of `policy.resolve`: the effective rollout, or the violations."""
    r = resolution.rollout
    if r is None:
        names = sorted({v.policy for v in resolution.violations if v.policy})
        return Effective(
            steps=tuple(spec.rollout.steps or ()),
            analysis=spec.rollout.analysis,
            progress_deadline_s=parse_duration(spec.rollout.progress_deadline or DEFAULT_PROGRESS_DEADLINE),
            scale_down_delay_s=parse_duration(spec.rollout.scale_down_delay),
            policy=", ".join(names) or None,
            violations=tuple(str(v) for v in resolution.violations),
        )
    return Effective(
        steps=r.steps,
        analysis=r.analysis,
        progress_deadline_s=r.progress_deadline_seconds,
        scale_down_delay_s=r.scale_down_delay_seconds,
        policy=r.policy,
    )


def effective_for(
    spec: ModelDeploymentSpec, policies: Sequence[RolloutPolicy] = (), unreadable: Sequence[Unreadable] = ()
) -> Effective:
    """Resolve the spec against the RolloutPolicies (inheritance and bounds) for the planner."""
    return from_resolution(spec, resolve(spec, policies, unreadable))


@dataclass(frozen=True)
class RevisionState:
    """One revision's Deployment as observed."""

    revision: str
    replicas: int = 0
    """spec.replicas."""
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    up_to_date: bool = True
    """status.observedGeneration has caught up with metadata.generation."""


@dataclass(frozen=True)
class PodProblem:
    """A revision whose pods cannot serve, read from their container statuses."""

    reason: Literal["DigestMismatch", "CanaryFailed"]
    message: str


@dataclass(frozen=True)
class Observed:
    """What the cluster holds for one ModelDeployment, by revision."""

    deployments: Mapping[str, RevisionState] = field(default_factory=dict)
    problems: Mapping[str, PodProblem] = field(default_factory=dict)
    gateway_api: bool | None = None
    """False when the cluster does not serve HTTPRoutes (gateway.networking.k8s.io/v1): the edge
    learns it from a 404 to the route's apply and plans again. None: not known to be missing."""
    contract: ContractReading | None = None
    """The canary's model contract against stable's, read this tick from one Ready pod of each (only
    while the canary's status has no checked contract); None when not read."""


# ---------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Event:
    """A core/v1 Event about the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What the edge does after one tick."""

    apply: tuple[dict[str, Any], ...]
    """Whole objects for server-side apply (field manager `modeldeploy`)."""
    scale: Mapping[str, int]
    """Deployment name -> replicas, for revisions other than the spec's (their template is not re-applied)."""
    delete: tuple[str, ...]
    """Deployments of revisions nobody needs any more."""
    serving: frozenset[str]
    """Revisions whose pods take traffic through the endpoint Service."""
    out_of_rotation: frozenset[str]
    """Revisions whose pods must be out of the endpoint (label `modeldeploy.io/serving=false`)."""
    status: ModelDeploymentStatus
    events: tuple[Event, ...]
    requeue_after: float | None
    """Seconds until the next tick is needed even if nothing changes; None when only a change matters."""
    rollback: str | None = None
    """Set when this tick rolled a canary back: its reason."""
    promoted: bool = False
    """Set when this tick promoted a canary (not for the first revision)."""


# ------------------------------------------------------------------------------------ small rules


def should_roll_back(verdict: AnalysisStatus | None, analysis: Analysis) -> bool:
    """THE rollback boundary: the check whose consecutive failures reach `failureLimit` rolls back.

    With `failureLimit: 2`, one failed check holds the rollout and the second consecutive one rolls
    it back. An Inconclusive check neither forgives nor adds (the analyser keeps the count).
    """
    return verdict is not None and verdict.consecutive_failures >= analysis.failure_limit


def should_hold_inconclusive(verdict: AnalysisStatus | None, analysis: Analysis) -> bool:
    """Too many Inconclusive checks in a row hold the rollout (Paused, reason AnalysisInconclusive)."""
    return verdict is not None and verdict.consecutive_inconclusive >= analysis.inconclusive_limit


def replicas_for_weight(weight: int, full: int) -> int:
    """Canary pods for a requested weight beside `full` stable pods (see the module docstring)."""
    if weight <= 0 or full <= 0:
        return 0
    if weight >= 100:
        return full
    return min(range(1, full + 1), key=lambda c: (abs(100 * c / (full + c) - weight), c))


def effective_weight(canary_ready: int, stable_ready: int) -> int:
    """The canary's share of Ready pods behind the endpoint, in percent."""
    total = canary_ready + stable_ready
    return 0 if total == 0 else round(100 * canary_ready / total)


def weight_at(steps: tuple[Step, ...], index: int) -> int:
    """The weight requested at step `index`: the last setWeight at or before it; 100 once past the end."""
    if index >= len(steps):
        return 100
    weight = 0
    for s in steps[: index + 1]:
        if s.set_weight is not None:
            weight = s.set_weight
    return weight


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def analysis_wanted(md: ModelDeployment, effective: Effective) -> bool:
    """True when the canary takes traffic and is judged: the handler should tick when `analysis_due`."""
    status = md.status
    return (
        effective.analysis is not None
        and not effective.violations
        and not md.spec.paused
        and status is not None
        and status.stable is not None
        and status.canary is not None
        and status.canary.weight > 0
        and contract_open(md)
    )


def contract_open(md: ModelDeployment) -> bool:
    """The canary's model contract was checked and lets it take traffic (compatible, or allowed).
    True with no canary or no stable (a first revision is not compared with anything)."""
    status = md.status
    if status is None or status.canary is None or status.stable is None:
        return True
    c = status.canary.contract
    return c is not None and c.checked and (c.compatible or md.spec.rollout.allow_contract_change)


def spec_violations(md: ModelDeployment, effective: Effective, observed: Observed | None = None) -> list[str]:
    """What the planner itself refuses, beside the policy's violations."""
    out: list[str] = []
    if len(md.metadata.name) > MAX_NAME_LENGTH:
        out.append(f"metadata.name is {len(md.metadata.name)} characters; at most {MAX_NAME_LENGTH} fit its Services")
    if manifests.gateway_routing(md) is not None and observed is not None and observed.gateway_api is False:
        out.append(
            "trafficRouting.gatewayAPI needs the Gateway API CRDs (HTTPRoute in"
            f" {manifests.HTTPROUTE_API_VERSION}), which this cluster does not serve: install them, or use replicaRatio"
        )
    for i, s in enumerate(effective.steps):
        if s.analysis is not None and effective.analysis is None:
            out.append(f"steps[{i}] is an analysis step, but no analysis is configured (rollout.analysis)")
        if s.shadow is not None:
            out.append(
                f"steps[{i}] is a shadow step, which this release does not run: mirroring live requests to the"
                " canary and comparing answers is not built yet, and a plain hold would skip the agreement gate"
                " it promises; remove the step (from spec.rollout.steps or the policy's defaultSteps)"
            )
    return out


# ------------------------------------------------------------------------------------------- tick


def plan(
    md: ModelDeployment, effective: Effective, observed: Observed, verdict: AnalysisStatus | None, now: datetime
) -> Plan:
    """One reconcile decision. `verdict` is this tick's analysis result, or None when none ran."""
    return _Tick(md, effective, observed, verdict, now).run()


class _Tick:
    def __init__(
        self, md: ModelDeployment, eff: Effective, observed: Observed, verdict: AnalysisStatus | None, now: datetime
    ) -> None:
        self.md = md
        self.spec = md.spec
        self.eff = eff
        self.obs = observed
        self.verdict = verdict
        self.now = now
        self.now_s = rfc3339(now)
        prev = md.status or ModelDeploymentStatus()
        self.prev = prev
        self.stable = prev.stable
        self.canary = prev.canary
        self.analysis = verdict if verdict is not None else prev.analysis
        self.lkg = prev.last_known_good
        self.rolled_back = prev.rolled_back_revision
        self.retiring = list(prev.retiring)
        self.history = list(prev.history)
        self.handled = prev.handled or HandledControls()
        self.events: list[Event] = []
        self.requeue: list[float] = []
        self.rev = revision_of(md.spec)
        self.controls: Controls = read_controls(md.metadata.annotations, self._managed_fields())
        self.situation: cond.Situation | None = None
        self.rollback_reason: str | None = None
        self.promoted = False
        self.gateway = manifests.gateway_routing(md) is not None
        self.contract_held = False
        """The canary waits at the contract gate this tick: its pods take no traffic."""

    # ------------------------------------------------------------------ helpers

    def _managed_fields(self) -> list[dict[str, Any]]:
        extra = self.md.metadata.model_extra or {}
        mf = extra.get("managedFields")
        return list(mf) if isinstance(mf, list) else []

    def spec_author(self, *path: str) -> str:
        return field_manager(self._managed_fields(), ("spec", *path)) or "unknown"

    def full_size(self) -> int:
        """Pods of a revision at full size (under autoscaling: what the HPA gave stable)."""
        if self.spec.serving.autoscaling is not None and self.stable is not None:
            seen = self.obs.deployments.get(self.stable.revision)
            if seen is not None and seen.replicas > 0:
                return seen.replicas
        return self.spec.serving.desired_replicas

    def ready(self, revision: str | None) -> int:
        if revision is None:
            return 0
        seen = self.obs.deployments.get(revision)
        return 0 if seen is None else seen.ready_replicas

    def record(  # noqa: PLR0917 - reads as a sentence at every call site
        self,
        action: HistoryAction,
        revision: str,
        model_version: str | None,
        reason: str,
        message: str,
        author: str = OPERATOR,
        event: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        self.history.append(
            HistoryEntry(
                time=self.now_s,
                action=action,
                revision=revision,
                model_version=model_version,
                author=author,
                reason=reason,
                message=message,
            )
        )
        self.history = self.history[-MAX_HISTORY:]
        self.events.append(Event(event, reason, message))

    def retire(self, revision: str, model_version: str) -> None:
        if any(r.revision == revision for r in self.retiring):
            return
        seen = self.obs.deployments.get(revision)
        if seen is None or seen.replicas == 0:
            return
        at = rfc3339(self.now + timedelta(seconds=self.eff.scale_down_delay_s))
        self.retiring.append(RetiringRevision(revision=revision, model_version=model_version, scale_down_at=at))

    def unretire(self, revision: str) -> None:
        self.retiring = [r for r in self.retiring if r.revision != revision]

    # ------------------------------------------------------------------ the tick

    def run(self) -> Plan:
        violations = [*self.eff.violations, *spec_violations(self.md, self.eff, self.obs)]
        self.retire_expired()
        self.track_spec_pause()
        if violations:
            self.invalid(violations)
        else:
            self.handle_retry()
            self.reconcile_revision()
            self.handle_abort()
            self.handle_promote_full()
            if self.canary is not None and self.situation is None:
                self.step()
        return self.build()

    def invalid(self, violations: list[str]) -> None:
        message = "The spec cannot be rolled out: " + "; ".join(violations) + ". Fix the spec"
        message += f" or the RolloutPolicy {self.eff.policy!r}." if self.eff.policy else "."
        prev_stalled = next((c for c in self.prev.conditions if c.type == "Stalled"), None)
        if prev_stalled is None or prev_stalled.reason != "InvalidSpec" or prev_stalled.message != message:
            self.events.append(Event("Warning", "InvalidSpec", message))
        self.situation = cond.Situation(
            state="Stalled",
            reason="InvalidSpec",
            message=message,
            available=self.ready(self.stable.revision if self.stable else None) > 0,
            available_message=self.available_message(),
        )

    def retire_expired(self) -> None:
        keep: list[RetiringRevision] = []
        for r in self.retiring:
            at = parse_time(r.scale_down_at)
            if at is not None and at <= self.now:
                self.events.append(
                    Event("Normal", "ScaledDown", f"Revision {r.revision} (version {r.model_version}) scaled to zero.")
                )
            else:
                keep.append(r)
                if at is not None:
                    self.requeue.append((at - self.now).total_seconds())
        self.retiring = keep

    def track_spec_pause(self) -> None:
        last = next((h for h in reversed(self.history) if h.action in ("Paused", "Resumed")), None)
        paused_now = self.spec.paused
        was_paused = last is not None and last.action == "Paused"
        target = self.canary.revision if self.canary else (self.stable.revision if self.stable else self.rev)
        if paused_now and not was_paused:
            who = self.spec_author("paused")
            self.record("Paused", target, None, "PausedBySpec", f"spec.paused set by {who}.", who)
        elif not paused_now and was_paused:
            who = self.spec_author("paused")
            self.record("Resumed", target, None, "Resumed", f"spec.paused cleared by {who}.", who)

    def handle_retry(self) -> None:
        c = self.controls.retry
        if c is None or c.value == self.handled.retry:
            return
        self.handled = self.handled.model_copy(update={"retry": c.value})
        if self.rolled_back is not None and c.value == self.rolled_back.revision:
            rb = self.rolled_back
            self.record(
                "Retried",
                rb.revision,
                rb.model_version,
                "Retried",
                f"Retry of revision {rb.revision} by {c.author}.",
                c.author,
            )
            self.rolled_back = None
        else:
            current = self.rolled_back.revision if self.rolled_back else "none"
            self.events.append(
                Event(
                    "Warning",
                    "RetryIgnored",
                    f"modeldeploy.io/retry={c.value} names no rolled-back revision (rolled back: {current}).",
                )
            )

    def reconcile_revision(self) -> None:
        rev = self.rev
        model = self.spec.model
        if self.rolled_back is not None and self.rolled_back.revision != rev:
            self.rolled_back = None  # the spec changed since the rollback: a new rollout may start
        if self.canary is not None and self.canary.revision != rev:
            old = self.canary
            self.record(
                "Superseded",
                old.revision,
                old.model_version,
                "Superseded",
                f"Rollout of version {old.model_version} (revision {old.revision}) superseded by a spec change"
                f" to version {model.version} (revision {rev}).",
                self.spec_author("model"),
            )
            self.retire(old.revision, old.model_version)
            self.canary = None
            self.analysis = None
        if self.stable is not None and self.stable.revision == rev:
            self.unretire(rev)
            return
        if self.canary is not None:
            return
        if self.rolled_back is not None and self.rolled_back.revision == rev:
            return
        self.unretire(rev)
        first = self.stable is None
        steps = () if first else self.eff.steps
        self.canary = CanaryStatus(
            revision=rev,
            model_version=model.version,
            sha256=model.sha256,
            weight=100 if first else weight_at(steps, 0),
            step=0,
            step_count=len(steps),
            step_action=steps[0].action if steps else None,
            step_started_at=self.now_s,
            started_at=self.now_s,
            last_progress_at=self.now_s,
        )
        self.analysis = None
        if first:
            msg = f"Deploying version {model.version} (revision {rev}); it becomes stable once Ready."
        else:
            assert self.stable is not None
            msg = (
                f"Rolling out version {model.version} (revision {rev}) over {len(steps)} steps;"
                f" stable is version {self.stable.model_version} (revision {self.stable.revision})."
            )
        self.record("RolloutStarted", rev, model.version, "RolloutStarted", msg, self.spec_author("model"))

    def handle_abort(self) -> None:
        c = self.controls.abort
        if c is None or c.value == self.handled.abort:
            return
        self.handled = self.handled.model_copy(update={"abort": c.value})
        if self.canary is None:
            self.events.append(
                Event("Warning", "AbortIgnored", f"modeldeploy.io/abort={c.value}: no rollout in progress.")
            )
            return
        self.roll_back("Aborted", f"Rollout of revision {self.canary.revision} aborted by {c.author}.", c.author)

    def handle_promote_full(self) -> None:
        c = self.controls.promote_full
        if c is None or c.value == self.handled.promote_full:
            return
        self.handled = self.handled.model_copy(update={"promote_full": c.value})
        if self.canary is None:
            self.events.append(
                Event(
                    "Warning", "PromoteFullIgnored", f"modeldeploy.io/promote-full={c.value}: no rollout in progress."
                )
            )
            return
        ca = self.canary
        self.record(
            "PromotedFull",
            ca.revision,
            ca.model_version,
            "PromoteFull",
            f"{c.author} asked to promote revision {ca.revision} fully, skipping steps {ca.step + 1}..{ca.step_count}"
            " and the analysis; it is promoted once it is Ready at full size.",
            c.author,
        )
        self.canary = ca.model_copy(
            update={
                "step": ca.step_count,
                "step_action": None,
                "step_started_at": self.now_s,
                "last_progress_at": self.now_s,
            }
        )

    def promote_full_requested(self) -> bool:
        ca = self.canary
        return ca is not None and any(
            h.action == "PromotedFull" and h.revision == ca.revision and h.time >= (ca.started_at or "")
            for h in self.history
        )

    def roll_back(self, reason: str, message: str, author: str = OPERATOR) -> None:
        ca = self.canary
        assert ca is not None
        self.rolled_back = RevisionRef(revision=ca.revision, model_version=ca.model_version, sha256=ca.sha256)
        self.retire(ca.revision, ca.model_version)
        if self.stable is not None:
            back = f" Traffic is back on stable version {self.stable.model_version} (revision {self.stable.revision})."
        else:
            back = " No stable revision serves."
        again = (
            f" It is not retried until the spec changes or `kubectl annotate mdep {self.md.metadata.name}"
            f" modeldeploy.io/retry={ca.revision} --overwrite`."
        )
        action: HistoryAction = "Aborted" if reason == "Aborted" else "RolledBack"
        self.record(action, ca.revision, ca.model_version, reason, message + back + again, author, "Warning")
        self.canary = None
        self.rollback_reason = reason

    # ------------------------------------------------------------------ steps

    def step(self) -> None:
        ca = self.canary
        assert ca is not None
        problem = self.obs.problems.get(ca.revision)
        if problem is not None:
            self.roll_back(problem.reason, problem.message)
            return
        analysis = self.eff.analysis
        judged = analysis is not None and self.stable is not None
        if judged and analysis is not None and not self.spec.paused and should_roll_back(self.analysis, analysis):
            assert self.analysis is not None
            self.roll_back(
                "AnalysisFailed",
                f"Analysis failed {self.analysis.consecutive_failures} checks in a row (failureLimit"
                f" {analysis.failure_limit}): {self.analysis.message}",
            )
            return
        steps = self.eff.steps if self.stable is not None else ()
        full = self.full_size()
        if self.stable is not None and not self.contract_gate(steps, full):
            return
        # an indefinite pause resumes on a Resumed entry after the step began
        for _ in range(len(steps) + 2):
            ca = self.canary
            assert ca is not None
            if ca.step >= ca.step_count:
                self.set_canary_replicas(self.promotion_weight(steps), full)
                self.try_promote(full)
                return
            if self.spec.paused:
                self.set_canary_replicas(weight_at(steps, ca.step), full)
                self.hold_paused(
                    "PausedBySpec", "The rollout is paused (spec.paused: true); set it to false to resume."
                )
                return
            if judged and analysis is not None and should_hold_inconclusive(self.analysis, analysis):
                assert self.analysis is not None
                self.set_canary_replicas(weight_at(steps, ca.step), full)
                self.hold_paused(
                    "AnalysisInconclusive",
                    f"{self.analysis.consecutive_inconclusive} analysis checks in a row were Inconclusive"
                    f" (inconclusiveLimit {analysis.inconclusive_limit}): {self.analysis.message} The rollout"
                    " holds until a check decides; send traffic, or abort.",
                )
                return
            s = steps[ca.step]
            weight = weight_at(steps, ca.step)
            pods_ready = self.set_canary_replicas(weight, full)
            started = parse_time(ca.step_started_at) or self.now
            elapsed = (self.now - started).total_seconds()
            if s.set_weight is not None:
                if pods_ready:
                    self.advance(f"canary at weight {weight}%")
                    continue
                self.wait_for_pods(f"step {ca.step + 1}/{ca.step_count}: setWeight {weight}")
                return
            if s.pause is not None:
                if s.pause.duration is not None:
                    d = parse_duration(s.pause.duration)
                    if elapsed >= d:
                        self.advance(f"paused {s.pause.duration}")
                        continue
                    self.requeue.append(d - elapsed)
                    self.progressing(f"pausing {s.pause.duration} ({max(0, round(d - elapsed))}s left)")
                    return
                if self.resumed_since(started):
                    self.advance("resumed")
                    continue
                self.hold_paused(
                    "PauseStep",
                    f"Step {ca.step + 1}/{ca.step_count} pauses until resumed: `kubectl patch mdep"
                    f' {self.md.metadata.name} --type merge -p \'{{"spec":{{"paused":true}}}}\'` and then'
                    " false, or annotate modeldeploy.io/promote-full.",
                )
                return
            if s.approval is not None:
                a = self.controls.approve
                if a is not None and approval_names(a.value, ca.revision) and a.value != self.handled.approve:
                    self.handled = self.handled.model_copy(update={"approve": a.value})
                    self.record(
                        "Approved",
                        ca.revision,
                        ca.model_version,
                        "Approved",
                        f"Step {ca.step + 1}/{ca.step_count} of revision {ca.revision} approved by {a.author}.",
                        a.author,
                    )
                    self.advance(f"approved by {a.author}")
                    continue
                self.await_approval(s.approval.message)
                return
            if s.analysis is not None:
                d = parse_duration(s.analysis.duration) if s.analysis.duration else 0.0
                passed = self.analysis is not None and self.analysis.verdict == "Pass" and self.analysis.passes >= 1
                if passed and elapsed >= d:
                    self.advance("analysis passed")
                    continue
                if elapsed < d:
                    self.requeue.append(d - elapsed)
                last = self.analysis.verdict if self.analysis and self.analysis.verdict else "none yet"
                self.progressing(f"analysing (last verdict: {last})")
                return
        raise AssertionError("the step loop always returns")  # pragma: no cover

    # ------------------------------------------------------------------ the model contract

    def contract_gate(self, steps: tuple[Step, ...], full: int) -> bool:
        """True when the canary may take traffic: its model contract was read and is compatible with
        stable's, or incompatible and `rollout.allowContractChange` is true.

        Until then the canary runs pods (so that one can be read) that take no traffic: out of the
        endpoint, weight 0 on the HTTPRoute, effective weight 0, and no analysis (`analysis_wanted`). A contract that
        cannot be read (a pod that does not answer) is not yet known: the tick waits, within the
        progress deadline. An incompatible one that is not allowed stalls (`ContractChanged`).
        """
        ca = self.canary
        assert ca is not None
        checked = ca.contract
        reading = self.obs.contract
        fresh = reading is not None and reading.revision == ca.revision and reading.unknown is None
        if (checked is None or not checked.checked) and fresh and reading is not None:
            checked = ContractStatus(
                checked=True,
                compatible=not reading.differences,
                differences=list(reading.differences),
                checked_at=self.now_s,
            )
            self.canary = ca = ca.model_copy(update={"contract": checked, "last_progress_at": self.now_s})
            if checked.compatible:
                self.events.append(
                    Event(
                        "Normal",
                        "ContractChecked",
                        f"The model contract of revision {ca.revision} (version {ca.model_version}) matches"
                        " stable's: inputs and outputs keep their names, datatypes and shapes.",
                    )
                )
        if checked is not None and checked.checked:
            if checked.compatible:
                return True
            if self.spec.rollout.allow_contract_change:
                if not checked.allowed:
                    self.canary = ca.model_copy(update={"contract": checked.model_copy(update={"allowed": True})})
                    self.record(
                        "ContractChangeAllowed",
                        ca.revision,
                        ca.model_version,
                        "ContractChangeAllowed",
                        f"The model contract of revision {ca.revision} differs from stable's: "
                        + "; ".join(checked.differences)
                        + ". rollout.allowContractChange is true, so the rollout goes on.",
                        self.spec_author("rollout", "allowContractChange"),
                    )
                return True
        self.hold_for_contract(steps, full)
        if checked is not None and checked.checked:
            self.contract_changed(checked)
        elif not self.pods_at_gate_ready():
            self.wait_for_pods("reading the model contract: waiting for a Ready canary pod")
        else:
            why = reading.unknown if reading is not None and reading.revision == ca.revision else None
            self.requeue.append(CONTRACT_RETRY_S)
            self.wait_for_pods(f"reading the model contract{f' ({why})' if why else ''}")
        return False

    def hold_for_contract(self, steps: tuple[Step, ...], full: int) -> None:
        """The canary's pods while its contract is not settled: at the current step's size (at least
        one, to have a pod to read), out of rotation, effective weight 0 (the step's weight stays the
        requested one)."""
        ca = self.canary
        assert ca is not None
        if self.gateway or ca.step >= ca.step_count:
            want = full
        else:
            want = max(1, replicas_for_weight(weight_at(steps, ca.step), full))
        seen = self.obs.deployments.get(ca.revision)
        ready = 0 if seen is None else seen.ready_replicas
        weight = self.promotion_weight(steps) if ca.step >= ca.step_count else weight_at(steps, ca.step)
        update: dict[str, Any] = {"weight": weight, "replicas": want, "ready_replicas": ready, "effective_weight": 0}
        if ready > ca.ready_replicas:
            update["last_progress_at"] = self.now_s
        self.canary = ca.model_copy(update=update)
        self.contract_held = True

    def pods_at_gate_ready(self) -> bool:
        ca = self.canary
        assert ca is not None
        seen = self.obs.deployments.get(ca.revision)
        return seen is not None and seen.up_to_date and seen.ready_replicas >= 1

    def contract_changed(self, checked: ContractStatus) -> None:
        ca = self.canary
        assert ca is not None
        name = self.md.metadata.name
        message = (
            f"The model contract of version {ca.model_version} (revision {ca.revision}) is incompatible with stable"
            f" version {self.stable.model_version if self.stable else '?'}'s: "
            + "; ".join(checked.differences)
            + ". The canary gets no traffic; stable keeps serving. To roll it out anyway, set"
            f" `kubectl patch mdep {name} --type merge -p"
            """ '{"spec":{"rollout":{"allowContractChange":true}}}'`; or fix the model, or abort."""
        )
        prev_stalled = next((c for c in self.prev.conditions if c.type == "Stalled"), None)
        if prev_stalled is None or prev_stalled.status != "True" or prev_stalled.reason != "ContractChanged":
            self.record("Stalled", ca.revision, ca.model_version, "ContractChanged", message, event="Warning")
        self.situation = cond.Situation(
            state="Stalled",
            reason="ContractChanged",
            message=message,
            available=self.serving_ready(),
            available_message=self.available_message(),
            progress_message=message,
        )

    def resumed_since(self, started: datetime) -> bool:
        for h in reversed(self.history):
            t = parse_time(h.time)
            if t is None or t < started:
                return False
            if h.action == "Resumed":
                return True
        return False

    def promotion_weight(self, steps: tuple[Step, ...]) -> int:
        """The weight once every step is done, until the promotion: 100 under replica ratio (the canary
        scales to full size beside stable); under gatewayAPI the last setWeight's (0 when none)."""
        if not self.gateway:
            return 100
        return weight_at(steps, len(steps) - 1) if steps else 0

    def set_canary_replicas(self, weight: int, full: int) -> bool:
        """Ask for the canary's pods at `weight`; True when that many are Ready."""
        ca = self.canary
        assert ca is not None
        want = full if self.stable is None or self.gateway else replicas_for_weight(weight, full)
        seen = self.obs.deployments.get(ca.revision)
        ready = 0 if seen is None else seen.ready_replicas
        if self.stable is None:
            effective = 100
        elif self.gateway:
            effective = weight if ready >= want else 0
        else:
            effective = effective_weight(min(ready, want), self.ready(self.stable.revision))
        update: dict[str, Any] = {
            "weight": 100 if self.stable is None else weight,
            "replicas": want,
            "ready_replicas": ready,
            "effective_weight": effective,
            "step_action": self.eff.steps[ca.step].action if self.stable and ca.step < ca.step_count else None,
        }
        if ready > ca.ready_replicas:
            update["last_progress_at"] = self.now_s
        self.canary = ca.model_copy(update=update)
        return (
            seen is not None
            and seen.replicas == want
            and seen.up_to_date
            and ready >= want
            and (want > 0 or seen.ready_replicas == 0)
        )

    def advance(self, why: str) -> None:
        ca = self.canary
        assert ca is not None
        nxt = ca.step + 1
        steps = self.eff.steps
        self.canary = ca.model_copy(
            update={
                "step": nxt,
                "step_action": steps[nxt].action if nxt < len(steps) else None,
                "step_started_at": self.now_s,
                "last_progress_at": self.now_s,
            }
        )
        if self.analysis is not None:
            self.analysis = self.analysis.model_copy(update={"passes": 0})
        what = steps[ca.step].action if ca.step < len(steps) else "step"
        self.events.append(
            Event(
                "Normal",
                "StepCompleted",
                f"Revision {ca.revision}: step {ca.step + 1}/{ca.step_count} ({what}) done: {why}.",
            )
        )

    def try_promote(self, full: int) -> None:
        ca = self.canary
        assert ca is not None
        seen = self.obs.deployments.get(ca.revision)
        ready = seen is not None and seen.replicas == full and seen.up_to_date and seen.ready_replicas >= full
        if not ready:
            what = "first revision" if self.stable is None else "promotion"
            self.wait_for_pods(f"{what}: scaling revision {ca.revision} to {full} Ready pods")
            return
        analysis = self.eff.analysis
        if (
            analysis is not None
            and self.stable is not None
            and not self.promote_full_requested()
            and (self.analysis is None or self.analysis.verdict != "Pass")
        ):
            last = self.analysis.verdict if self.analysis and self.analysis.verdict else "none yet"
            self.progressing(f"all steps done; promotion waits for a passing analysis check (last verdict: {last})")
            return
        old = self.stable
        self.stable = StableStatus(
            revision=ca.revision,
            model_version=ca.model_version,
            sha256=ca.sha256,
            replicas=full,
            ready_replicas=seen.ready_replicas if seen else 0,
            weight=100,
            promoted_at=self.now_s,
        )
        self.canary = None
        if old is None:
            self.record(
                "Deployed",
                ca.revision,
                ca.model_version,
                "Deployed",
                f"Version {ca.model_version} (revision {ca.revision}) is Ready and serves as stable.",
            )
            return
        self.lkg = RevisionRef(revision=old.revision, model_version=old.model_version, sha256=old.sha256)
        self.retire(old.revision, old.model_version)
        self.promoted = True
        self.record(
            "Promoted",
            ca.revision,
            ca.model_version,
            "Promoted",
            f"Version {ca.model_version} (revision {ca.revision}) promoted to stable; version {old.model_version}"
            f" (revision {old.revision}) stops serving and is scaled to zero after"
            f" {self.eff.scale_down_delay_s:g}s.",
        )

    # ------------------------------------------------------------------ situations

    def progress_message(self, doing: str) -> str:
        ca = self.canary
        assert ca is not None
        if self.stable is None:
            return (
                f"Deploying version {ca.model_version} (revision {ca.revision}): {ca.ready_replicas}/{ca.replicas}"
                f" pods Ready; {doing}."
            )
        stable_ready = self.ready(self.stable.revision)
        weights = f"weight {ca.weight}% requested, {ca.effective_weight}% effective"
        if ca.weight != ca.effective_weight and self.gateway:
            weights += f" (HTTPRoute: the canary gets its weight once {ca.ready_replicas}/{ca.replicas} pods are Ready)"
        elif ca.weight != ca.effective_weight:
            weights += f" (replica ratio: {ca.ready_replicas} canary beside {stable_ready} stable pods Ready)"
        verdict = self.analysis.verdict if self.analysis and self.analysis.verdict else None
        step = f"step {min(ca.step + 1, ca.step_count)}/{ca.step_count}" if ca.step_count else "no steps"
        if ca.step >= ca.step_count:
            step = f"all {ca.step_count} steps done"
        text = f"Version {ca.model_version} (revision {ca.revision}): {step}, {weights}; {doing}"
        if verdict:
            text += f"; last analysis verdict: {verdict}"
        return text + "."

    def available_message(self) -> str:
        if self.stable is not None:
            ready = self.ready(self.stable.revision)
            return f"Stable version {self.stable.model_version} has {ready} Ready pods behind {self.endpoint()}."
        if self.canary is not None:
            return f"Version {self.canary.model_version} has {self.canary.ready_replicas} Ready pods."
        return "No revision serves."

    def serving_ready(self) -> bool:
        if self.stable is not None and self.ready(self.stable.revision) > 0:
            return True
        return self.stable is None and self.canary is not None and self.ready(self.canary.revision) > 0

    def endpoint(self) -> str:
        return manifests.endpoint(self.md.metadata.name, self.md.metadata.namespace or "default")

    def progressing(self, doing: str, reason: str = "CanaryInProgress") -> None:
        state: cond.State = "Progressing"
        if self.stable is None:
            state, reason = "Deploying", "Deploying"
        msg = self.progress_message(doing)
        self.situation = cond.Situation(
            state=state,
            reason=reason,
            message=msg,
            available=self.serving_ready(),
            available_message=self.available_message(),
            progress_message=msg,
        )

    def hold_paused(self, reason: str, message: str) -> None:
        msg = self.progress_message("held") + " " + message
        self.situation = cond.Situation(
            state="Paused",
            reason=reason,
            message=msg,
            available=self.serving_ready(),
            available_message=self.available_message(),
            progress_message=msg,
            paused=(reason, message),
        )

    def await_approval(self, note: str | None) -> None:
        ca = self.canary
        assert ca is not None
        how = (
            f"Approve with `kubectl annotate mdep {self.md.metadata.name} modeldeploy.io/approve={ca.revision}"
            " --overwrite` (a later approval step of the same revision takes `<revision>/<anything>`)."
        )
        if note:
            how = f"{note} {how}"
        msg = self.progress_message("awaiting approval") + " " + how
        self.situation = cond.Situation(
            state="AwaitingApproval",
            reason="AwaitingApproval",
            message=msg,
            available=self.serving_ready(),
            available_message=self.available_message(),
            progress_message=msg,
            awaiting_approval=how,
        )

    def wait_for_pods(self, doing: str) -> None:
        ca = self.canary
        assert ca is not None
        last = parse_time(ca.last_progress_at) or self.now
        left = self.eff.progress_deadline_s - (self.now - last).total_seconds()
        if left > 0:
            self.requeue.append(min(left, POD_WAIT_POLL_S))
            self.progressing(f"waiting for pods ({doing})")
            return
        message = (
            f"Revision {ca.revision} (version {ca.model_version}) made no progress for"
            f" {self.eff.progress_deadline_s:g}s (progressDeadline) while {doing}: {ca.ready_replicas}/{ca.replicas}"
            f" pods Ready. Check `kubectl describe pods -l {manifests.LABEL_REVISION}={ca.revision}`; fix the spec,"
            " or abort."
        )
        prev_stalled = next((c for c in self.prev.conditions if c.type == "Stalled"), None)
        if prev_stalled is None or prev_stalled.reason != "ProgressDeadlineExceeded":
            self.record("Stalled", ca.revision, ca.model_version, "ProgressDeadlineExceeded", message, event="Warning")
        self.requeue.append(POD_WAIT_POLL_S)
        self.situation = cond.Situation(
            state="Stalled",
            reason="ProgressDeadlineExceeded",
            message=message,
            available=self.serving_ready(),
            available_message=self.available_message(),
            progress_message=message,
        )

    def settle(self) -> cond.Situation:
        """The situation when no step set one: steady, rolled back, or nothing yet."""
        if self.situation is not None:
            return self.situation
        paused = ("PausedBySpec", "spec.paused is true: a new rollout will hold.") if self.spec.paused else None
        rb = self.rolled_back
        if rb is not None and rb.revision == self.rev:
            entry = next(
                (
                    h
                    for h in reversed(self.history)
                    if h.revision == rb.revision and h.action in ("RolledBack", "Aborted")
                ),
                None,
            )
            reason = entry.reason if entry else "RolledBack"
            message = entry.message if entry else f"Revision {rb.revision} was rolled back."
            return cond.Situation(
                state="RolledBack",
                reason=reason,
                ready_reason="RolledBack" if reason in ("AnalysisFailed", "Aborted", "RolledBack") else reason,
                message=message,
                available=self.serving_ready(),
                available_message=self.available_message(),
                progress_message=message,
                degraded=(reason, message),
                paused=paused,
            )
        if self.stable is not None:
            full = self.full_size()
            ready = self.ready(self.stable.revision)
            if ready >= full:
                st = self.stable
                msg = f"Version {st.model_version} (revision {st.revision}) serves at {self.endpoint()}."
                return cond.Situation(
                    state="Steady",
                    reason="Serving",
                    message=msg,
                    available=True if full == 0 else ready > 0,
                    available_message=self.available_message(),
                    progress_message=msg,
                    paused=paused,
                )
            msg = (
                f"Stable version {self.stable.model_version} (revision {self.stable.revision}) has {ready}/{full}"
                " pods Ready."
            )
            return cond.Situation(
                state="Progressing",
                reason="ScalingUp",
                message=msg,
                available=ready > 0,
                available_message=self.available_message(),
                progress_message=msg,
                degraded=("StableUnderReplicated", msg) if ready < full and self.stable.promoted_at else None,
                paused=paused,
            )
        return cond.Situation(
            state="Deploying",
            reason="Deploying",
            message="Waiting for the first revision.",
            available=False,
            available_message=self.available_message(),
        )

    # ------------------------------------------------------------------ output

    def build(self) -> Plan:
        s = self.settle()
        name = self.md.metadata.name
        full = self.full_size()
        if self.stable is not None:
            stable_ready = self.ready(self.stable.revision)
            canary_share = self.canary.effective_weight if self.canary is not None else 0
            self.stable = self.stable.model_copy(
                update={"replicas": full, "ready_replicas": stable_ready, "weight": 100 - canary_share}
            )
        # replicas per revision
        replicas: dict[str, int | None] = {}
        if self.stable is not None:
            replicas[self.stable.revision] = None if self.spec.serving.autoscaling is not None else full
        if self.canary is not None:
            replicas[self.canary.revision] = self.canary.replicas
        for r in self.retiring:
            seen = self.obs.deployments.get(r.revision)
            replicas.setdefault(r.revision, seen.replicas if seen else 0)
        for ref in (self.lkg, self.rolled_back):
            if ref is not None:
                replicas.setdefault(ref.revision, 0)
        apply: list[dict[str, Any]] = [manifests.service_account(self.md)]
        scale: dict[str, int] = {}
        if s.state == "Stalled" and s.reason == "InvalidSpec":
            # nothing new is created; what exists keeps its size
            for rev, n in replicas.items():
                if rev in self.obs.deployments and n is not None:
                    scale[manifests.deployment_name(name, rev)] = n
        else:
            for rev, n in replicas.items():
                if rev == self.rev:
                    apply.append(manifests.deployment(self.md, rev, n))
                elif rev in self.obs.deployments and n is not None:
                    scale[manifests.deployment_name(name, rev)] = n
        stable_rev = self.stable.revision if self.stable else (self.canary.revision if self.canary else self.rev)
        apply.extend(manifests.services(self.md, stable_rev, self.canary.revision if self.canary else None))
        if self.obs.gateway_api is not False:
            # the canary's routed share; 0 with no canary (a rollback or abort this tick) or no stable yet.
            # First in the plan: a rollback's weight 0 goes out before anything else, and the edge learns
            # from this apply (404) that the cluster has no Gateway API before it creates anything
            routed = self.canary.effective_weight if self.canary is not None and self.stable is not None else 0
            route = manifests.http_route(self.md, routed)
            if route is not None:
                apply.insert(0, route)
        if self.stable is not None:
            hpa = manifests.autoscaler(self.md, self.stable.revision)
            if hpa is not None:
                apply.append(hpa)
        pdb = manifests.disruption_budget(self.md)
        if pdb is not None:
            apply.append(pdb)
        delete = tuple(
            manifests.deployment_name(name, rev) for rev in sorted(self.obs.deployments) if rev not in replicas
        )
        canary_rev = self.canary.revision if self.canary is not None and not self.contract_held else None
        serving = frozenset(r for r in (stable_rev, canary_rev) if r)
        known = set(replicas) | set(self.obs.deployments)
        out_of_rotation = frozenset(known - serving)

        generation = self.md.metadata.generation
        status = ModelDeploymentStatus(
            observed_generation=generation,
            phase=_phase(s),
            conditions=cond.compute(self.prev.conditions, s, self.now_s, generation),
            stable=self.stable,
            canary=self.canary,
            analysis=self.analysis,
            last_known_good=self.lkg,
            rolled_back_revision=self.rolled_back,
            retiring=self.retiring,
            history=self.history[-MAX_HISTORY:],
            handled=self.handled if self.handled != HandledControls() else None,
            endpoint=self.endpoint(),
        )
        if (
            self.eff.analysis is not None
            and self.canary is not None
            and self.stable is not None
            and self.canary.weight > 0
            and not self.spec.paused
            and not self.contract_held
        ):
            last = parse_time(self.analysis.last_run_at) if self.analysis else None
            interval = parse_duration(self.eff.analysis.interval)
            self.requeue.append(0.0 if last is None else max(0.0, interval - (self.now - last).total_seconds()))
        requeue = min(self.requeue) if self.requeue else None
        return Plan(
            apply=tuple(apply),
            scale=scale,
            delete=delete,
            serving=serving,
            out_of_rotation=out_of_rotation,
            status=status,
            events=tuple(self.events),
            requeue_after=None if requeue is None else max(requeue, 0.0),
            rollback=self.rollback_reason,
            promoted=self.promoted,
        )


def _phase(s: cond.Situation) -> Phase:
    phases: dict[cond.State, Phase] = {
        "Deploying": "Pending",
        "Steady": "Healthy",
        "Progressing": "Progressing",
        "Paused": "Paused",
        "AwaitingApproval": "AwaitingApproval",
        "RolledBack": "RolledBack",
        "Stalled": "Failed",
    }
    return phases[s.state]
