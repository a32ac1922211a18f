"""`kubectl modeldeploy` against the local cluster: run by the real kubectl (plugin discovery on PATH),
with a kubeconfig whose context authenticates through an exec credential plugin, driving a real
operator through every command; `status --watch` under a real terminal (tmux) and off one."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e.installed import InstalledOperator

from modeldeploy.localcluster.paths import kubectl as kubectl_path
from modeldeploy.localcluster.pytest_plugin import ClusterHandle, wait_for

from .conftest import Mdep, Model

pytestmark = pytest.mark.cluster

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}, {"pause": {}}, {"approval": {}}]
ANALYSIS = {
    "interval": "1s",
    "window": "5s",
    "minRequests": 5,
    "failureLimit": 100,
    "inconclusiveLimit": 1000,
    "slo": {"errorRatePercent": 5, "latencyP99Ms": 250},
    "compareToStable": {"maxErrorRateDelta": 1},
    "provider": {"pods": {}},
}


@pytest.fixture
def kubeconfig(local_cluster: ClusterHandle, k8s_namespace: str, tmp_path: Path) -> Path:
    """The cluster's kubeconfig rewritten as a user's: the current context points at a dead server, the
    `test` context names the test namespace and authenticates with an exec credential plugin."""
    src = yaml.safe_load(local_cluster.kubeconfig.read_text())
    token = src["users"][0]["user"]["token"]
    cred = tmp_path / "credential.sh"
    cred.write_text(
        "#!/bin/sh\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
        f' "status": {{"token": "{token}"}}}}\'\n'
    )
    cred.chmod(cred.stat().st_mode | stat.S_IXUSR)
    cluster = src["clusters"][0]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster, {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [
            {
                "name": "exec-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(cred),
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [
            {"name": "test", "context": {"cluster": cluster["name"], "user": "exec-user", "namespace": k8s_namespace}},
            {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "exec-user"}},
        ],
        "current-context": "elsewhere",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def env_for(local_cluster: ClusterHandle, kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = local_cluster.python_env(KUBECONFIG=str(kubeconfig), **extra)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # where pip put kubectl-modeldeploy
    env.pop("NO_COLOR", None)
    return env


def plugin(
    local_cluster: ClusterHandle, kubeconfig: Path, *args: str, context: str | None = "test"
) -> subprocess.CompletedProcess[str]:
    """`kubectl modeldeploy ARGS --context test`, run by the real kubectl."""
    return subprocess.run(
        [kubectl_path(), "modeldeploy", *args, *(["--context", context] if context else [])],
        capture_output=True,
        text=True,
        env=env_for(local_cluster, kubeconfig),
        timeout=120,
        check=False,
    )


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "Traceback" not in p.stderr
    return p.stdout


def send(local_cluster: ClusterHandle, mdep: Mdep, n: int) -> None:
    ip = local_cluster.get_json("service", mdep.name, "-n", mdep.namespace)["spec"]["clusterIP"]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
    with httpx.Client(trust_env=False, timeout=10) as c:
        for _ in range(n):  # a new connection per request: the Service balances connections
            c.post(f"http://{ip}:8080/v2/models/classifier/infer", json=body, headers={"Connection": "close"})


def whoami(local_cluster: ClusterHandle, kubeconfig: Path) -> str:
    out = subprocess.run(
        [kubectl_path(), "auth", "whoami", "--context", "test", "-o", "json"],
        capture_output=True,
        text=True,
        env=env_for(local_cluster, kubeconfig),
        check=True,
        timeout=30,
    ).stdout
    return str(json.loads(out)["status"]["userInfo"]["username"])


def test_every_command_through_a_rollout(
    local_cluster: ClusterHandle,
    operator: InstalledOperator,
    mdep: Mdep,
    onnx_models: dict[str, Model],
    kubeconfig: Path,
) -> None:
    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return plugin(local_cluster, kubeconfig, *a)

    user = whoami(local_cluster, kubeconfig)
    assert (
        "modeldeploy"
        in subprocess.run(
            [kubectl_path(), "plugin", "list"],
            check=False,
            capture_output=True,
            text=True,
            env=env_for(local_cluster, kubeconfig),
        ).stdout
    )
    mdep.apply(onnx_models["1"], steps=STEPS, analysis=ANALYSIS)
    mdep.wait_cond("Ready", "True")
    r1 = mdep.status()["stable"]["revision"]
    listing = ok(run("list")).splitlines()
    assert listing[0].split()[:3] == ["NAME", "PHASE", "STABLE"] and listing[1].split()[:3] == ["clf", "Healthy", "1"]
    assert mdep.namespace in ok(run("list", "-A"))
    # nothing to approve, abort, retry or promote yet: refused (1), nothing written
    for refused in (
        ["approve", "clf"],
        ["abort", "clf"],
        ["retry", "clf"],
        ["promote", "clf"],
        ["promote", "clf", "--full"],
    ):
        p = run(*refused)
        assert p.returncode == 1 and "phase Healthy" in p.stderr, (refused, p.stderr)
    assert not [k for k in mdep.get()["metadata"].get("annotations", {}) if k.startswith("modeldeploy.io/")]

    # a canary at its first approval step, with traffic on both arms and a judged check
    mdep.apply(onnx_models["2"], steps=STEPS, analysis=ANALYSIS)
    obj = mdep.wait_cond("AwaitingApproval", "True")
    r2 = obj["status"]["canary"]["revision"]

    def counted() -> bool:
        # the canary's pods join the Service a moment after the contract check: keep sending until they count
        send(local_cluster, mdep, 20)
        arms = (mdep.status().get("analysis") or {}).get("arms") or {}
        return bool(arms.get("canary", {}).get("requests", 0) >= 5 and arms.get("stable", {}).get("requests", 0) >= 5)

    wait_for(counted, timeout=60, what="an analysis check that counted requests on both arms")
    st = mdep.status()
    text = ok(run("status", "clf"))
    a = st["analysis"]
    arms = a["arms"]
    for expected in [
        f"Name:       {mdep.namespace}/clf",
        "Phase:      AwaitingApproval",
        f"stable  version 1  revision {r1}",
        f"canary  version 2  revision {r2}",
        "replicas 1/1 ready",
        "weight 50% requested, 50% effective",
        "step 2/4 (approval)",
        "contract compatible with stable",
        f"last verdict {a['verdict']}",
        f"over {a['window']}",
        f"canary  requests {int(arms['canary']['requests'])}",
        f"stable  requests {int(arms['stable']['requests'])}",
        "AwaitingApproval True   ApprovalStep",
        "Reconciling      True",
        "RolloutStarted",
        "Next:       kubectl modeldeploy approve clf",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    for check in a["checks"]:  # every check with its value and limit
        assert f"{check['metric']} " in text and check["verdict"] in text
        if check.get("threshold") is not None:
            assert f"(limit {check.get('comparator', '<=')} " in text
    assert "\x1b" not in text  # piped: no escape codes

    # approve: the annotation with the revision and its author, and the operator's Approved entry
    out = ok(run("approve", "clf"))
    assert f"approved revision {r2} at step 2/4 (approval) (as {user})" in out
    assert f"Approved {r2} v2 by {user}" in out and "now: phase Paused, step 3/4 (pause)" in out
    ann = mdep.get()["metadata"]["annotations"]
    assert ann["modeldeploy.io/approve"] == r2 and ann["modeldeploy.io/approve-by"] == user
    # promote (not --full) passes the untimed pause: a pause and a resume, both recorded
    out = ok(run("promote", "clf"))
    assert "Paused" in out and "Resumed" in out and "now: phase AwaitingApproval, step 4/4 (approval)" in out
    # pause and resume write spec.paused; the field manager names the user
    out = ok(run("pause", "clf"))
    assert f"spec.paused set by kubectl-modeldeploy:{user}" in out and mdep.get()["spec"]["paused"] is True
    assert "already paused" in ok(run("pause", "clf"))
    out = ok(run("resume", "clf"))
    assert "Resumed" in out and "now: phase AwaitingApproval" in out
    assert "not paused" in ok(run("resume", "clf"))
    # abort with a reason
    out = ok(run("abort", "clf", "--reason", "INC-7"))
    assert f"Aborted {r2} v2 by {user}" in out and "now: phase RolledBack, no rollout in progress" in out
    assert mdep.get()["metadata"]["annotations"]["modeldeploy.io/abort"] == "INC-7"
    assert f"RolledBack  version 2  revision {r2}" in ok(run("status", "clf"))
    # retry: the same revision rolls out again from its first step
    out = ok(run("retry", "clf"))
    assert f"Retried {r2} v2 by {user}" in out
    mdep.wait_cond("AwaitingApproval", "True")
    p = run("retry", "clf")
    assert p.returncode == 1 and "no rolled-back revision" in p.stderr
    # promote --full: every remaining step skipped, promoted once Ready
    out = ok(run("promote", "clf", "--full", "--no-wait"))  # written, not waited for: the test waits
    assert f"asked to promote revision {r2} fully" in out and "now:" not in out
    mdep.wait_cond("Ready", "True")
    assert mdep.status()["stable"]["revision"] == r2

    # history: the audit trail, every control with its author
    entries = json.loads(ok(run("history", "clf", "-o", "json")))
    by_action = {h["action"]: h for h in entries}
    for action in ("Approved", "Aborted", "Retried", "PromotedFull"):
        assert by_action[action]["author"] == user, by_action[action]
    for action in ("Paused", "Resumed"):
        assert by_action[action]["author"] == f"kubectl-modeldeploy:{user}"
    table = ok(run("history", "clf")).splitlines()
    assert table[0].split()[:4] == ["AGE", "TIME", "ACTION", "REVISION"] and len(table) == 1 + len(entries)
    assert any(" PromotedFull " in row and user in row for row in table)

    # errors a script can tell apart, never a traceback
    p = run("status", "nope")
    assert p.returncode == 3 and "not found" in p.stderr and "Traceback" not in p.stderr
    p = plugin(local_cluster, kubeconfig, "status", "clf", context=None)  # the current context: a dead server
    assert p.returncode == 5 and "cannot reach the API server" in p.stderr and "Traceback" not in p.stderr
    p = plugin(local_cluster, kubeconfig, "status", "clf", context="missing")
    assert p.returncode == 5 and "kubeconfig" in p.stderr
    p = run("frobnicate")
    assert p.returncode == 2 and "invalid choice" in p.stderr
    # -n wins over the context's namespace
    p = run("status", "clf", "-n", "default")
    assert p.returncode == 3 and "default/clf" in p.stderr


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A tmux server of our own (socket in tmp_path) and a session name; killed afterwards."""
    assert shutil.which("tmux"), "tmux is installed by hack/install-system-deps.sh"
    sock = str(tmp_path / "tmux.sock")
    name = f"w{uuid.uuid4().hex[:8]}"
    yield sock, name
    subprocess.run(["tmux", "-S", sock, "kill-server"], check=False, capture_output=True)


