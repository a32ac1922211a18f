"""examples/kustomize/: each overlay rendered by the real `kubectl kustomize`, each rendered ModelDeployment
valid against the generated CRD schema (defaults and CEL rules, offline), through the API models, and within
the RolloutPolicy of its tier; the overlays differ where they promise to (tier, steps, SLOs)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.localcluster.paths import kubectl
from modeldeploy.operator import crdgen, policy
from modeldeploy.operator.api import ModelDeployment, RolloutPolicy
from modeldeploy.operator.crd import offline

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "examples" / "kustomize"
SCHEMA = next(
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in crdgen.crds().values()
    if crd["spec"]["names"]["kind"] == "ModelDeployment"
)
POLICIES = [
    RolloutPolicy.from_wire(yaml.safe_load(p.read_text()))
    for p in sorted((ROOT / "examples" / "policies").glob("*.yaml"))
]
OVERLAYS = ["dev", "staging", "prod"]


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


RENDERED = {o: render(o) for o in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_one_valid_model_deployment_within_its_tier_policy(overlay: str) -> None:
    (doc,) = RENDERED[overlay]
    assert doc["kind"] == "ModelDeployment" and doc["metadata"]["name"] == "churn-predictor"
    assert offline.validate(SCHEMA, doc) == []
    md = ModelDeployment.from_wire(doc)
    assert ModelDeployment.model_validate(offline.apply_defaults(SCHEMA, doc)) == ModelDeployment.model_validate(doc)
    resolution = policy.resolve(md.spec, POLICIES)
    assert resolution.ok, resolution.message
    assert resolution.rollout is not None and resolution.rollout.policy == f"tier-{md.spec.tier}"


def test_the_overlays_differ_in_namespace_tier_steps_and_slos() -> None:
    mds = {o: ModelDeployment.from_wire(RENDERED[o][0]) for o in OVERLAYS}
    assert [mds[o].metadata.namespace for o in OVERLAYS] == ["ml-dev", "ml-staging", "ml"]
    assert [mds[o].spec.tier for o in OVERLAYS] == [3, 2, 1]
    steps = {o: [s.action for s in mds[o].spec.rollout.steps or ()] for o in OVERLAYS}
    assert len(set(map(tuple, steps.values()))) == 3
    assert "approval" in steps["prod"] and "analysis" not in steps["dev"]
    analyses = {o: mds[o].spec.rollout.analysis for o in OVERLAYS}
    slos = {o: a.slo if a is not None else None for o, a in analyses.items()}
    assert slos["dev"] is None
    assert slos["staging"] is not None and slos["prod"] is not None
    assert slos["prod"].latency_p99_ms is not None and slos["staging"].latency_p99_ms is not None
    assert slos["prod"].latency_p99_ms < slos["staging"].latency_p99_ms
    # the model itself comes from the base, the same everywhere
    assert len({mds[o].spec.model.version for o in OVERLAYS}) == 1


def test_argocd_and_flux_point_at_the_overlays() -> None:
    apps = list(yaml.safe_load_all((ROOT / "examples" / "argocd" / "application.yaml").read_text()))
    paths = {a["spec"]["source"]["path"] for a in apps}
    assert "examples/kustomize/overlays/prod" in paths
    flux = list(yaml.safe_load_all((ROOT / "examples" / "flux" / "modeldeploy.yaml").read_text()))
    assert "./examples/kustomize/overlays/prod" in {d["spec"].get("path") for d in flux if d["kind"] == "Kustomization"}
