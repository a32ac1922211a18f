"""The model contract gate: the pure comparison, the planner tick by tick (compatible, incompatible
blocked, incompatible allowed, not yet known), and the edge's read over HTTP (httpx MockTransport)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modeldeploy.operator.contract import (
    ContractReading,
    compare_documents,
    differences,
    parse_metadata,
)
from modeldeploy.operator.modelmeta import read_contract
from modeldeploy.operator.rollout import effective_for, judging

from .test_planner import SHA_B, Sim, deploy, make_md


def meta(inputs: list[tuple[str, str, list[int]]], outputs: list[tuple[str, str, list[int]]]) -> dict[str, Any]:
    def tensors(items: list[tuple[str, str, list[int]]]) -> list[dict[str, Any]]:
        return [{"name": n, "datatype": d, "shape": s} for n, d, s in items]

    return {"name": "fraud", "versions": ["1"], "inputs": tensors(inputs), "outputs": tensors(outputs)}


STABLE = meta([("features", "FP32", [-1, 4])], [("probabilities", "FP32", [-1, 3])])


def diff(canary: dict[str, Any], stable: dict[str, Any] = STABLE) -> list[str]:
    return differences(parse_metadata(stable), parse_metadata(canary))


# ------------------------------------------------------------------------------------- comparison


def test_same_contract_is_compatible() -> None:
    assert diff(STABLE) == []


@pytest.mark.parametrize(
    ("canary", "expected"),
    [
        (
            meta([("features", "FP64", [-1, 4])], [("probabilities", "FP32", [-1, 3])]),
            ['input "features": datatype FP32 -> FP64'],
        ),
        (
            meta([("features", "FP32", [-1, 8])], [("probabilities", "FP32", [-1, 3])]),
            ['input "features": shape [-1, 4] -> [-1, 8] (dimension 1: 4 -> 8)'],
        ),
        (
            meta([("features", "FP32", [-1, 4, 1])], [("probabilities", "FP32", [-1, 3])]),
            ['input "features": shape [-1, 4] -> [-1, 4, 1] (rank 2 -> 3)'],
        ),
        (
            meta([("x", "FP32", [-1, 4])], [("probabilities", "FP32", [-1, 3])]),
            ['input "features" missing', 'input "x" added (every input is required)'],
        ),
        (
            meta([("features", "FP64", [-1, 4])], [("scores", "FP32", [-1, 3])]),
            ['input "features": datatype FP32 -> FP64', 'output "probabilities" missing'],
        ),
        (
            meta([("features", "FP32", [1, 4])], [("probabilities", "FP32", [-1, 3])]),
            ['input "features": shape [-1, 4] -> [1, 4] (dimension 0: -1 -> 1)'],
        ),
        (
            meta([("features", "FP32", [-1, 4])], [("probabilities", "FP32", [-1, 2])]),
            ['output "probabilities": shape [-1, 3] -> [-1, 2] (dimension 1: 3 -> 2)'],
        ),
    ],
)
def test_incompatible_changes_are_named(canary: dict[str, Any], expected: list[str]) -> None:
    assert diff(canary) == expected


def test_compatible_changes() -> None:
    fixed = meta([("features", "FP32", [1, 4])], [("probabilities", "FP32", [-1, 3])])
    # a fixed dimension that became dynamic; an extra output; an output's dynamic dim now fixed
    canary = meta(
        [("features", "FP32", [-1, 4])],
        [("label", "INT64", [-1]), ("probabilities", "FP32", [8, 3])],
    )
    assert diff(canary, stable=fixed) == []


def test_a_document_that_is_not_model_metadata_is_not_known() -> None:
    r = compare_documents("rev", STABLE, {"inputs": "nope", "outputs": []})
    assert r.unknown is not None and "the canary's model metadata" in r.unknown and not r.differences
    r = compare_documents("rev", {"error": "not found"}, STABLE)
    assert r.unknown is not None and "stable's" in r.unknown


# ---------------------------------------------------------------------------------------- planner


def canary_at_gate(**rollout: Any) -> tuple[Sim, str, str]:
    sim = Sim(make_md(steps=[{"setWeight": 25}, {"pause": {}}], **rollout))  # 1 canary pod beside 2
    old = deploy(sim)
    new = sim.set_model("2", SHA_B)
    p = sim.tick(settle=False)  # the canary's Deployment is created; no pod Ready yet
    ca = sim.status.canary
    assert ca is not None and ca.contract is None and ca.effective_weight == 0 and ca.replicas == 1
    assert p.serving == {old} and new in p.out_of_rotation  # its pods stay out of the endpoint
    assert "reading the model contract" in sim.cond("Progressing").message
    return sim, old, new


def test_compatible_contract_lets_the_canary_take_traffic() -> None:
    sim, old, new = canary_at_gate()
    p = sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.contract is not None and ca.contract.checked and ca.contract.compatible
    assert ca.step == 1 and ca.effective_weight == 33
    assert p.serving == {old, new}
    assert "ContractChecked" in sim.reasons()


INCOMPATIBLE = ('input "features": datatype FP32 -> FP64', 'output "probabilities" missing')


def test_incompatible_contract_is_blocked_with_the_differences() -> None:
    sim, old, new = canary_at_gate()
    sim.contracts[new] = ContractReading(new, differences=INCOMPATIBLE)
    p = sim.tick()
    st = sim.status
    assert st.canary is not None and st.canary.contract is not None and not st.canary.contract.compatible
    assert st.canary.effective_weight == 0 and st.canary.step == 0
    assert p.serving == {old} and new in p.out_of_rotation
    stalled = sim.cond("Stalled")
    assert (stalled.status, stalled.reason) == ("True", "ContractChanged")
    assert 'input "features": datatype FP32 -> FP64; output "probabilities" missing' in stalled.message
    assert "allowContractChange" in stalled.message
    assert sim.cond("Available").status == "True" and sim.cond("Ready").status == "False"
    assert st.history[-1].reason == "ContractChanged" and st.history[-1].action == "Stalled"
    assert sim.events[-1][:2] == ("Warning", "ContractChanged")
    # it stays blocked, recorded once, and the contract is not read again
    n = len(st.history)
    p = sim.tick(seconds=30)
    assert sim.read_contract() is None
    assert len(sim.status.history) == n and p.serving == {old}
    assert sim.cond("Stalled").reason == "ContractChanged"
    # allowing it lets the rollout go on, noted in history
    sim.set_spec(["rollout", "allowContractChange"], True)
    p = sim.tick()
    st = sim.status
    assert st.canary is not None and st.canary.step == 1 and st.canary.effective_weight == 33
    assert p.serving == {old, new}
    assert st.history[-1].action == "ContractChangeAllowed"
    assert "datatype FP32 -> FP64" in st.history[-1].message
    assert sim.cond("Stalled").status == "False"


def test_incompatible_contract_allowed_from_the_start_proceeds_and_is_noted() -> None:
    sim, old, new = canary_at_gate(allowContractChange=True)
    sim.contracts[new] = ContractReading(new, differences=INCOMPATIBLE)
    p = sim.tick()
    st = sim.status
    assert st.canary is not None and st.canary.step == 1 and p.serving == {old, new}
    assert st.canary.contract is not None and st.canary.contract.allowed
    assert [h.action for h in st.history].count("ContractChangeAllowed") == 1
    sim.tick(seconds=1)
    assert [h.action for h in sim.status.history].count("ContractChangeAllowed") == 1


def test_unknown_contract_waits_and_never_passes() -> None:
    sim, old, new = canary_at_gate()
    sim.contracts[new] = ContractReading(new, unknown="the canary pod at http://10.0.0.9:8080 did not answer")
    retries = []
    for _ in range(3):
        p = sim.tick(seconds=5)
        ca = sim.status.canary
        assert ca is not None and ca.contract is None and ca.effective_weight == 0 and ca.step == 0
        assert p.serving == {old} and p.requeue_after is not None
        retries.append(p.requeue_after)
        assert "did not answer" in sim.cond("Progressing").message
    # it reads again with a back-off (hole 9: it used to retry every 2 s forever)
    assert retries == sorted(retries) and retries[0] <= 10.0
    # within the progress deadline (60s) it keeps waiting; past it, it stalls like any pod wait
    sim.tick(seconds=60)
    assert sim.cond("Stalled").reason == "ProgressDeadlineExceeded"
    # once the pod answers, the check goes on
    del sim.contracts[new]
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.contract is not None and ca.contract.compatible


def test_first_revision_is_not_compared() -> None:
    sim = Sim(make_md(steps=[{"setWeight": 50}]))
    deploy(sim)
    st = sim.status
    assert st.stable is not None and not any(e[1] == "ContractChecked" for e in sim.events)


def test_analysis_waits_for_the_contract() -> None:
    analysis = {"interval": "5s", "window": "10s", "slo": {"latencyP99Ms": 50}}
    sim = Sim(make_md(steps=[{"setWeight": 50}, {"analysis": {}}], analysis=analysis))
    deploy(sim)
    new = sim.set_model("2", SHA_B)
    sim.tick(settle=False)
    assert not judging(sim.md, effective_for(sim.md.spec))
    assert sim.plans[-1].requeue_after != 0.0
    sim.tick()
    ca = sim.status.canary
    assert ca is not None and ca.revision == new and ca.contract is not None
    assert judging(sim.md, effective_for(sim.md.spec))


# ------------------------------------------------------------------------------------------ edge


def serve(answers: dict[str, Any]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.url.host}{request.url.path}"
        answer = answers.get(key)
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        if isinstance(answer, int):
            return httpx.Response(answer, json={"error": "no"})
        return httpx.Response(200, json=answer)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def read(http: httpx.AsyncClient, stable_model: str = "fraud", canary_model: str = "fraud") -> ContractReading:
    async def main() -> ContractReading:
        async with http:
            return await read_contract(
                http,
                "rev2",
                stable=("http://10.0.0.1:8080", stable_model),
                canary=("http://10.0.0.2:8080", canary_model),
            )

    return asyncio.run(main())


def test_edge_reads_both_pods_and_compares() -> None:
    wider = meta([("features", "FP32", [-1, 8])], [("probabilities", "FP32", [-1, 3])])
    http = serve({"10.0.0.1/v2/models/fraud": STABLE, "10.0.0.2/v2/models/fraud": wider})
    r = read(http)
    assert r.unknown is None and r.differences == ('input "features": shape [-1, 4] -> [-1, 8] (dimension 1: 4 -> 8)',)


def test_edge_unreachable_or_failing_pod_is_not_known() -> None:
    r = read(serve({"10.0.0.1/v2/models/fraud": STABLE}))
    assert r.unknown is not None and "canary pod at http://10.0.0.2:8080" in r.unknown
    r = read(serve({"10.0.0.1/v2/models/fraud": 503, "10.0.0.2/v2/models/fraud": STABLE}))
    assert r.unknown is not None and "stable pod" in r.unknown


def test_edge_renamed_model_is_a_difference() -> None:
    http = serve({"10.0.0.1/v2/models/fraud": STABLE, "10.0.0.2/v2/models/scorer": STABLE})
    r = read(http, canary_model="scorer")
    assert r.differences == ('model name "fraud" -> "scorer" (clients call /v2/models/<name>)',)


def test_contract_read_backs_off_from_2s_to_60s() -> None:
    """Issue 12 hole 9: an unanswered contract read is retried after 2 s, doubling to at most 60 s."""
    sim, _old, new = canary_at_gate(progressDeadline="10m")
    sim.contracts[new] = ContractReading(new, unknown="the canary pod did not answer")
    p = sim.tick()
    assert p.requeue_after == 2.0
    seen = []
    for _ in range(10):
        p = sim.tick(seconds=p.requeue_after or 0.0)
        seen.append(p.requeue_after)
    assert seen[:6] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and set(seen[6:]) == {60.0}
