"""Who the client is and where the API server is: a kubeconfig context (token, token file, client
certificate, exec plugin) or the pod's ServiceAccount; the same `Credentials` serve the operator's
client and kopf's login."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .execauth import ExecConfig, ExecCredential, ExecProvider

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _data_file(data: bytes, suffix: str) -> str:
    f = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)  # noqa: SIM115 - lives as long as the process
    with f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)
    return f.name


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    namespace: str | None = None
    exec: ExecProvider | None = field(default=None, compare=False)
    _exec_files: dict[int, tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def exec_credential(self) -> ExecCredential | None:
        """The exec plugin's current credential (running it when none is cached or it expired)."""
        return None if self.exec is None else self.exec.get()

    def bearer(self) -> str | None:
        """The bearer token to send now: re-read from a token file (projected tokens rotate), the exec
        plugin's (cached until it expires), or the kubeconfig's."""
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        cred = self.exec_credential()
        if cred is not None:
            return cred.token
        return self.token

    def client_cert(self) -> tuple[str, str] | None:
        """(certificate file, key file): the kubeconfig's, or the exec plugin's current pair written to
        private temporary files."""
        if self.cert_file and self.key_file:
            return self.cert_file, self.key_file
        cred = self.exec_credential()
        if cred is None or not cred.client_certificate_data or not cred.client_key_data:
            return None
        key = id(cred)
        if key not in self._exec_files:
            for old in self._exec_files.values():
                for path in old:
                    Path(path).unlink(missing_ok=True)
            self._exec_files.clear()
            self._exec_files[key] = (
                _data_file(cred.client_certificate_data.encode(), ".crt"),
                _data_file(cred.client_key_data.encode(), ".key"),
            )
        return self._exec_files[key]

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        pair = self.client_cert()
        if pair is not None:
            ctx.load_cert_chain(*pair)
        return ctx


def from_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """Credentials of a kubeconfig's (current) context: token, token file, client certificate or exec plugin."""
    path = Path(path)
    cfg: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    ctx_name = context or cfg.get("current-context")
    ctxs = {c["name"]: c.get("context") or {} for c in cfg.get("contexts") or []}
    if ctx_name not in ctxs:
        raise ValueError(f"{path}: context {ctx_name!r} not found")
    ctx = ctxs[ctx_name]
    cluster = next(c.get("cluster") or {} for c in cfg.get("clusters") or [] if c["name"] == ctx.get("cluster"))
    user = next((u.get("user") or {} for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {})
    if "auth-provider" in user:
        raise ValueError(
            f"{path}: auth-provider credentials were removed from Kubernetes; use the provider's exec plugin"
        )

    def rel(p: str | None) -> str | None:
        return None if p is None else str((path.parent / p).resolve())

    ca = rel(cluster.get("certificate-authority"))
    if cluster.get("certificate-authority-data"):
        ca = _data_file(base64.b64decode(cluster["certificate-authority-data"]), ".crt")
    cert = rel(user.get("client-certificate"))
    if user.get("client-certificate-data"):
        cert = _data_file(base64.b64decode(user["client-certificate-data"]), ".crt")
    key = rel(user.get("client-key"))
    if user.get("client-key-data"):
        key = _data_file(base64.b64decode(user["client-key-data"]), ".key")
    provider = None
    if user.get("exec"):
        provider = ExecProvider(ExecConfig.from_kubeconfig(user["exec"], path.parent, cluster))
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=ca,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        cert_file=cert,
        key_file=key,
        namespace=ctx.get("namespace"),
        exec=provider,
    )


def in_cluster() -> Credentials:
    """The pod's ServiceAccount credentials."""
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    ns_file = SA_DIR / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=str(SA_DIR / "ca.crt"),
        token_file=str(SA_DIR / "token"),
        namespace=ns_file.read_text().strip() if ns_file.exists() else None,
    )


def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """`--kubeconfig`, else $KUBECONFIG, else in-cluster, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if path:
        return from_kubeconfig(path)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SA_DIR / "token").exists():
        return in_cluster()
    return from_kubeconfig(Path.home() / ".kube" / "config")