def test_status_watch_redraws_in_place_under_tmux_and_plainly_off_a_terminal(
    local_cluster: ClusterHandle,
    operator: InstalledOperator,
    mdep: Mdep,
    onnx_models: dict[str, Model],
    kubeconfig: Path,
    tmux: tuple[str, str],
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}]
    mdep.apply(onnx_models["1"], steps=steps)
    mdep.wait_cond("Ready", "True")
    sock, session = tmux
    width, height = 90, 50
    env = env_for(local_cluster, kubeconfig)
    script = Path(kubeconfig).parent / "watch.sh"
    script.write_text(
        "#!/bin/sh\n"
        + "".join(f"export {k}='{v}'\n" for k, v in env.items() if k in ("PATH", "KUBECONFIG", "HOME"))
        + "export TERM=xterm-256color\n"
        + f"exec {kubectl_path()} modeldeploy status clf --watch --context test --interval 0.5\n"
    )
    script.chmod(0o755)
    subprocess.run(
        ["tmux", "-S", sock, "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), str(script)],
        check=True,
        env={**env, "TERM": "xterm-256color"},
        timeout=30,
    )

    def screen(escapes: bool = False) -> str:
        args = ["tmux", "-S", sock, "capture-pane", "-p", "-t", session] + (["-e"] if escapes else [])
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=10).stdout

    def showing(*texts: str) -> str | None:
        s = screen()
        return s if all(t in s for t in texts) else None

    def sound(s: str) -> None:
        """One frame, drawn from the top line, nothing wrapped, nothing left of an earlier frame."""
        lines = s.rstrip("\n").split("\n")
        assert lines[0].startswith("Name:       "), s
        assert s.count("Name:") == 1 and s.count("Revisions:") == 1, s
        assert all(len(line) < width for line in lines), s

    s = wait_for(lambda: showing("Phase:      Healthy", "stable  version 1"), timeout=30, what="the first frame")
    sound(s)
    mdep.apply(onnx_models["2"], steps=steps)
    s = wait_for(
        lambda: showing("Phase:      AwaitingApproval", "canary  version 2", "step 2/2 (approval)"),
        timeout=90,
        what="the canary redrawn in place",
    )
    sound(s)
    assert "\x1b[33mAwaitingApproval" in screen(escapes=True)  # colour on a terminal
    ok(plugin(local_cluster, kubeconfig, "approve", "clf"))
    s = wait_for(
        lambda: showing("Phase:      Healthy", "stable  version 2", "Approved"), timeout=90, what="the promotion"
    )
    sound(s)
    # the canary's lines and the analysis of the taller frame before are gone, not left below
    assert "canary  version 2" not in s and "Next:" not in s, s

    # off a terminal: a frame printed after the last, only when the object changed, no escape codes
    wait_for(lambda: not mdep.status().get("retiring"), timeout=30, what="the replaced revision scaled down")
    p = subprocess.run(
        [kubectl_path(), "modeldeploy", "status", "clf", "--watch", "--timeout", "2", "--context", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0 and "\x1b" not in p.stdout, p.stdout
    frames = ["Name:       " + f for f in p.stdout.split("Name:       ")[1:]]
    assert frames and all("Phase:      Healthy" in f and "Revisions:" in f for f in frames), p.stdout
    assert len(frames) <= 2, p.stdout  # a settled object: one frame (two if the operator wrote meanwhile)
