"""examples/argocd/actions/ in a real Lua 5.1 (lupa; Argo CD's gopher-lua is 5.1), as Argo CD runs resource
actions: `discovery.lua` with the object as `obj` returns the actions and whether each is disabled; an
action's `action.lua` returns the modified object, which Argo CD patches onto the live one. Only Argo CD's
safe part of `os` (date, time, clock, difftime) is given to the scripts. The annotations written are
checked with the operator's own reading of them."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import lupa.lua51 as lupa  # the test extra: a real Lua 5.1, as Argo CD's gopher-lua
import pytest
import yaml

from modeldeploy.operator import controls

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ROOT / "examples" / "argocd" / "actions"
NAMES = ["approve", "abort", "retry", "promote-full", "pause", "resume"]
NOW = "2026-01-01T00:00:00Z"


def to_py(v: Any) -> Any:
    """A Lua value as JSON-like Python: a table with keys 1..n is a list, any other table a dict."""
    if lupa.lua_type(v) == "table":
        items = dict(v.items())
        if items and all(isinstance(k, int) for k in items) and sorted(items) == list(range(1, len(items) + 1)):
            return [to_py(items[i]) for i in range(1, len(items) + 1)]
        return {str(k): to_py(x) for k, x in items.items()}
    return v


def run(script: Path, obj: dict[str, Any]) -> Any:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    safe_os = lua.table_from({"date": g.os.date, "time": g.os.time, "clock": g.os.clock, "difftime": g.os.difftime})
    g.os = safe_os  # what Argo CD's SafeOsLoader offers; io, os.execute and the rest are absent
    g.io = None
    g.obj = lua.table_from(obj, recursive=True)
    return to_py(lua.execute(script.read_text()))


def discover(obj: dict[str, Any]) -> dict[str, bool]:
    """Action name -> enabled."""
    return {name: not a["disabled"] for name, a in run(ACTIONS / "discovery.lua", obj).items()}


def act(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = run(ACTIONS / name / "action.lua", copy.deepcopy(obj))
    return out


def cond(ctype: str, status: str) -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": "R", "message": "m", "lastTransitionTime": NOW}


def md(
    status: dict[str, Any] | None, paused: bool = False, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": 3},
        "spec": {"owner": "team-fraud", "paused": paused, "model": {"name": "fraud", "version": "8"}},
    }
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if status is not None:
        obj["status"] = status
    return obj


CANARY = {"revision": "bbb222", "modelVersion": "8", "sha256": "1" * 64, "step": 1, "stepCount": 3}
STEADY = md({"phase": "Healthy", "conditions": [cond("Ready", "True")]})
AWAITING = md({"phase": "AwaitingApproval", "canary": CANARY, "conditions": [cond("AwaitingApproval", "True")]})
STEPPING = md({"phase": "Progressing", "canary": CANARY, "conditions": [cond("Reconciling", "True")]})
PAUSED = md({"phase": "Paused", "canary": CANARY, "conditions": [cond("Paused", "True")]}, paused=True)
ROLLED_BACK = md(
    {"phase": "RolledBack", "rolledBackRevision": {"revision": "bbb222", "modelVersion": "8", "sha256": "1" * 64}}
)
RETRIED = copy.deepcopy(ROLLED_BACK)
RETRIED["status"]["handled"] = {"retry": "bbb222"}


@pytest.mark.parametrize(
    ("name", "obj", "enabled"),
    [
        ("steady", STEADY, {"pause"}),
        ("no status yet", md(None), {"pause"}),
        ("awaiting approval", AWAITING, {"approve", "abort", "promote-full", "pause"}),
        ("stepping", STEPPING, {"abort", "promote-full", "pause"}),
        ("paused", PAUSED, {"abort", "promote-full", "resume"}),
        ("rolled back", ROLLED_BACK, {"retry", "pause"}),
        ("rolled back and retried once", RETRIED, {"pause"}),
    ],
)
def test_discovery_offers_each_action_only_where_it_means_something(
    name: str, obj: dict[str, Any], enabled: set[str]
) -> None:
    found = discover(obj)
    assert sorted(found) == sorted(NAMES)  # every action is listed, and every listed one has a script
    assert {n for n, on in found.items() if on} == enabled
    assert all((ACTIONS / n / "action.lua").exists() for n in found)


def changed_annotations(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """The annotations an action set; and nothing else of the object changed."""
    a = dict(after["metadata"].get("annotations") or {})
    b = dict(before["metadata"].get("annotations") or {})
    rest_after = {**after, "metadata": {k: v for k, v in after["metadata"].items() if k != "annotations"}}
    rest_before = {**before, "metadata": {k: v for k, v in before["metadata"].items() if k != "annotations"}}
    assert rest_after == rest_before
    return {k: v for k, v in a.items() if b.get(k) != v}


def test_approve_writes_the_canary_revision_the_operator_accepts() -> None:
    after = act("approve", AWAITING)
    assert changed_annotations(AWAITING, after) == {
        "modeldeploy.io/approve": "bbb222",
        "modeldeploy.io/approve-by": "argocd",
    }
    found = controls.read_controls(after["metadata"]["annotations"], None)
    assert found.approve is not None and found.approve.author == "argocd"
    assert controls.approval_names(found.approve.value, "bbb222")
    # a second approval step of the same revision: a new value that still names it
    second = copy.deepcopy(AWAITING)
    second["status"]["handled"] = {"approve": "bbb222"}
    second["metadata"]["annotations"] = {"modeldeploy.io/approve": "bbb222", "keep": "me"}
    after = act("approve", second)
    value = after["metadata"]["annotations"]["modeldeploy.io/approve"]
    assert value == "bbb222/step-2" and controls.approval_names(value, "bbb222")
    assert after["metadata"]["annotations"]["keep"] == "me"


@pytest.mark.parametrize("name", ["abort", "promote-full"])
def test_abort_and_promote_full_write_a_new_value_each_time(name: str) -> None:
    after = act(name, STEPPING)
    got = changed_annotations(STEPPING, after)
    assert set(got) == {f"modeldeploy.io/{name}", f"modeldeploy.io/{name}-by"}
    assert re.fullmatch(r"argocd \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[f"modeldeploy.io/{name}"])
    found = controls.read_controls(after["metadata"]["annotations"], None)
    control = found.abort if name == "abort" else found.promote_full
    assert control is not None and control.author == "argocd"


def test_retry_names_the_rolled_back_revision() -> None:
    after = act("retry", ROLLED_BACK)
    assert changed_annotations(ROLLED_BACK, after) == {
        "modeldeploy.io/retry": "bbb222",
        "modeldeploy.io/retry-by": "argocd",
    }


def test_pause_and_resume_set_spec_paused_and_nothing_else() -> None:
    paused = act("pause", STEPPING)
    assert paused["spec"]["paused"] is True
    assert {**paused, "spec": STEPPING["spec"]} == STEPPING
    resumed = act("resume", PAUSED)
    assert resumed["spec"]["paused"] is False
    assert {**resumed, "spec": PAUSED["spec"]} == PAUSED


@pytest.mark.parametrize(
    ("name", "obj", "message"),
    [
        ("approve", STEADY, "nothing to approve"),
        ("abort", STEADY, "nothing to abort"),
        ("promote-full", md(None), "nothing to promote"),
        ("retry", STEADY, "no rolled-back revision"),
    ],
)
def test_an_action_that_means_nothing_fails_with_a_message(name: str, obj: dict[str, Any], message: str) -> None:
    with pytest.raises(lupa.LuaError, match=message):
        act(name, obj)


def test_argocd_cm_snippet_in_the_readme_is_the_scripts() -> None:
    readme = (ROOT / "examples" / "argocd" / "README.md").read_text()
    blocks = [yaml.safe_load(b.split("```", 1)[0]) for b in readme.split("```yaml\n")[1:]]
    key = "resource.customizations.actions.modeldeploy.io_ModelDeployment"
    cm = next(b for b in blocks if isinstance(b, dict) and key in (b.get("data") or {}))
    assert cm["metadata"]["name"] == "argocd-cm"
    doc = yaml.safe_load(cm["data"][key])
    assert doc["discovery.lua"] == (ACTIONS / "discovery.lua").read_text()
    assert {d["name"]: d["action.lua"] for d in doc["definitions"]} == {
        n: (ACTIONS / n / "action.lua").read_text() for n in NAMES
    }
