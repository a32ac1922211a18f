"""kubeconfig exec credential plugins: a fake plugin (a small Python script printing an ExecCredential)
run by the operator's client and by kopf's login, with its env, args and KUBERNETES_EXEC_INFO; cached
until its expiry; re-run once on a 401. The API server here is an httpx mock transport (a stand-in);
tests/operator/test_kube_exec_cluster.py runs the same plugin against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modeldeploy.operator.controller import wiring
from modeldeploy.operator.kube import (
    Conflict,
    ExecConfig,
    ExecError,
    Invalid,
    Kube,
    KubeError,
    NotFound,
    ServerError,
    Unauthorized,
    error_for,
    from_kubeconfig,
    parse_exec_credential,
)

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"

#: Prints an ExecCredential: token `<PREFIX><n>` on its n-th run (counted in $COUNT_FILE), or $TOKEN from
#: run $GOOD_FROM on, expiring $EXPIRES_IN seconds from now (never when unset); copies its argv and
#: environment to $SEEN_FILE.
PLUGIN = r"""#!PYTHON
import json, os, sys
from datetime import datetime, timedelta, timezone
count_file = os.environ["COUNT_FILE"]
n = int(open(count_file).read() or 0) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(n))
with open(os.environ["SEEN_FILE"], "w") as f:
    json.dump({"argv": sys.argv[1:], "info": json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "null")),
               "extra": os.environ.get("EXTRA")}, f)
good = os.environ.get("TOKEN") and n >= int(os.environ.get("GOOD_FROM", "1"))
status = {"token": os.environ["TOKEN"] if good else os.environ.get("PREFIX", "tok-") + str(n)}
if os.environ.get("EXPIRES_IN"):
    at = datetime.now(timezone.utc) + timedelta(seconds=float(os.environ["EXPIRES_IN"]))
    status["expirationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": os.environ["API_VERSION"], "kind": "ExecCredential", "status": status}))
"""


def write_plugin(d: Path) -> Path:
    path = d / "bin" / "fake-auth-plugin"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PLUGIN.replace("PYTHON", sys.executable, 1))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def kubeconfig(
    d: Path,
    server: str,
    env: dict[str, str],
    api_version: str = V1,
    command: str = "./bin/fake-auth-plugin",
    ca_file: str | None = None,
) -> Path:
    exec_env = {"COUNT_FILE": str(d / "count"), "SEEN_FILE": str(d / "seen.json"), "API_VERSION": api_version, **env}
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [
            {
                "name": "k",
                "cluster": {"server": server, "certificate-authority": ca_file}
                if ca_file
                else {"server": server, "insecure-skip-tls-verify": True},
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ml"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": api_version,
                        "command": command,
                        "args": ["--cluster", "k"],
                        "env": [{"name": k, "value": v} for k, v in exec_env.items()],
                        "provideClusterInfo": True,
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    path = d / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def runs(d: Path) -> int:
    return int((d / "count").read_text()) if (d / "count").exists() else 0


# ------------------------------------------------------------------------------------------ parsing


def test_parse_token_with_expiry_and_certificate_pair() -> None:
    c = parse_exec_credential(
        json.dumps(
            {
                "apiVersion": V1,
                "kind": "ExecCredential",
                "status": {"token": "t", "expirationTimestamp": "2030-01-02T03:04:05Z"},
            }
        ),
        V1,
    )
    assert c.token == "t" and c.expiration == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    pair = {"clientCertificateData": "-----BEGIN CERT", "clientKeyData": "-----BEGIN KEY"}
    c = parse_exec_credential(json.dumps({"apiVersion": V1BETA1, "kind": "ExecCredential", "status": pair}), V1BETA1)
    assert (c.token, c.client_certificate_data, c.expiration) == (None, "-----BEGIN CERT", None)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ("not json", "not JSON"),
        ({"apiVersion": V1, "kind": "Other", "status": {"token": "t"}}, "not an ExecCredential"),
        ({"apiVersion": V1BETA1, "kind": "ExecCredential", "status": {"token": "t"}}, "asked for"),
        ({"apiVersion": V1, "kind": "ExecCredential"}, "no status"),
        ({"apiVersion": V1, "kind": "ExecCredential", "status": {}}, "neither a token"),
        ({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientKeyData": "k"}}, "only one of"),
        (
            {"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "t", "expirationTimestamp": "soon"}},
            "RFC 3339",
        ),
    ],
)
def test_parse_refuses_what_kubectl_refuses(doc: Any, says: str) -> None:
    with pytest.raises(ExecError, match=says):
        parse_exec_credential(doc if isinstance(doc, str) else json.dumps(doc), V1)


def test_exec_config_refuses_v1alpha1_and_interactive_always(tmp_path: Path) -> None:
    with pytest.raises(ExecError, match="not supported"):
        ExecConfig.from_kubeconfig(
            {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, tmp_path, {}
        )
    with pytest.raises(ExecError, match="needs a terminal"):
        ExecConfig.from_kubeconfig({"apiVersion": V1, "command": "x", "interactiveMode": "Always"}, tmp_path, {})


def test_error_tree() -> None:
    assert isinstance(error_for(404, "m"), NotFound)
    assert isinstance(error_for(409, "m"), Conflict)
    assert isinstance(error_for(422, "m"), Invalid)
    assert isinstance(error_for(503, "m"), ServerError)
    assert type(error_for(418, "m")) is KubeError
    assert all(isinstance(error_for(s, "m"), KubeError) for s in (400, 401, 403, 404, 409, 410, 422, 429, 500))


# ------------------------------------------------------------------------------------- the plugin run


def test_plugin_runs_with_args_env_and_exec_info_and_is_cached_until_it_expires(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    creds = from_kubeconfig(kubeconfig(tmp_path, "https://kube.test", {"EXTRA": "x", "EXPIRES_IN": "3600"}))
    assert creds.bearer() == "tok-1"
    assert creds.bearer() == "tok-1" and runs(tmp_path) == 1  # cached
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"] == ["--cluster", "k"] and seen["extra"] == "x"
    assert seen["info"]["kind"] == "ExecCredential" and seen["info"]["spec"]["interactive"] is False
    assert seen["info"]["spec"]["cluster"]["server"] == "https://kube.test"  # provideClusterInfo

    expired = from_kubeconfig(kubeconfig(tmp_path, "https://kube.test", {"EXPIRES_IN": "-5"}))
    assert expired.bearer() == "tok-2"
    assert expired.bearer() == "tok-3"  # expired on arrival: run again


def test_a_missing_plugin_names_itself_and_its_install_hint(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "https://kube.test", {}, command="no-such-auth-plugin")
    cfg = yaml.safe_load(path.read_text())
    cfg["users"][0]["user"]["exec"]["installHint"] = "install it with: pip install no-such"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ExecError, match=r"no-such-auth-plugin.*pip install no-such"):
        from_kubeconfig(path).bearer()


def test_client_reruns_the_plugin_once_on_a_401(tmp_path: Path) -> None:
    """The server (a stand-in) accepts only the plugin's second token: the first is 'revoked'."""
    write_plugin(tmp_path)
    creds = from_kubeconfig(kubeconfig(tmp_path, "https://kube.test", {"EXPIRES_IN": "3600"}))
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != "Bearer tok-2":
            return httpx.Response(401, json={"message": "Unauthorized"})
        return httpx.Response(200, json={"items": [{"metadata": {"name": "p"}}]})

    async def main() -> list[dict[str, Any]]:
        k = Kube(creds)
        k.http = httpx.AsyncClient(base_url=creds.server, transport=httpx.MockTransport(server))
        try:
            return await k.list_objects("v1", "pods", "ml", {"a": "b"})
        finally:
            await k.aclose()

    assert asyncio.run(main()) == [{"metadata": {"name": "p"}}]
    assert seen == ["Bearer tok-1", "Bearer tok-2"] and runs(tmp_path) == 2


