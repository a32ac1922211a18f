"""Shadow: while a shadow step runs, the candidate takes no live traffic, stable's pods mirror a share of
the requests they answered to it and compare both answers (pure).

The operator says so through the pods themselves: the candidate's pods are labelled
`modeldeploy.io/track=shadow` (their metrics say so too) and kept out of the endpoint; stable's pods
carry the annotation `modeldeploy.io/mirror` with where to mirror, how much and to which revision.
The runtime re-reads both from its downward-API files, so nothing restarts. With no shadow step
running (the step ended, an abort, a rollback) the annotation is removed and the mirror stops.
"""

from __future__ import annotations

import json

from modeldeploy.runtime import contract

from .. import manifests
from ..api.spec import ShadowStep
from .state import Rollout, Tick

MIRROR_TIMEOUT_MS = 1000
"""How long a stable pod waits for the candidate's answer to one copy before counting a candidate error."""


def shadowing(tick: Tick, r: Rollout) -> ShadowStep | None:
    """The shadow step the canary is at, if any (never for a first revision)."""
    ca = r.canary
    if ca is None or r.stable is None or ca.step >= ca.step_count:
        return None
    return tick.rollout.steps[ca.step].shadow


def candidate_url(tick: Tick) -> str:
    """The candidate's track Service (`<name>-canary` selects its pods whether or not they serve)."""
    namespace = tick.md.metadata.namespace or "default"
    return f"http://{manifests.canary_service_name(tick.name)}.{namespace}.svc:{manifests.PORT}"


def mirror_settings(tick: Tick, r: Rollout) -> str | None:
    """The `modeldeploy.io/mirror` annotation for stable's pods: JSON while a shadow step runs with the
    contract gate open, else None (no annotation: no mirror)."""
    step = shadowing(tick, r)
    if step is None or r.contract_held or r.canary is None:
        return None
    settings = {
        contract.MIRROR_KEY_URL: candidate_url(tick),
        contract.MIRROR_KEY_PERCENT: step.percent,
        contract.MIRROR_KEY_CANDIDATE: r.canary.revision,
        contract.MIRROR_KEY_TIMEOUT_MS: MIRROR_TIMEOUT_MS,
    }
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def tracks(tick: Tick, r: Rollout) -> dict[str, str]:
    """The track label per revision: stable's, and the canary's (`shadow` while a shadow step runs)."""
    out: dict[str, str] = {}
    if r.stable is not None:
        out[r.stable.revision] = contract.DEFAULT_TRACK
    if r.canary is not None:
        out[r.canary.revision] = "shadow" if shadowing(tick, r) is not None else ("canary" if r.stable else "stable")
    return out
