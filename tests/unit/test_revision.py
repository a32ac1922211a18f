"""The revision hash: what makes pods differ, and nothing else."""

from __future__ import annotations

import re
from typing import Any

from modeldeploy.operator.api import ModelDeploymentSpec
from modeldeploy.operator.revision import REVISION_LENGTH, revision_of, runtime_image
from modeldeploy.runtime.contract import DEFAULT_IMAGE


def spec(**over: Any) -> ModelDeploymentSpec:
    base: dict[str, Any] = {
        "owner": "t",
        "model": {"name": "m", "version": "1", "uri": "file:///m.onnx", "sha256": "a" * 64},
    }
    base.update(over)
    return ModelDeploymentSpec.model_validate(base)


def test_short_deterministic_dns_safe() -> None:
    r = revision_of(spec())
    assert r == revision_of(spec())
    assert len(r) == REVISION_LENGTH and re.fullmatch(r"[0-9a-f]+", r)


def test_model_and_pod_shaping_serving_change_it() -> None:
    base = revision_of(spec())
    assert revision_of(spec(model={"name": "m", "version": "2", "uri": "file:///m.onnx", "sha256": "a" * 64})) != base
    assert revision_of(spec(model={"name": "m", "version": "1", "uri": "file:///m.onnx", "sha256": "b" * 64})) != base
    assert revision_of(spec(serving={"threads": 2})) != base
    assert revision_of(spec(serving={"resources": {"limits": {"memory": "1Gi"}}})) != base
    assert revision_of(spec(serving={"image": "example.com/runtime:2"})) != base


def test_the_default_image_is_part_of_it() -> None:
    assert runtime_image(spec()) == DEFAULT_IMAGE
    assert revision_of(spec()) == revision_of(spec(serving={"image": DEFAULT_IMAGE}))


def test_replicas_rollout_and_metadata_do_not() -> None:
    base = revision_of(spec())
    assert revision_of(spec(serving={"replicas": 5})) == base
    assert revision_of(spec(serving={"autoscaling": {"maxReplicas": 4}})) == base
    assert revision_of(spec(serving={"podDisruptionBudget": {"maxUnavailable": 1}})) == base
    assert revision_of(spec(rollout={"steps": [{"setWeight": 10}], "scaleDownDelay": "1m"})) == base
    assert revision_of(spec(tier=1, paused=True, documentation={"runbookUrl": "https://x"})) == base
