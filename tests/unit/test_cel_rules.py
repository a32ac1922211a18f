"""Every cross-field rule, twice: its CEL text run by a real CEL engine and its pydantic validator, on one table.

A case is (rule, model, wire object, expected valid). The CEL side evaluates the rule wherever it
sits in the model's generated CRD schema (after the API server's defaulting); the pydantic side
validates the same object and must fail with the rule's message exactly when CEL says false.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from modeldeploy.operator import crdgen
from modeldeploy.operator.api import analysis as analysis_module
from modeldeploy.operator.api import policy as policy_module
from modeldeploy.operator.api import spec as spec_module
from modeldeploy.operator.api import status as status_module
from modeldeploy.operator.api.analysis import (
    INTERVAL_POSITIVE,
    METRIC_HAS_BOUND,
    METRIC_MIN_LE_MAX,
    METRICS_NEED_PROMETHEUS,
    PROVIDER_ONE_OF,
    WINDOW_GE_INTERVAL,
    Analysis,
    CustomMetric,
    Provider,
)
from modeldeploy.operator.api.base import CelRule
from modeldeploy.operator.api.policy import RolloutPolicySpec
from modeldeploy.operator.api.spec import (
    BUCKETS_INCREASING,
    MIN_LE_MAX_REPLICAS,
    REPLICAS_OR_AUTOSCALING,
    ROUTING_ONE_OF,
    SHA256_HEX,
    STEP_ONE_ACTION,
    URI_SCHEME,
    WEIGHTS_NOT_DECREASING,
    Autoscaling,
    ModelSpec,
    RolloutSpec,
    ServingSpec,
    Step,
    TrafficRouting,
)
from modeldeploy.operator.crd import offline

SHA = "a" * 64
MODEL = {"name": "m", "version": "1", "uri": "s3://bucket/m/1/model.onnx", "sha256": SHA}
METRIC = {"name": "x", "query": "up", "max": 1}
PROM = {"prometheus": {"address": "http://prometheus:9090"}}


class Case(NamedTuple):
    rule: CelRule
    model: type[BaseModel]
    wire: dict[str, Any]
    valid: bool


CASES = [
    Case(SHA256_HEX, ModelSpec, MODEL, True),
    Case(SHA256_HEX, ModelSpec, {**MODEL, "sha256": "A" * 64}, False),
    Case(SHA256_HEX, ModelSpec, {**MODEL, "sha256": "g" + "a" * 63}, False),
    Case(URI_SCHEME, ModelSpec, MODEL, True),
    Case(URI_SCHEME, ModelSpec, {**MODEL, "uri": "file:///models/m.onnx"}, True),
    Case(URI_SCHEME, ModelSpec, {**MODEL, "uri": "pvc://claim/m.onnx"}, True),
    Case(URI_SCHEME, ModelSpec, {**MODEL, "uri": "https://example.com/m.onnx"}, True),
    Case(URI_SCHEME, ModelSpec, {**MODEL, "uri": "http://example.com/m.onnx"}, False),
    Case(URI_SCHEME, ModelSpec, {**MODEL, "uri": "gs://bucket/m.onnx"}, False),
    Case(REPLICAS_OR_AUTOSCALING, ServingSpec, {"replicas": 2}, True),
    Case(REPLICAS_OR_AUTOSCALING, ServingSpec, {"autoscaling": {"maxReplicas": 3}}, True),
    Case(REPLICAS_OR_AUTOSCALING, ServingSpec, {}, True),
    Case(REPLICAS_OR_AUTOSCALING, ServingSpec, {"replicas": 2, "autoscaling": {"maxReplicas": 3}}, False),
    Case(BUCKETS_INCREASING, ServingSpec, {}, True),
    Case(BUCKETS_INCREASING, ServingSpec, {"latencyBucketsMs": [10, 20, 40]}, True),
    Case(BUCKETS_INCREASING, ServingSpec, {"latencyBucketsMs": [float(i + 1) for i in range(64)]}, True),
    Case(BUCKETS_INCREASING, ServingSpec, {"latencyBucketsMs": [10, 10]}, False),
    Case(BUCKETS_INCREASING, ServingSpec, {"latencyBucketsMs": [20, 10]}, False),
    Case(BUCKETS_INCREASING, ServingSpec, {"latencyBucketsMs": [0, 10]}, False),
    Case(MIN_LE_MAX_REPLICAS, Autoscaling, {"minReplicas": 2, "maxReplicas": 2}, True),
    Case(MIN_LE_MAX_REPLICAS, Autoscaling, {"maxReplicas": 1}, True),  # minReplicas defaults to 1
    Case(MIN_LE_MAX_REPLICAS, Autoscaling, {"minReplicas": 3, "maxReplicas": 2}, False),
    Case(STEP_ONE_ACTION, Step, {"setWeight": 10}, True),
    Case(STEP_ONE_ACTION, Step, {"setWeight": 0}, True),
    Case(STEP_ONE_ACTION, Step, {"pause": {}}, True),
    Case(STEP_ONE_ACTION, Step, {"approval": {}}, True),
    Case(STEP_ONE_ACTION, Step, {"shadow": {}}, True),
    Case(STEP_ONE_ACTION, Step, {"analysis": {}}, True),
    Case(STEP_ONE_ACTION, Step, {}, False),
    Case(STEP_ONE_ACTION, Step, {"setWeight": 10, "pause": {"duration": "1m"}}, False),
    Case(WEIGHTS_NOT_DECREASING, RolloutSpec, {"steps": []}, True),
    Case(WEIGHTS_NOT_DECREASING, RolloutSpec, {"steps": [{"setWeight": 10}]}, True),
    Case(
        WEIGHTS_NOT_DECREASING,
        RolloutSpec,
        {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 10}, {"approval": {}}, {"setWeight": 50}]},
        True,
    ),
    Case(WEIGHTS_NOT_DECREASING, RolloutSpec, {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 10}]}, False),
    Case(
        WEIGHTS_NOT_DECREASING,
        RolloutSpec,
        {"steps": [{"setWeight": w} for w in range(32)]},  # maxItems steps, all increasing
        True,
    ),
    Case(
        WEIGHTS_NOT_DECREASING,
        RolloutSpec,
        {"steps": [{"setWeight": w} for w in range(31)] + [{"setWeight": 0}]},  # the last pair decreases
        False,
    ),
    Case(WEIGHTS_NOT_DECREASING, RolloutPolicySpec, {"defaultSteps": [{"setWeight": 5}, {"setWeight": 25}]}, True),
    Case(WEIGHTS_NOT_DECREASING, RolloutPolicySpec, {"defaultSteps": [{"setWeight": 25}, {"setWeight": 5}]}, False),
    Case(ROUTING_ONE_OF, TrafficRouting, {"replicaRatio": {}}, True),
    Case(ROUTING_ONE_OF, TrafficRouting, {"gatewayAPI": {"httpRoute": "r"}}, True),
    Case(ROUTING_ONE_OF, TrafficRouting, {}, False),
    Case(ROUTING_ONE_OF, TrafficRouting, {"replicaRatio": {}, "gatewayAPI": {"httpRoute": "r"}}, False),
    Case(PROVIDER_ONE_OF, Provider, {"pods": {}}, True),
    Case(PROVIDER_ONE_OF, Provider, PROM, True),
    Case(PROVIDER_ONE_OF, Provider, {}, False),
    Case(PROVIDER_ONE_OF, Provider, {"pods": {}, **PROM}, False),
    Case(WINDOW_GE_INTERVAL, Analysis, {}, True),
    Case(WINDOW_GE_INTERVAL, Analysis, {"interval": "1m", "window": "60s"}, True),
    Case(WINDOW_GE_INTERVAL, Analysis, {"interval": "30s", "window": "1h30m"}, True),
    Case(WINDOW_GE_INTERVAL, Analysis, {"interval": "1m", "window": "59s"}, False),
    Case(WINDOW_GE_INTERVAL, Analysis, {"interval": "1m30s", "window": "1m"}, False),
    Case(INTERVAL_POSITIVE, Analysis, {"interval": "500ms", "window": "1s"}, True),
    Case(INTERVAL_POSITIVE, Analysis, {"interval": "0s", "window": "1m"}, False),
    Case(METRICS_NEED_PROMETHEUS, Analysis, {}, True),
    Case(METRICS_NEED_PROMETHEUS, Analysis, {"metrics": [METRIC], "provider": PROM}, True),
    Case(METRICS_NEED_PROMETHEUS, Analysis, {"metrics": [METRIC]}, False),
    Case(
        METRICS_NEED_PROMETHEUS,
        Analysis,
        {"metrics": [METRIC], "provider": {"pods": {}}},
        False,
    ),
    Case(METRIC_HAS_BOUND, CustomMetric, {"name": "x", "query": "up", "min": 0}, True),
    Case(METRIC_HAS_BOUND, CustomMetric, {"name": "x", "query": "up", "max": 0.5}, True),
    Case(METRIC_HAS_BOUND, CustomMetric, {"name": "x", "query": "up"}, False),
    Case(METRIC_MIN_LE_MAX, CustomMetric, {"name": "x", "query": "up", "min": 0.5, "max": 0.5}, True),
    Case(METRIC_MIN_LE_MAX, CustomMetric, {"name": "x", "query": "up", "min": 0, "max": 1}, True),
    Case(METRIC_MIN_LE_MAX, CustomMetric, {"name": "x", "query": "up", "min": 1, "max": 0.5}, False),
]


def _case_id(case: Case) -> str:
    name = next(n for m in _RULE_MODULES for n, v in vars(m).items() if v is case.rule)
    return f"{name}-{'ok' if case.valid else 'bad'}"


_RULE_MODULES = (spec_module, analysis_module, policy_module, status_module)


def all_rules() -> dict[str, CelRule]:
    """Every CelRule constant the API modules declare."""
    return {n: v for m in _RULE_MODULES for n, v in vars(m).items() if isinstance(v, CelRule)}


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_cel_and_pydantic_agree(case: Case) -> None:
    schema = crdgen.openapi_schema(case.model)
    defaulted = offline.apply_defaults(schema, case.wire)
    assert offline.schema_errors(schema, defaulted) == [], "the case must be valid apart from the rule under test"

    results = [r for r in offline.evaluate_rules(schema, defaulted) if r.rule == case.rule.rule]
    assert results, f"rule not found in the schema of {case.model.__name__}"
    assert all(r.passed for r in results) is case.valid, results

    try:
        case.model.model_validate(case.wire)
    except ValidationError as e:
        messages = [err["msg"] for err in e.errors()]
        assert not case.valid, f"pydantic refused a case CEL accepts: {messages}"
        assert f"Value error, {case.rule.message}" in messages, messages
    else:
        assert case.valid, "pydantic accepted a case CEL refuses"


def test_every_rule_has_an_accepted_and_a_rejected_case() -> None:
    for name, rule in all_rules().items():
        outcomes = {c.valid for c in CASES if c.rule is rule}
        assert outcomes == {True, False}, f"{name} needs an accepted and a rejected case, has {outcomes}"


def test_every_rule_is_in_the_generated_crds_and_nothing_else_is() -> None:
    in_crds: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            in_crds.update(r["rule"] for r in node.get("x-kubernetes-validations", []))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for crd in crdgen.crds().values():
        walk(crd)
    assert in_crds == {r.rule for r in all_rules().values()}


def test_every_rule_compiles() -> None:
    for name, rule in all_rules().items():
        assert cel.compile(rule.rule) is not None, name


# --------------------------------------------------------------- the list rules, on generated step lists

_STEP: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.integers(0, 100).map(lambda w: {"setWeight": w}),
    st.just({"pause": {}}),
    st.just({"approval": {}}),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_STEP, max_size=32))
def test_weights_rule_twins_agree_on_any_step_list(steps: list[dict[str, Any]]) -> None:
    schema = crdgen.openapi_schema(RolloutSpec)
    (result,) = [r for r in offline.evaluate_rules(schema, {"steps": steps}) if r.rule == WEIGHTS_NOT_DECREASING.rule]
    try:
        RolloutSpec.model_validate({"steps": steps})
    except ValidationError:
        assert not result.passed
    else:
        assert result.passed


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from(["setWeight", "pause", "approval", "shadow", "analysis"])))
def test_step_rule_twins_agree_on_any_combination(actions: set[str]) -> None:
    wire: dict[str, Any] = {a: (10 if a == "setWeight" else {}) for a in actions}
    schema = crdgen.openapi_schema(Step)
    (result,) = [r for r in offline.evaluate_rules(schema, wire) if r.rule == STEP_ONE_ACTION.rule]
    assert result.passed is (len(actions) == 1)
    try:
        Step.model_validate(wire)
    except ValidationError:
        assert not result.passed
    else:
        assert result.passed
