"""Every file in examples/ is valid: against the generated CRD schema (defaults, CEL), the pydantic models,
and, for a ModelDeployment, the RolloutPolicy of its tier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator import crdgen, policy
from modeldeploy.operator.api import ModelDeployment, RolloutPolicy
from modeldeploy.operator.crd import offline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in crdgen.crds().values()
}
MODELS: dict[str, type[ModelDeployment] | type[RolloutPolicy]] = {
    "ModelDeployment": ModelDeployment,
    "RolloutPolicy": RolloutPolicy,
}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("apiVersion", "").startswith("modeldeploy.io/"):
                out.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return out


DOCS = _documents()
POLICIES = [RolloutPolicy.from_wire(d) for _, d in DOCS if d["kind"] == "RolloutPolicy"]


def test_the_examples_the_issue_asks_for_exist() -> None:
    names = {name.split("#")[0] for name, _ in DOCS}
    assert {
        "examples/minimal.yaml",
        "examples/tier1-fraud-scorer.yaml",
        "examples/policies/tier-1.yaml",
        "examples/policies/tier-2.yaml",
        "examples/policies/tier-3.yaml",
    } <= names
    assert sorted(p.spec.tier for p in POLICIES if p.spec.tier) == [1, 2, 3]


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[n for n, _ in DOCS])
def test_valid_against_the_crd_schema(name: str, doc: dict[str, Any]) -> None:
    assert offline.validate(SCHEMAS[doc["kind"]], doc) == []


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[n for n, _ in DOCS])
def test_valid_through_pydantic_and_the_defaults_agree(name: str, doc: dict[str, Any]) -> None:
    model = MODELS[doc["kind"]]
    as_written = model.model_validate(doc)
    as_stored = model.model_validate(offline.apply_defaults(SCHEMAS[doc["kind"]], doc))
    # The API server's defaults and pydantic's give the same object.
    assert as_stored == as_written


@pytest.mark.parametrize(
    ("name", "doc"), [(n, d) for n, d in DOCS if d["kind"] == "ModelDeployment"], ids=lambda x: str(x)[:40]
)
def test_model_deployment_satisfies_the_policy_of_its_tier(name: str, doc: dict[str, Any]) -> None:
    md = ModelDeployment.from_wire(doc)
    resolution = policy.resolve(md.spec, POLICIES)
    assert resolution.ok, resolution.message
    assert resolution.rollout is not None
    assert resolution.rollout.policy == f"tier-{md.spec.tier}"


def test_the_tier1_example_uses_every_part_of_a_rollout() -> None:
    doc = next(d for n, d in DOCS if n.startswith("examples/tier1-fraud-scorer.yaml"))
    spec = ModelDeployment.from_wire(doc).spec
    assert spec.tier == 1
    assert spec.documentation and spec.documentation.model_card_url and spec.documentation.runbook_url
    actions = {s.action for s in spec.rollout.steps or ()}
    assert actions == {"shadow", "setWeight", "pause", "approval", "analysis"}
    analysis = spec.rollout.analysis
    assert analysis and analysis.slo and analysis.compare_to_stable and analysis.behaviour and analysis.metrics
    assert analysis.provider.prometheus is not None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["model"].update(sha256="A" * 64), "sha256 must be 64 lowercase hex characters"),
        (lambda s: s.update(tier=4), "spec.tier"),
        (lambda s: s["model"].update(sh256="x"), "unknown fields"),
        (lambda s: s.update(rollout={"steps": [{"setWeight": 50}, {"setWeight": 10}]}), "must not decrease"),
    ],
    ids=["cel", "bounds", "unknown-field", "cel-on-a-list"],
)
def test_a_broken_manifest_is_caught(change: Any, expected: str) -> None:
    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    change(doc["spec"])
    errors = offline.validate(SCHEMAS["ModelDeployment"], doc)
    assert any(expected in e for e in errors), errors
