"""The admin identity of the local cluster (server, bearer token, CA) and an httpx client for it."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from modeldeploy.operator import kube as operator_kube


@dataclass(frozen=True)
class Access:
    """How to reach and log in to the API server (written by the launcher as access.json)."""

    server: str
    token: str
    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Access:
        d = json.loads(Path(path).read_text())
        return cls(server=d["server"], token=d["token"], ca_file=d["ca_file"])

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> Access:
        """The current context's server, CA and user (bearer token or client certificate), read by
        the operator's own kubeconfig reader."""
        creds = operator_kube.from_kubeconfig(kubeconfig)
        return cls(
            server=creds.server,
            token=creds.bearer() or "",
            ca_file=creds.ca_file or "",
            cert_file=creds.cert_file or "",
            key_file=creds.key_file or "",
        )

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"server": self.server, "token": self.token, "ca_file": self.ca_file}))
        path.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.server,
            verify=self.ssl_context(),
            headers=self.headers(),
            timeout=timeout,
            trust_env=False,
        )
