"""What the cluster holds, read into the planner's `Observed` (pure: dicts from the API in, dataclasses out).

Pod failures come from container statuses: the runtime exits with `EXIT_DIGEST_MISMATCH` (4) when
the model's sha256 differs from the spec's, which is a `DigestMismatch`; a container waiting in
`CrashLoopBackOff`, an image that cannot be pulled, a bad container config, or a container the
kernel killed for passing its memory limit (`OOMKilled`, at its first kill: the kubelet's restart
back-off would only delay the verdict) is `CanaryFailed` (the planner applies either to the canary
only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.runtime import contract

from .manifests import LABEL_REVISION, LABEL_SERVING, PORT
from .rollout.observed import Observed, PodProblem, RevisionState

FAILING_WAIT_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"}
)


def revision_state(dep: Mapping[str, Any]) -> RevisionState:
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    return RevisionState(
        revision=(meta.get("labels") or {}).get(LABEL_REVISION, ""),
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        up_to_date=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
    )


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The reason a pod cannot serve, if its containers say so."""
    name = (pod.get("metadata") or {}).get("name", "?")
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for key in ("state", "lastState"):
            term = (cs.get(key) or {}).get("terminated") or {}
            if term.get("exitCode") == contract.EXIT_DIGEST_MISMATCH:
                detail = (term.get("message") or "").strip()
                return PodProblem(
                    "DigestMismatch",
                    f"Pod {name}: the model file's sha256 differs from spec.model.sha256 (runtime exit code"
                    f" {contract.EXIT_DIGEST_MISMATCH}){': ' + detail if detail else ''}. The revision never serves;"
                    " fix spec.model.uri or spec.model.sha256.",
                )
            if term.get("reason") == "OOMKilled":
                limit = _memory_limit(pod, cs.get("name"))
                return PodProblem(
                    "CanaryFailed",
                    f"Pod {name}: OOMKilled: container {cs.get('name')} passed its memory limit"
                    f"{' of ' + limit if limit else ''} (exit code {term.get('exitCode', 137)}, restarts"
                    f" {cs.get('restartCount', 0)}). Raise spec.serving.resources.limits.memory.",
                )
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_WAIT_REASONS:
            last = (cs.get("lastState") or {}).get("terminated") or {}
            code = last.get("exitCode")
            why = {
                contract.EXIT_LOAD_FAILED: "the model could not be fetched or loaded",
                contract.EXIT_CONFIG: "bad flags",
            }
            extra = f"; last exit code {code} ({why.get(code, 'see the pod logs')})" if code is not None else ""
            msg = (waiting.get("message") or "").strip()
            return PodProblem(
                "CanaryFailed",
                f"Pod {name}: {waiting['reason']}{extra}{': ' + msg if msg else ''}. Check `kubectl logs {name}`.",
            )
    return None


def _memory_limit(pod: Mapping[str, Any], container: str | None) -> str | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit else None
    return None


def observe(deployments: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> Observed:
    """Deployments by revision, and the first problem found among each revision's pods."""
    deps = {s.revision: s for s in map(revision_state, deployments) if s.revision}
    problems: dict[str, PodProblem] = {}
    for pod in pods:
        rev = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_REVISION)
        if not rev or rev in problems or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        problem = pod_problem(pod)
        if problem is not None:
            problems[rev] = problem
    return Observed(deployments=deps, problems=problems)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def ready_pods(
    pods: Iterable[Mapping[str, Any]], revision: str, *, serving_only: bool = True
) -> list[Mapping[str, Any]]:
    """A revision's Ready pods with an address, by name; with `serving_only` only those that take
    traffic (not labelled `modeldeploy.io/serving=false`)."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if (
            labels.get(LABEL_REVISION) == revision
            and (not serving_only or labels.get(LABEL_SERVING) != "false")
            and (pod.get("status") or {}).get("podIP")
            and not meta.get("deletionTimestamp")
            and pod_ready(pod)
        ):
            out.append(pod)
    return sorted(out, key=lambda p: str((p.get("metadata") or {}).get("name")))


def pod_url(pod: Mapping[str, Any]) -> str:
    """`http://<podIP>:<port>` of a pod."""
    return f"http://{(pod.get('status') or {}).get('podIP')}:{PORT}"


def pod_model_name(pod: Mapping[str, Any]) -> str | None:
    """The model name a pod's runtime serves under (its container's environment)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == contract.ENV_MODEL_NAME and isinstance(env.get("value"), str):
                return str(env["value"])
    return None


