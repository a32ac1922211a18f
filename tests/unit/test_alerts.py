"""Alert rules and the Grafana dashboard: promtool unit tests pass, every rule and every panel query
parses, and they name only metrics that the runtime contract and the operator's metrics module define."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.localcluster.paths import prometheus_bin_dir
from modeldeploy.operator import metrics as operator_metrics
from modeldeploy.runtime import contract

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "modeldeploy" / "files" / "alerts.rules.yaml"
RULE_TESTS = ROOT / "monitoring" / "alerts.test.yaml"
DASHBOARD = ROOT / "charts" / "modeldeploy" / "files" / "dashboards" / "modeldeploy.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def promtool() -> str:
    built = prometheus_bin_dir() / "promtool"
    path = str(built) if built.exists() else shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool not found ({built}): bash hack/cluster/build-node.sh builds it (make install does)")
    return path


def known_metrics() -> set[str]:
    """Series names the runtime (contract.METRIC_*) and the operator (metrics.REGISTRY) export."""
    bases = {v for k, v in vars(contract).items() if k.startswith("METRIC_") and isinstance(v, str)}
    bases |= {family.name for family in operator_metrics.REGISTRY.collect()}
    return {b + s for b in bases for s in SUFFIXES}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bmodeldeploy_[a-z0-9_]+", expr))


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_unit_tests_pass() -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_file_is_valid() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_unit_tested_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {a["alertname"] for t in tests for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert {r["alert"] for r in rules()} == fired


def test_rules_name_only_exported_metrics() -> None:
    known = known_metrics()
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']}: unknown {sorted(names - known)}"


def test_alerts_have_severity_summary_and_description() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


# ------------------------------------------------------------------------------------ dashboard


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), *[a-z_]+\)", var["query"]["query"])
            assert inner, var["name"]
            out.append((f"variable {var['name']}", inner.group(1)))
    return out


def test_dashboard_is_sound() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for wanted in ("request rate", "error rate", "p50", "p99", "canary weight", "rollback", "decisions"):
        assert wanted in titles, wanted
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "modeldeployment", "revision"} <= variables


def test_dashboard_queries_name_only_exported_metrics() -> None:
    known = known_metrics()
    for title, expr in panel_queries():
        names = metric_names(expr)
        assert names and names <= known, f"{title}: {sorted(names - known)}"


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule that promtool parses."""
    substitutions = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
    records = []
    for i, (_, query) in enumerate(panel_queries()):
        expr = query
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        records.append({"record": f"dashboard:query:{i}", "expr": re.sub(r"\$[a-z_]+", ".*", expr)})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    out = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
