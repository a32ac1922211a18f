"""`kubectl modeldeploy`'s command layer with the API edge replaced: the exit codes a script relies on
(done, refused, timed out, ignored), and colour only on a terminal unless --no-color or NO_COLOR. The
real API edge, kubectl and a real terminal are in tests/operator/test_kubectl_plugin.py."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from modeldeploy.kubectl import cli, controls

CANARY = {"revision": "bbb222", "modelVersion": "8", "step": 1, "stepCount": 2, "stepAction": "approval"}
AWAITING: dict[str, Any] = {
    "metadata": {"name": "clf", "namespace": "ml", "generation": 2, "resourceVersion": "1"},
    "spec": {"model": {"name": "clf"}},
    "status": {
        "observedGeneration": 2,
        "phase": "AwaitingApproval",
        "canary": CANARY,
        "conditions": [
            {"type": "AwaitingApproval", "status": "True", "reason": "ApprovalStep", "lastTransitionTime": "x"}
        ],
        "history": [],
    },
}


class FakeKube:
    """The API edge: `get` returns what the operator would show after each patch (`react`)."""

    def __init__(self, obj: dict[str, Any], react: Any = None) -> None:
        self.obj = copy.deepcopy(obj)
        self.react = react
        self.patches: list[tuple[dict[str, Any], str]] = []

    def get(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def list(self, all_namespaces: bool) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.obj)]

    def patch(self, name: str, body: dict[str, Any], field_manager: str) -> dict[str, Any]:
        self.patches.append((body, field_manager))
        if self.react is not None:
            self.react(self.obj, body)
        return copy.deepcopy(self.obj)

    def whoami(self) -> str:
        return "alice"


def run(kube: FakeKube, *argv: str, tty: bool = False) -> tuple[int, str, str]:
    class Out(io.StringIO):
        def isatty(self) -> bool:
            return tty

    out, err = Out(), io.StringIO()
    args = cli.parser().parse_args(list(argv))
    code = cli.run_status(kube, args, out) if args.command == "status" else cli.run_control(kube, args, out, err)
    return code, out.getvalue(), err.getvalue()


def approved(obj: dict[str, Any], body: dict[str, Any]) -> None:
    value = body["metadata"]["annotations"][controls.APPROVE]
    obj["status"]["handled"] = {"approve": value}
    obj["status"]["history"].append(
        {"time": "2026-01-01T00:00:00Z", "action": "Approved", "revision": "bbb222", "author": "alice", "reason": "A"}
    )
    obj["status"]["phase"] = "Healthy"


def taken_not_acted(obj: dict[str, Any], body: dict[str, Any]) -> None:
    obj["status"]["handled"] = {"approve": body["metadata"]["annotations"][controls.APPROVE]}


def test_done_is_0_with_what_the_operator_did() -> None:
    kube = FakeKube(AWAITING, approved)
    code, out, _ = run(kube, "approve", "clf")
    assert code == cli.OK
    assert kube.patches == [
        (
            {"metadata": {"annotations": {controls.APPROVE: "bbb222", controls.APPROVE + "-by": "alice"}}},
            "kubectl-modeldeploy:alice",
        )
    ]
    assert "Approved bbb222 by alice" in out and "now: phase Healthy" in out


def test_refused_is_1_and_writes_nothing() -> None:
    kube = FakeKube(AWAITING)
    code, _, err = run(kube, "retry", "clf")
    assert code == cli.REFUSED and "no rolled-back revision" in err and kube.patches == []


def test_taken_in_but_not_acted_on_is_6() -> None:
    code, _, err = run(FakeKube(AWAITING, taken_not_acted), "approve", "clf")
    assert code == cli.IGNORED and "did not act" in err and "Approved expected" in err


def test_not_taken_in_within_the_timeout_is_4() -> None:
    code, _, err = run(FakeKube(AWAITING), "approve", "clf", "--timeout", "0.2")
    assert code == cli.TIMED_OUT and "within 0.2s" in err


def test_no_wait_returns_after_the_write() -> None:
    kube = FakeKube(AWAITING)
    code, out, _ = run(kube, "approve", "clf", "--no-wait")
    assert code == cli.OK and len(kube.patches) == 1 and "now:" not in out


@pytest.mark.parametrize(
    ("tty", "flags", "no_color", "coloured"),
    [(True, [], None, True), (True, ["--no-color"], None, False), (True, [], "1", False), (False, [], None, False)],
)
def test_colour_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool, flags: list[str], no_color: str | None, coloured: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    code, out, _ = run(FakeKube(AWAITING), "status", "clf", *flags, tty=tty)
    assert code == cli.OK and "Phase:      " in out
    assert ("\x1b[" in out) == coloured


def test_bad_usage_is_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["approve"], ["status", "x", "--interval", "0"], ["history", "x", "-o", "yaml"]):
        with pytest.raises(SystemExit) as e:
            cli.parser().parse_args(argv)
        assert e.value.code == cli.USAGE
    assert "must be more than 0 seconds" in capsys.readouterr().err