def test_a_401_after_the_rerun_is_unauthorized(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    creds = from_kubeconfig(kubeconfig(tmp_path, "https://kube.test", {}))

    async def main() -> None:
        k = Kube(creds)
        k.http = httpx.AsyncClient(
            base_url=creds.server, transport=httpx.MockTransport(lambda r: httpx.Response(401, json={}))
        )
        try:
            await k.list_policies()
        finally:
            await k.aclose()

    with pytest.raises(Unauthorized):
        asyncio.run(main())
    assert runs(tmp_path) == 2


def test_kopf_login_gets_the_plugins_token_and_expiry_and_a_relogin_reruns_it(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    creds = from_kubeconfig(kubeconfig(tmp_path, "https://kube.test", {"EXPIRES_IN": "3600"}))
    state = wiring.State(creds)
    info = asyncio.run(wiring.connection_info(state))
    assert info.token == "tok-1" and info.default_namespace == "ml"
    assert info.expiration is not None and info.expiration - datetime.now(UTC) > timedelta(minutes=59)
    # kopf logs in again only when the credential expired or the server answered 401: run the plugin again
    again = asyncio.run(wiring.connection_info(state))
    assert again.token == "tok-2" and runs(tmp_path) == 2
    assert creds.bearer() == "tok-2"  # the operator's own client shares it


def test_plugin_client_certificate_reaches_tls_and_kopf(tmp_path: Path) -> None:
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=exec-user"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    plugin = tmp_path / "cert-plugin"
    body = {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "status": {"clientCertificateData": crt.read_text(), "clientKeyData": key.read_text()},
    }
    plugin.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(body))})\n")
    plugin.chmod(0o755)
    path = kubeconfig(tmp_path, "https://kube.test", {}, command=str(plugin))
    creds = from_kubeconfig(path)
    pair = creds.client_cert()
    assert pair is not None and Path(pair[0]).read_text() == crt.read_text()
    assert stat.S_IMODE(os.stat(pair[1]).st_mode) == 0o600
    creds.ssl_context()  # loads the pair
    info = asyncio.run(wiring.connection_info(wiring.State(creds)))
    assert info.certificate_data == crt.read_text() and info.token is None
