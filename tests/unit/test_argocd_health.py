"""examples/argocd/health.lua in a real Lua 5.1 (lupa; Argo CD's gopher-lua is 5.1) on every row of
the README's status table, with conditions built by the operator's own conditions module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lupa  # the test extra: a real Lua 5.1, as Argo CD's gopher-lua
import pytest
import yaml

from modeldeploy.operator import conditions as cond

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "argocd" / "health.lua"
NOW = "2026-01-01T00:00:00Z"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the script as Argo CD does: `obj` global, a table with status and message back."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT.read_text())
    return {str(k): str(v) for k, v in result.items()}


def md(situation: cond.Situation | None, generation: int = 3, observed: int | None = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud-scorer", "namespace": "ml", "generation": generation},
        "spec": {},
    }
    if situation is not None:
        status: dict[str, Any] = {
            "conditions": [c.wire() for c in cond.compute([], situation, NOW, observed)],
        }
        if observed is not None:
            status["observedGeneration"] = observed
        obj["status"] = status
    return obj


STEADY = cond.Situation("Steady", "Serving", "Version 7 serves 100%.", True, "2/2 ready")
STEPPING = cond.Situation(
    "Progressing", "CanaryInProgress", "Canary 8 at step 2/5.", True, "2/2 ready", progress_message="step 2/5, 10%"
)
PAUSED = cond.Situation(
    "Paused", "Paused", "spec.paused is true.", True, "2/2 ready", paused=("SpecPaused", "spec.paused is true")
)
AWAITING = cond.Situation(
    "AwaitingApproval",
    "AwaitingApproval",
    "Waiting for approval.",
    True,
    "2/2 ready",
    awaiting_approval="kubectl annotate mdep/fraud-scorer modeldeploy.io/approve=abc",
)
ROLLED_BACK = cond.Situation(
    "RolledBack",
    "AnalysisFailed",
    "error rate 4.0% > 1% (canary 400/10000 requests, window 2m)",
    True,
    "stable serves",
    degraded=("RolledBack", "canary rolled back"),
    ready_reason="RolledBack",
)


def stalled(reason: str) -> cond.Situation:
    return cond.Situation("Stalled", reason, f"{reason}: details", False, "")


# Every row of the README's status table, plus what happens around it.
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("steady, stable serving", md(STEADY), "Healthy", "Serving: Version 7 serves 100%."),
    ("canary stepping or analysing", md(STEPPING), "Progressing", "CanaryInProgress: step 2/5, 10%"),
    ("paused", md(PAUSED), "Suspended", "SpecPaused: spec.paused is true"),
    ("awaiting approval", md(AWAITING), "Suspended", "ApprovalStep: kubectl annotate"),
    (
        "rolled back after a breach",
        md(ROLLED_BACK),
        "Degraded",
        "AnalysisFailed: error rate 4.0% > 1% (canary 400/10000 requests, window 2m)",
    ),
    ("invalid spec", md(stalled("InvalidSpec")), "Degraded", "InvalidSpec: InvalidSpec: details"),
    ("digest mismatch", md(stalled("DigestMismatch")), "Degraded", "DigestMismatch: DigestMismatch: details"),
    (
        "progress deadline",
        md(stalled("ProgressDeadlineExceeded")),
        "Degraded",
        "ProgressDeadlineExceeded: ProgressDeadlineExceeded: details",
    ),
    ("no status yet", md(None), "Progressing", "Waiting for the operator to report status"),
    ("new generation not observed", md(STEADY, 4, 3), "Progressing", "observe generation 4"),
    ("stalled, but for an older generation", md(stalled("InvalidSpec"), 5, 4), "Progressing", "generation 5"),
    ("status without observedGeneration", md(STEADY, 2, None), "Progressing", "generation 2"),
    ("first deploy", md(cond.Situation("Deploying", "Deploying", "Starting", False, "")), "Progressing", "Deploying"),
]


@pytest.mark.parametrize(("name", "obj", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_health(name: str, obj: dict[str, Any], status: str, message: str) -> None:
    hs = health(obj)
    assert hs["status"] == status, hs
    assert message in hs["message"], hs


README_ROWS = {
    "steady, stable serving": ["steady, stable serving"],
    "canary stepping or analysing": ["canary stepping or analysing"],
    "paused, awaiting approval": ["paused", "awaiting approval"],
    "rolled back after a breach": ["rolled back after a breach"],
    "invalid spec, digest mismatch, progress deadline": ["invalid spec", "digest mismatch", "progress deadline"],
}


def test_every_row_of_the_readme_status_table_is_covered() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| situation | Ready |") :].split("\n\n")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == list(README_ROWS)
    names = {c[0] for c in CASES}
    for cases in README_ROWS.values():
        assert set(cases) <= names


def test_conditions_only_ready_is_healthy_even_without_the_others() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Serving"}
    status: dict[str, Any] = {"observedGeneration": 1, "conditions": [ready]}
    obj = {"metadata": {"generation": 1}, "status": status}
    assert health(obj) == {"status": "Healthy", "message": "Serving"}
    status["conditions"] = []
    assert health(obj)["status"] == "Progressing"


def test_argocd_cm_snippet_in_the_readme_is_the_script() -> None:
    readme = (ROOT / "examples" / "argocd" / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    cm = yaml.safe_load(block)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"]["resource.customizations.health.modeldeploy.io_ModelDeployment"] == SCRIPT.read_text()


def test_application_syncs_the_chart_and_the_examples() -> None:
    apps = list(yaml.safe_load_all((ROOT / "examples" / "argocd" / "application.yaml").read_text()))
    assert [a["kind"] for a in apps] == ["Application", "Application", "Application"]
    chart, examples, overlay = apps
    assert (ROOT / chart["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert (ROOT / examples["spec"]["source"]["path"] / "minimal.yaml").exists()
    assert (ROOT / overlay["spec"]["source"]["path"] / "kustomization.yaml").exists()
    waves = [int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for a in apps]
    assert waves[0] < waves[1] < waves[2]  # CRDs, then the policies, then a model that needs its tier's policy
    for app in (examples, overlay):  # the pause action is not undone by selfHeal
        assert app["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/paused"]
        assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