def ready_pod_urls(pods: Iterable[Mapping[str, Any]], revision: str, *, serving_only: bool = True) -> tuple[str, ...]:
    """`http://<podIP>:<port>` of a revision's Ready pods (that take traffic, with `serving_only`: a
    shadow's pods take none, and answer mirrored copies)."""
    return tuple(sorted(pod_url(p) for p in ready_pods(pods, revision, serving_only=serving_only)))


def relabels(pods: Iterable[Mapping[str, Any]], serving: frozenset[str], out: frozenset[str]) -> list[tuple[str, str]]:
    """(pod name, "true"|"false") for each pod whose serving label must change."""
    changes = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        rev = labels.get(LABEL_REVISION)
        want = "true" if rev in serving else "false" if rev in out else None
        if want is not None and labels.get(LABEL_SERVING) != want and not meta.get("deletionTimestamp"):
            changes.append((str(meta.get("name")), want))
    return changes


@dataclass(frozen=True)
class PodChange:
    """A pod's labels and annotations to patch (an annotation None is removed)."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str | None]


def pod_changes(
    pods: Iterable[Mapping[str, Any]],
    *,
    serving: frozenset[str],
    out: frozenset[str],
    tracks: Mapping[str, str],
    mirror: str | None,
    mirroring: str | None,
) -> list[PodChange]:
    """What each pod's metadata must say and does not: `modeldeploy.io/serving` (in or out of the endpoint),
    `modeldeploy.io/track` (stable, canary, shadow), and on the pods of revision `mirroring` the mirror
    settings annotation (removed from every pod when `mirror` is None or the pod is another revision's)."""
    changes = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        rev = labels.get(LABEL_REVISION)
        want_labels: dict[str, str] = {}
        serving_value = "true" if rev in serving else "false" if rev in out else None
        if serving_value is not None and labels.get(LABEL_SERVING) != serving_value:
            want_labels[LABEL_SERVING] = serving_value
        track = tracks.get(rev or "")
        if track is not None and labels.get(contract.POD_LABEL_TRACK) != track:
            want_labels[contract.POD_LABEL_TRACK] = track
        want_mirror = mirror if rev == mirroring else None
        want_annotations: dict[str, str | None] = {}
        if annotations.get(contract.POD_ANNOTATION_MIRROR) != want_mirror:
            want_annotations[contract.POD_ANNOTATION_MIRROR] = want_mirror
        if want_labels or want_annotations:
            changes.append(PodChange(str(meta.get("name")), want_labels, want_annotations))
    return changes


def _pick(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: obj[k] for k in keys if k in obj}


def pod_fields(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Pod a pass reads (this module's readers and the edge's relabel): what the watch cache
    keeps of each, a tenth of the whole object."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    containers = [
        {
            **_pick(c, "name"),
            "env": [e for e in c.get("env") or [] if e.get("name") == contract.ENV_MODEL_NAME],
            "resources": {"limits": _pick((c.get("resources") or {}).get("limits") or {}, "memory")},
        }
        for c in spec.get("containers") or []
    ]
    return {
        "metadata": _pick(meta, "name", "namespace", "labels", "annotations", "deletionTimestamp"),
        "spec": {"containers": containers},
        "status": {
            **_pick(status, "podIP", "conditions"),
            "containerStatuses": [
                _pick(cs, "name", "state", "lastState", "restartCount") for cs in status.get("containerStatuses") or []
            ],
        },
    }


def deployment_fields(dep: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Deployment a pass reads (`revision_state` and the edge's scale)."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    return {
        "metadata": _pick(meta, "name", "namespace", "labels", "generation"),
        "spec": _pick(spec, "replicas"),
        "status": _pick(status, "readyReplicas", "updatedReplicas", "availableReplicas", "observedGeneration"),
    }
