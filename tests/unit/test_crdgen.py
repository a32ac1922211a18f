"""The generated CRDs: up to date, structural, complete, and within what the API server accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator import crdgen
from modeldeploy.operator.api import (
    AnalysisStatus,
    ArmMeasurement,
    CanaryStatus,
    CheckResult,
    Condition,
    HistoryEntry,
    ModelDeploymentStatus,
    RevisionRef,
    StableStatus,
)
from modeldeploy.operator.api.status import CONDITION_TYPES, ContractStatus, HandledControls, RetiringRevision
from modeldeploy.operator.crd import offline

ROOT = Path(__file__).resolve().parents[2]
CRDS = crdgen.crds()
MDEP = CRDS["modeldeployments.modeldeploy.io.yaml"]
RPOL = CRDS["rolloutpolicies.modeldeploy.io.yaml"]


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path or "<root>", node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


ALL_NODES = [(crd["metadata"]["name"], p, n) for crd in CRDS.values() for p, n in _nodes(_schema(crd))]


def test_crds_directory_matches_the_models() -> None:
    """Fails when crds/ is stale: run `make crds`."""
    for name, text in crdgen.rendered().items():
        path = ROOT / "crds" / name
        assert path.exists(), f"{path} missing: run `make crds`"
        assert path.read_text() == text, f"{path} is stale: run `make crds`"
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(crdgen.rendered())


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path)]) == 0
    assert crdgen.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "modeldeployments.modeldeploy.io.yaml").write_text("stale\n")
    assert crdgen.main([str(tmp_path), "--check"]) == 1


def test_rendered_yaml_loads_back_to_the_same_object() -> None:
    for name, text in crdgen.rendered().items():
        assert yaml.safe_load(text) == CRDS[name]


@pytest.mark.parametrize(("crd", "path", "node"), ALL_NODES, ids=[f"{c}:{p}" for c, p, _ in ALL_NODES])
def test_structural(crd: str, path: str, node: dict[str, Any]) -> None:
    assert not crdgen.FORBIDDEN_KEYWORDS & node.keys(), f"forbidden keyword at {crd} {path}"
    assert "type" in node, f"no type at {path}"
    assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}
    if "properties" in node:
        assert node["type"] == "object"
        assert "additionalProperties" not in node, "properties and additionalProperties together"
    assert node.get("additionalProperties") is not False
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node:
            assert node[key] is True
            assert ("minimum" if key == "exclusiveMinimum" else "maximum") in node
    if "default" in node:
        assert node["default"] is not None
        assert offline.schema_errors(node, node["default"]) == [], f"default at {path} is invalid"
    if node["type"] == "array":
        assert isinstance(node.get("items"), dict), f"array without items at {path}"
    if "required" in node:
        assert set(node["required"]) <= set(node.get("properties", {})), path


@pytest.mark.parametrize("crd", list(CRDS.values()), ids=list(CRDS))
def test_every_field_has_a_description(crd: dict[str, Any]) -> None:
    missing = [
        p
        for p, n in _nodes(_schema(crd))
        if p != ".metadata" and not n.get("description") and not (p.endswith(("{}", "[]")) and n["type"] == "string")
    ]
    assert missing == []


def test_defaults_mirror_pydantic() -> None:
    spec = _schema(MDEP)["properties"]["spec"]["properties"]
    assert spec["tier"]["default"] == 3
    assert spec["paused"]["default"] is False
    rollout = spec["rollout"]
    assert rollout["properties"]["scaleDownDelay"]["default"] == "30s"
    assert "default" not in rollout["properties"]["progressDeadline"]  # inherited from the policy
    analysis = rollout["properties"]["analysis"]["properties"]
    assert analysis["provider"]["default"] == {"pods": {}}
    assert analysis["interval"]["default"] == "30s"
    assert "default" not in analysis["metrics"]  # empty collections are left to pydantic


def test_enums_and_bounds() -> None:
    spec = _schema(MDEP)["properties"]["spec"]["properties"]
    assert (spec["tier"]["minimum"], spec["tier"]["maximum"]) == (1, 3)
    steps = spec["rollout"]["properties"]["steps"]
    assert steps["maxItems"] == 32
    weight = steps["items"]["properties"]["setWeight"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)
    kind = spec["serving"]["properties"]["predictionMetrics"]["properties"]["kind"]
    assert kind["enum"] == ["class", "score"]
    status = _schema(MDEP)["properties"]["status"]["properties"]
    cond = status["conditions"]
    assert cond["items"]["properties"]["type"]["enum"] == list(CONDITION_TYPES)
    assert cond["x-kubernetes-list-type"] == "map"
    assert cond["x-kubernetes-list-map-keys"] == ["type"]
    assert status["history"]["maxItems"] == 20


def test_resources_map_is_a_string_map() -> None:
    res = _schema(MDEP)["properties"]["spec"]["properties"]["serving"]["properties"]["resources"]
    assert res["properties"]["requests"] == {
        "description": res["properties"]["requests"]["description"],
        "type": "object",
        "additionalProperties": {"type": "string"},
    }


def test_names_scope_and_subresources() -> None:
    assert MDEP["spec"]["scope"] == "Namespaced"
    assert RPOL["spec"]["scope"] == "Cluster"
    assert MDEP["spec"]["names"]["shortNames"] == ["mdep"]
    assert RPOL["spec"]["names"]["shortNames"] == ["rollpol"]
    for crd in CRDS.values():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["spec"]["group"] == "modeldeploy.io"
        assert crd["spec"]["names"]["categories"] == ["modeldeploy", "ml"]
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.modeldeploy.io"
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert MDEP["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert "subresources" not in RPOL["spec"]["versions"][0]


def test_printer_columns() -> None:
    cols = {c["name"]: c for c in MDEP["spec"]["versions"][0]["additionalPrinterColumns"]}
    expected = {
        "Tier": ".spec.tier",
        "Model": ".spec.model.name",
        "Stable": ".status.stable.modelVersion",
        "Canary": ".status.canary.modelVersion",
        "Weight": ".status.canary.weight",
        "Step": ".status.canary.step",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Phase": ".status.phase",
        "Age": ".metadata.creationTimestamp",
    }
    for name, path in expected.items():
        assert cols[name]["jsonPath"] == path
    assert [c for c in cols if not cols[c].get("priority")] == [
        "Tier",
        "Model",
        "Stable",
        "Canary",
        "Weight",
        "Step",
        "Ready",
        "Age",
    ]
    # every column's path (but the metadata and the filter) exists in the schema
    schema = _schema(MDEP)
    for col in cols.values():
        path = col["jsonPath"]
        if path.startswith(".metadata") or "[" in path:
            continue
        node = schema
        for part in path.strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] == {"date": "string"}.get(col["type"], col["type"]), col


def test_rules_touch_only_bounded_values() -> None:
    """The API server estimates a rule's cost from maxLength/maxItems: every string or list a rule reads,
    and every list holding a node with rules, must be bounded, or the CRD is refused as too costly."""
    for crd in CRDS.values():
        for path, node in _nodes(_schema(crd)):
            rules = node.get("x-kubernetes-validations", [])
            for rule in rules:
                for field in set(re.findall(r"self\.(\w+)", rule["rule"])):
                    sub = node.get("properties", {}).get(field)
                    if sub is None:
                        continue
                    if sub["type"] == "string":
                        assert "maxLength" in sub, f"{path}.{field} read by {rule['rule']!r} has no maxLength"
                    if sub["type"] == "array":
                        assert "maxItems" in sub, f"{path}.{field} read by {rule['rule']!r} has no maxItems"
                if node["type"] == "array":
                    assert "maxItems" in node, path
            if node["type"] == "array" and _has_rules(node["items"]):
                assert "maxItems" in node, f"{path} holds items with rules but has no maxItems"


def _has_rules(node: dict[str, Any]) -> bool:
    return any(n.get("x-kubernetes-validations") for _, n in _nodes(node))


def _full_status() -> ModelDeploymentStatus:
    t = "2025-11-23T12:00:00Z"
    arm = ArmMeasurement(
        requests=1000,
        errors=2,
        client_errors=1,
        error_rate_percent=0.2,
        latency_p50_ms=3.5,
        latency_p99_ms=12.0,
        input_rejection_percent=0.1,
    )
    return ModelDeploymentStatus(
        observed_generation=3,
        phase="Progressing",
        conditions=[
            Condition(
                type=c, status="False", reason="Because", message="m", last_transition_time=t, observed_generation=3
            )
            for c in CONDITION_TYPES
        ],
        stable=StableStatus(
            revision="abc", model_version="6", sha256="a" * 64, replicas=2, ready_replicas=2, weight=90, promoted_at=t
        ),
        canary=CanaryStatus(
            revision="def",
            model_version="7",
            sha256="b" * 64,
            replicas=1,
            ready_replicas=1,
            weight=10,
            effective_weight=33,
            step=1,
            step_count=4,
            step_action="setWeight",
            step_started_at=t,
            started_at=t,
            last_progress_at=t,
            contract=ContractStatus(
                checked=True, compatible=False, differences=['input "x": datatype FP32 -> FP64'], checked_at=t
            ),
        ),
        analysis=AnalysisStatus(
            last_run_at=t,
            verdict="Pass",
            consecutive_failures=0,
            consecutive_inconclusive=1,
            first_failure_at=t,
            passing_since=t,
            passes=2,
            window="2m",
            arms={"stable": arm, "canary": arm},
            checks=[CheckResult(metric="latencyP99Ms", verdict="Pass", value=12, threshold=50, message="ok")],
            queries={"latency": "histogram_quantile(0.99, ...)"},
            message="Pass",
        ),
        last_known_good=RevisionRef(revision="xyz", model_version="5", sha256="c" * 64),
        rolled_back_revision=RevisionRef(revision="bad", model_version="4", sha256="d" * 64),
        retiring=[RetiringRevision(revision="xyz", model_version="5", scale_down_at=t)],
        history=[
            HistoryEntry(
                time=t,
                action="RolloutStarted",
                revision="def",
                model_version="7",
                author="me",
                reason="Why",
                message="m",
            )
        ],
        handled=HandledControls(approve="def", abort="1", retry="bad", promote_full="x"),
        endpoint="http://m.ml.svc:8080",
    )


def test_status_schema_keeps_everything_the_operator_writes() -> None:
    status_schema = _schema(MDEP)["properties"]["status"]
    wire = _full_status().model_dump(by_alias=True, mode="json")  # every field, None included
    wire = {k: v for k, v in wire.items() if v is not None}
    assert offline.prune(status_schema, wire) == wire
    assert offline.validate(status_schema, wire) == []
    # every property of every status model is in the schema
    for path, node in _nodes(status_schema):
        if node["type"] == "object" and "properties" in node:
            assert node["properties"] or path.endswith("{}"), path
    assert ModelDeploymentStatus.model_validate(offline.apply_defaults(status_schema, {})) == ModelDeploymentStatus()
