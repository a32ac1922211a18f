"""The rollout: every decision, as a pure function of what one tick read and the time.

    plan(md, rollout, observed, verdict, now) -> Plan

The phases, in the order a tick folds them over one frozen `state.Rollout` (each takes the state
and returns a new one; none does I/O or reads a clock):

1. `revisions.retire_expired`             retired revisions past their scale-down time go to zero
2. `controls.spec_pause`                  spec.paused flipping is recorded
3. `gates.violations` / `gates.invalid`   a spec that cannot run (the policy's bounds, one unreadable,
                                          a refused step) stalls as InvalidSpec, and the tick ends
                                          there: what serves keeps serving
4. `controls.retry`                       modeldeploy.io/retry lets a rolled-back revision go again
5. `revisions.follow_spec`                the spec's revision starts a canary, superseding any other
6. `controls.abort`                       modeldeploy.io/abort rolls the canary back
7. `controls.promote_full`                modeldeploy.io/promote-full skips to the promotion
8. `steps.run`                            the canary: rollback causes (`gates.rollback_cause`), the
                                          contract gate (`gates.contract_gate`), holds, then one
                                          function per step kind (`steps.set_weight`, `pause`,
                                          `approve`, `analyse`, `shadow`), then `promotion.promote`
9. `status.result`                        the situation (`situation.settle`), the children
                                          (`children.children`), the status and the Plan

`state` holds the state and the tick; `observed` what the cluster holds; `weights` the replica and
weight arithmetic; `reasons` every reason and the how-to messages; `history` the trimmed audit
trail; `situation` the conditions' situation and the one rule for Events about it (`announce`);
`pods` the canary's size; `shadow` the mirror settings and track labels of a shadow step.
"""

from __future__ import annotations

from datetime import datetime

from ..api.resources import ModelDeployment
from ..api.status import AnalysisStatus
from ..policy import EffectiveRollout, effective_for
from . import controls, gates, revisions, steps
from .clock import parse_time, rfc3339
from .gates import should_hold_inconclusive, should_roll_back
from .observed import Observed, PodProblem, RevisionState
from .reasons import Event
from .state import Rollout, Tick
from .status import Plan, contract_open, judging, result
from .weights import effective_weight, replicas_for_weight, weight_at

__all__ = [
    "EffectiveRollout",
    "Event",
    "Observed",
    "Plan",
    "PodProblem",
    "RevisionState",
    "contract_open",
    "effective_for",
    "effective_weight",
    "judging",
    "parse_time",
    "plan",
    "replicas_for_weight",
    "rfc3339",
    "should_hold_inconclusive",
    "should_roll_back",
    "weight_at",
]

PHASES = (
    controls.retry,
    revisions.follow_spec,
    controls.abort,
    controls.promote_full,
)
"""The phases that run when the spec is valid, before the canary's steps."""


def plan(
    md: ModelDeployment, rollout: EffectiveRollout, observed: Observed, verdict: AnalysisStatus | None, now: datetime
) -> Plan:
    """One reconcile decision. `verdict` is this tick's analysis result, or None when none ran."""
    tick = Tick(md, rollout, observed, verdict, now)
    r = Rollout.start(tick)
    found = gates.violations(tick)
    r = controls.spec_pause(tick, revisions.retire_expired(tick, r))
    if found:
        return result(tick, gates.invalid(tick, r, found))
    for phase in PHASES:
        r = phase(tick, r)
    if r.canary is not None and r.situation is None:
        r = steps.run(tick, r)
    return result(tick, r)
