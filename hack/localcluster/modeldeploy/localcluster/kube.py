"""The admin identity of the local cluster (server, bearer token, CA) and an httpx client for it."""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml


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
    def from_kubeconfig(cls, kubeconfig: Path, data_dir: Path) -> Access:
        """The current context's server, CA and user (bearer token or client certificate) of a
        kubeconfig; `*-data` fields are written to files in `data_dir`."""
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u.get("user") or {} for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {})
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)

        def file_of(key: str) -> str:
            src = cluster if key == "certificate-authority" else user
            if src.get(f"{key}-data"):
                out = data_dir / key
                out.write_bytes(base64.b64decode(src[f"{key}-data"]))
                out.chmod(0o600)
                return str(out)
            value = src.get(key) or ""
            return str((kubeconfig.parent / value).resolve()) if value else ""

        return cls(
            server=cluster["server"],
            token=user.get("token") or "",
            ca_file=file_of("certificate-authority"),
            cert_file=file_of("client-certificate"),
            key_file=file_of("client-key"),
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
