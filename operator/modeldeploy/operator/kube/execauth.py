"""kubeconfig `exec` credential plugins (client.authentication.k8s.io v1 and v1beta1), as kubectl runs them.

The plugin (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`, ...) is run with the
kubeconfig's `args` and `env` added to ours, and `KUBERNETES_EXEC_INFO` describing the request
(never interactive: the operator has no terminal). It prints an `ExecCredential` whose `status`
holds a bearer `token`, or a `clientCertificateData` + `clientKeyData` pair, and optionally an
`expirationTimestamp`. The credential is cached until then (or for the process when none is
given); `ExecProvider.refresh` re-runs the plugin, which the client does once on a 401.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
RUN_TIMEOUT_S = 60.0


class ExecError(Exception):
    """The exec plugin is misconfigured, could not run, failed, or printed no usable credential."""


@dataclass(frozen=True)
class ExecConfig:
    """A kubeconfig user's `exec` stanza."""

    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    provide_cluster_info: bool = False
    install_hint: str = ""
    interactive_mode: str = "IfAvailable"
    cluster_info: Mapping[str, Any] = field(default_factory=dict)
    """The cluster as `KUBERNETES_EXEC_INFO` describes it when `provideClusterInfo` is true."""

    @classmethod
    def from_kubeconfig(cls, user_exec: Mapping[str, Any], base_dir: Path, cluster: Mapping[str, Any]) -> ExecConfig:
        api_version = str(user_exec.get("apiVersion") or "")
        if api_version not in API_VERSIONS:
            raise ExecError(
                f"exec plugin apiVersion {api_version!r} is not supported: use one of {', '.join(API_VERSIONS)}"
            )
        command = str(user_exec.get("command") or "")
        if not command:
            raise ExecError("exec plugin: `command` is required")
        if os.sep in command and not os.path.isabs(command):
            command = str((base_dir / command).resolve())  # kubectl: relative to the kubeconfig's folder
        mode = str(user_exec.get("interactiveMode") or "IfAvailable")
        if mode == "Always":
            raise ExecError(f"exec plugin {command}: interactiveMode Always needs a terminal; the operator has none")
        info = {
            k: v
            for k, v in {
                "server": cluster.get("server"),
                "tls-server-name": cluster.get("tls-server-name"),
                "insecure-skip-tls-verify": cluster.get("insecure-skip-tls-verify"),
                "certificate-authority-data": cluster.get("certificate-authority-data"),
                "proxy-url": cluster.get("proxy-url"),
                "config": next(
                    (
                        e.get("extension")
                        for e in cluster.get("extensions") or []
                        if e.get("name") == "client.authentication.k8s.io/exec"
                    ),
                    None,
                ),
            }.items()
            if v is not None
        }
        return cls(
            api_version=api_version,
            command=command,
            args=tuple(str(a) for a in user_exec.get("args") or []),
            env=tuple((str(e["name"]), str(e["value"])) for e in user_exec.get("env") or []),
            provide_cluster_info=bool(user_exec.get("provideClusterInfo")),
            install_hint=str(user_exec.get("installHint") or ""),
            interactive_mode=mode,
            cluster_info=info,
        )

    def exec_info(self) -> str:
        """The `KUBERNETES_EXEC_INFO` the plugin reads."""
        spec: dict[str, Any] = {"interactive": False}
        if self.provide_cluster_info:
            spec["cluster"] = dict(self.cluster_info)
        return json.dumps({"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec})


@dataclass(frozen=True)
class ExecCredential:
    """What the plugin printed: a token, or a client certificate and key (PEM); when it expires."""

    token: str | None = None
    client_certificate_data: str | None = None
    client_key_data: str | None = None
    expiration: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expiration is not None and now >= self.expiration


def parse_exec_credential(text: str, api_version: str) -> ExecCredential:
    """The `ExecCredential` a plugin printed on stdout; ExecError naming what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ExecError(f"the plugin's output is not JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
        raise ExecError("the plugin's output is not an ExecCredential")
    if doc.get("apiVersion") != api_version:
        raise ExecError(
            f"the plugin answered apiVersion {doc.get('apiVersion')!r}, the kubeconfig asked for {api_version!r}"
        )
    status = doc.get("status")
    if not isinstance(status, dict):
        raise ExecError("the ExecCredential has no status")
    token = status.get("token") or None
    cert = status.get("clientCertificateData") or None
    key = status.get("clientKeyData") or None
    if bool(cert) != bool(key):
        raise ExecError("the ExecCredential has only one of clientCertificateData and clientKeyData")
    if not token and not cert:
        raise ExecError("the ExecCredential has neither a token nor a client certificate")
    expiration = None
    if status.get("expirationTimestamp"):
        try:
            expiration = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
        except ValueError as e:
            raise ExecError(f"expirationTimestamp {status['expirationTimestamp']!r} is not RFC 3339") from e
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
    return ExecCredential(token=token, client_certificate_data=cert, client_key_data=key, expiration=expiration)


class ExecProvider:
    """Runs one plugin and caches its credential until it expires; thread-safe (the operator's client and
    kopf's login share one provider)."""

    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._current: ExecCredential | None = None
        self.runs = 0
        """How many times the plugin ran (tests, logs)."""

    def cached(self, now: datetime | None = None) -> ExecCredential | None:
        """The cached credential while it is valid; None when the plugin must run."""
        cur = self._current
        if cur is None or cur.expired(now or datetime.now(UTC)):
            return None
        return cur

    def get(self) -> ExecCredential:
        """The cached credential, or the plugin's fresh one (blocks while it runs)."""
        with self._lock:
            return self.cached() or self._run()

    def refresh(self, stale: ExecCredential | None = None) -> ExecCredential:
        """Re-run the plugin (after a 401), unless another caller already replaced `stale`."""
        with self._lock:
            if stale is not None and self._current is not None and self._current is not stale and self.cached():
                return self._current
            return self._run()

    def _run(self) -> ExecCredential:
        cfg = self.config
        env = {**os.environ, **dict(cfg.env), "KUBERNETES_EXEC_INFO": cfg.exec_info()}
        exe = cfg.command if os.sep in cfg.command else shutil.which(cfg.command, path=env.get("PATH"))
        if exe is None or not os.path.exists(exe):
            hint = f" ({cfg.install_hint.strip()})" if cfg.install_hint else ""
            raise ExecError(f"exec plugin {cfg.command!r} not found{hint}")
        try:
            proc = subprocess.run(
                [exe, *cfg.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ExecError(f"exec plugin {cfg.command!r} could not run: {e}") from e
        self.runs += 1
        if proc.returncode != 0:
            raise ExecError(f"exec plugin {cfg.command!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        self._current = parse_exec_credential(proc.stdout, cfg.api_version)
        return self._current
