"""The API models' own behaviour: wire form, durations, helpers, strictness."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.operator.api import (
    ModelDeployment,
    ModelDeploymentSpec,
    RolloutPolicy,
    ServingSpec,
    Step,
    format_duration,
    parse_duration,
)
from modeldeploy.operator.api.spec import GatewayAPIRouting, TrafficRouting

SPEC: dict[str, Any] = {
    "owner": "team",
    "model": {"name": "m", "version": "1", "uri": "file:///m.onnx", "sha256": "0" * 64},
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1.5h", 5400), ("1m30s", 90), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "1d", "-1s", "1 m", "m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (3661, "1h1m1s")])
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_camel_case_on_the_wire_snake_case_in_python() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {**SPEC, "rollout": {"steps": [{"setWeight": 10}], "trafficRouting": {"gatewayAPI": {"httpRoute": "r"}}}}
    )
    assert spec.rollout.steps is not None and spec.rollout.steps[0].set_weight == 10
    assert spec.rollout.traffic_routing is not None and spec.rollout.traffic_routing.gateway_api is not None
    wire = spec.wire()
    assert wire["rollout"]["trafficRouting"] == {"gatewayAPI": {"httpRoute": "r"}}
    assert "documentation" not in wire  # unset optional fields are left out
    assert ModelDeploymentSpec.model_validate(wire) == spec
    assert TrafficRouting(gateway_api=GatewayAPIRouting(http_route="r")).wire() == {"gatewayAPI": {"httpRoute": "r"}}


def test_unknown_fields_are_refused_and_models_are_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ModelDeploymentSpec.model_validate({**SPEC, "replicas": 2})
    spec = ModelDeploymentSpec.model_validate(SPEC)
    with pytest.raises(ValidationError):
        spec.tier = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("wire", "action"),
    [
        ({"setWeight": 0}, "setWeight"),
        ({"pause": {}}, "pause"),
        ({"approval": {}}, "approval"),
        ({"shadow": {}}, "shadow"),
        ({"analysis": {}}, "analysis"),
    ],
)
def test_step_action(wire: dict[str, Any], action: str) -> None:
    assert Step.model_validate(wire).action == action


@pytest.mark.parametrize(
    ("serving", "replicas"),
    [({}, 1), ({"replicas": 0}, 0), ({"replicas": 3}, 3), ({"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}, 2)],
)
def test_desired_replicas(serving: dict[str, Any], replicas: int) -> None:
    assert ServingSpec.model_validate(serving).desired_replicas == replicas


def test_whole_objects_from_the_api_server() -> None:
    obj = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": "ml", "generation": 2, "resourceVersion": "7", "managedFields": []},
        "spec": SPEC,
        "status": {"observedGeneration": 1, "conditions": []},
    }
    md = ModelDeployment.from_wire(obj)
    assert (md.metadata.name, md.metadata.generation, md.metadata.resource_version) == ("m", 2, "7")
    assert md.status is not None and md.status.observed_generation == 1
    pol = RolloutPolicy.from_wire({"kind": "RolloutPolicy", "metadata": {"name": "p"}, "spec": {"tier": 1}})
    assert pol.spec.tier == 1 and pol.spec.max_step_weight == 100


def test_defaults() -> None:
    spec = ModelDeploymentSpec.model_validate(SPEC)
    assert spec.tier == 3 and not spec.paused
    assert spec.rollout.steps is None and spec.rollout.analysis is None
    assert spec.rollout.progress_deadline is None and spec.rollout.scale_down_delay == "30s"
