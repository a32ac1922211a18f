"""The model contract gate with the real operator and real runtime pods: a canary whose input is
wider than stable's gets no traffic and stalls with ContractChanged; allowing it lets it go on."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from e2e.installed import InstalledOperator
from onnx import TensorProto, helper, numpy_helper
from tests.runtime import models

from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster

WIDE = 8


def wide_classifier() -> bytes:
    """The classifier's names and datatypes, but an input of width 8 (stable's is 4)."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.normal(0, 1, (WIDE, models.CLASSES)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [models.INPUT, "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], [models.OUTPUT], axis=-1),
        ],
        "wide_classifier",
        [helper.make_tensor_value_info(models.INPUT, TensorProto.FLOAT, ["N", WIDE])],
        [helper.make_tensor_value_info(models.OUTPUT, TensorProto.FLOAT, ["N", models.CLASSES])],
        [w],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", models.OPSET)])
    m.ir_version = models.IR_VERSION
    onnx.checker.check_model(m)
    data: bytes = m.SerializeToString()
    return data


@pytest.fixture
def wide_model(local_cluster: ClusterHandle, k8s_namespace: str) -> Model:
    path = local_cluster.files_dir("test-models") / "wide-classifier.onnx"
    sha = models.write_model(path, wide_classifier())
    path.chmod(0o644)
    return Model("wide", local_cluster.model_uri(k8s_namespace, path), sha, path)


def canary_pods(mdep: Mdep, revision: str) -> list[dict[str, Any]]:
    return [p for p in mdep.pods() if p["metadata"]["labels"]["modeldeploy.io/revision"] == revision]


def test_incompatible_contract_is_blocked_until_allowed(
    local_cluster: ClusterHandle,
    operator: InstalledOperator,
    mdep: Mdep,
    onnx_models: dict[str, Model],
    wide_model: Model,
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    r1 = mdep.status()["stable"]["revision"]
    mdep.apply(wide_model, steps=steps)
    obj = mdep.wait_cond("Stalled", "True", "ContractChanged")
    st = obj["status"]
    r2 = st["canary"]["revision"]
    message = mdep.cond("Stalled")["message"]
    assert f'input "{models.INPUT}": shape [-1, 4] -> [-1, {WIDE}] (dimension 1: 4 -> {WIDE})' in message, message
    assert "allowContractChange" in message
    contract = st["canary"]["contract"]
    assert contract["checked"] is True and contract["compatible"] is False and len(contract["differences"]) == 1
    assert st["canary"]["effectiveWeight"] == 0 and st["stable"]["revision"] == r1
    assert local_cluster.kstatus(obj)[0] == "Failed"
    assert mdep.cond("Available")["status"] == "True"
    assert [h for h in st["history"] if h["reason"] == "ContractChanged"]
    events = local_cluster.get_json("events", "-n", mdep.namespace, "--field-selector", "involvedObject.name=clf")
    assert "ContractChanged" in {e["reason"] for e in events["items"]}
    # the canary's pod runs (it was read) but takes no traffic: out of the endpoint; stable serves
    pods = canary_pods(mdep, r2)
    assert pods and all(p["metadata"]["labels"].get("modeldeploy.io/serving") == "false" for p in pods)
    for _ in range(10):
        assert mdep.infer()["model_version"] == "1"
    # allowing the change lets the rollout go on, noted in history
    local_cluster.kubectl(
        "patch", "mdep", mdep.name, "-n", mdep.namespace, "--type", "merge",
        "-p", '{"spec":{"rollout":{"allowContractChange":true}}}',
    )  # fmt: skip
    obj = mdep.wait_cond("Paused", "True", "PauseStep")
    st = obj["status"]
    assert st["canary"]["revision"] == r2 and st["canary"]["effectiveWeight"] == 50
    assert st["canary"]["contract"]["allowed"] is True
    assert [h["action"] for h in st["history"]].count("ContractChangeAllowed") == 1
    wait_for(
        lambda: all(p["metadata"]["labels"].get("modeldeploy.io/serving") == "true" for p in canary_pods(mdep, r2)),
        timeout=30,
        what="canary pods back in rotation",
    )
