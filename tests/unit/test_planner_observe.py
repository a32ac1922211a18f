"""The planner's inputs read from API objects (observe) and the status merge patch the edge sends."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.api import ModelDeployment
from modeldeploy.operator.kube import merge_patch
from modeldeploy.operator.manifests import deployment as deployment_manifest
from modeldeploy.operator.observe import (
    deployment_fields,
    observe,
    pod_changes,
    pod_fields,
    pod_model_name,
    pod_problem,
    ready_pod_urls,
    relabels,
)

from .test_planner import make_md


def pod(
    rev: str, *, state: dict[str, Any] | None = None, last: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"p-{rev}",
            "labels": {"modeldeploy.io/revision": rev, "modeldeploy.io/serving": "true", **kw.get("labels", {})},
        },
        "status": {
            "podIP": kw.get("ip", "10.244.0.9"),
            "conditions": [{"type": "Ready", "status": "True" if kw.get("ready", True) else "False"}],
            "containerStatuses": [{"name": "runtime", "state": state or {"running": {}}, "lastState": last or {}}],
        },
    }


def test_digest_mismatch_from_exit_code_4() -> None:
    p = pod_problem(pod("r", last={"terminated": {"exitCode": 4, "message": "sha256 abc != def"}}))
    assert p is not None and p.reason == "DigestMismatch" and "sha256 abc != def" in p.message


def test_crash_loop_is_canary_failed_with_the_exit_code_explained() -> None:
    p = pod_problem(pod("r", state={"waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {"exitCode": 3}}))
    assert p is not None and p.reason == "CanaryFailed" and "could not be fetched or loaded" in p.message
    assert pod_problem(pod("r", state={"waiting": {"reason": "ContainerCreating"}})) is None


def test_oom_kill_is_canary_failed_at_the_first_kill_with_the_limit() -> None:
    p = pod("r", state={"running": {}}, last={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    p["spec"] = {"containers": [{"name": "runtime", "resources": {"limits": {"memory": "40Mi"}}}]}
    problem = pod_problem(p)
    assert problem is not None and problem.reason == "CanaryFailed"
    assert "OOMKilled" in problem.message and "40Mi" in problem.message and "limits.memory" in problem.message


def test_observe_deployments_by_revision() -> None:
    dep = {
        "metadata": {"labels": {"modeldeploy.io/revision": "r1"}, "generation": 3},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 1, "observedGeneration": 2},
    }
    o = observe([dep], [pod("r1", last={"terminated": {"exitCode": 4}})])
    assert o.deployments["r1"].replicas == 2 and o.deployments["r1"].ready_replicas == 1
    assert not o.deployments["r1"].up_to_date
    assert o.problems["r1"].reason == "DigestMismatch"


def test_ready_urls_and_relabels() -> None:
    pods = [
        pod("s", ip="10.244.0.2"),
        pod("c", ip="10.244.0.3"),
        pod("c", ip="10.244.0.4", ready=False),
        pod("c", ip="10.244.0.5", labels={"modeldeploy.io/serving": "false"}),
    ]
    assert ready_pod_urls(pods, "c") == ("http://10.244.0.3:8080",)
    assert relabels(pods, frozenset({"s"}), frozenset({"c"})) == [("p-c", "false"), ("p-c", "false")]
    assert relabels(pods, frozenset({"s", "c"}), frozenset()) == [("p-c", "true")]


def test_merge_patch_removes_replaces_and_recurses() -> None:
    old = {"canary": {"step": 1, "stepAction": "pause"}, "phase": "Paused", "conditions": [1, 2]}
    new = {"canary": {"step": 2}, "phase": "Paused", "conditions": [1], "stable": {"revision": "r"}}
    assert merge_patch(old, new) == {
        "canary": {"step": 2, "stepAction": None},
        "conditions": [1],
        "stable": {"revision": "r"},
    }
    assert merge_patch({"canary": {"step": 1}}, {}) == {"canary": None}


def _pod(name: str, rev: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Any:
    return {
        "metadata": {
            "name": name,
            "labels": {"modeldeploy.io/revision": rev, **(labels or {})},
            "annotations": annotations or {},
        }
    }


def test_pod_changes_label_tracks_and_carry_the_mirror_on_stable_only() -> None:

    pods = [
        _pod("s-1", "s", {"modeldeploy.io/serving": "true", "modeldeploy.io/track": "stable"}),
        _pod("c-1", "c", {"modeldeploy.io/serving": "true"}, {"modeldeploy.io/mirror": "{}"}),
    ]
    changes = pod_changes(
        pods,
        serving=frozenset({"s"}),
        out=frozenset({"c"}),
        tracks={"s": "stable", "c": "shadow"},
        mirror='{"percent":10}',
        mirroring="s",
    )
    by_name = {c.name: c for c in changes}
    assert by_name["s-1"].labels == {} and by_name["s-1"].annotations == {"modeldeploy.io/mirror": '{"percent":10}'}
    assert by_name["c-1"].labels == {"modeldeploy.io/serving": "false", "modeldeploy.io/track": "shadow"}
    assert by_name["c-1"].annotations == {"modeldeploy.io/mirror": None}  # only stable's pods mirror
    # the step is over: the annotation goes, and nothing else changes
    pods[0]["metadata"]["annotations"] = {"modeldeploy.io/mirror": '{"percent":10}'}
    done = pod_changes(
        pods[:1], serving=frozenset({"s"}), out=frozenset(), tracks={"s": "stable"}, mirror=None, mirroring="s"
    )
    assert [(c.name, c.labels, c.annotations) for c in done] == [("s-1", {}, {"modeldeploy.io/mirror": None})]


def test_the_watch_cache_keeps_only_what_a_pass_reads_and_reads_the_same() -> None:
    md = ModelDeployment.from_wire(make_md())
    full_dep = deployment_manifest(md, "r1", 2)
    full_dep["metadata"]["generation"] = 3
    full_dep["status"] = {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "observedGeneration": 3}
    pods = [
        {
            **pod("r1", last={"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            "spec": full_dep["spec"]["template"]["spec"],
        },
        {**pod("r2", state={"waiting": {"reason": "CrashLoopBackOff"}}), "spec": full_dep["spec"]["template"]["spec"]},
    ]
    pods[0]["metadata"]["labels"]["modeldeploy.io/revision"] = "r1"
    slim_pods = [pod_fields(p) for p in pods]
    slim_deps = [deployment_fields(full_dep)]
    assert observe(slim_deps, slim_pods) == observe([full_dep], pods)
    assert [pod_problem(p) for p in slim_pods] == [pod_problem(p) for p in pods]
    assert [pod_model_name(p) for p in slim_pods] == [pod_model_name(p) for p in pods] == ["fraud", "fraud"]
    assert ready_pod_urls(slim_pods, "r1") == ready_pod_urls(pods, "r1")
    kw = {
        "serving": frozenset({"r1"}),
        "out": frozenset({"r2"}),
        "tracks": {"r1": "stable"},
        "mirror": None,
        "mirroring": "r1",
    }
    assert pod_changes(slim_pods, **kw) == pod_changes(pods, **kw)  # type: ignore[arg-type]
    assert len(str(slim_pods[0])) < len(str(pods[0])) / 2
