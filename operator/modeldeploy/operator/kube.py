"""The Kubernetes edge: credentials, server-side apply, scale, status, Events, pod labels (httpx, async).

One field manager (`modeldeploy`), force for our own objects; status through the status
subresource as an RFC 7386 merge patch computed from the status read; no strategic merge patches.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from .api.base import API_VERSION
from .api.resources import MODELDEPLOYMENT_KIND, MODELDEPLOYMENT_PLURAL, ROLLOUTPOLICY_PLURAL
from .manifests import FIELD_MANAGER, HTTPROUTE_API_VERSION, HTTPROUTE_PLURAL

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_RESOURCES = {
    ("apps/v1", "Deployment"): ("apis/apps/v1", "deployments"),
    ("v1", "Service"): ("api/v1", "services"),
    ("v1", "ServiceAccount"): ("api/v1", "serviceaccounts"),
    ("v1", "Pod"): ("api/v1", "pods"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): ("apis/policy/v1", "poddisruptionbudgets"),
    (HTTPROUTE_API_VERSION, "HTTPRoute"): (f"apis/{HTTPROUTE_API_VERSION}", HTTPROUTE_PLURAL),
}


class KubeError(Exception):
    """An API call failed; the message carries the status code and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


# ------------------------------------------------------------------------------------ credentials


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

    def bearer(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()  # re-read: projected tokens rotate
        return self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def _data_file(data: str, suffix: str) -> str:
    f = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)  # noqa: SIM115 - lives as long as the process
    with f:
        f.write(base64.b64decode(data))
    return f.name


def from_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """Credentials of a kubeconfig's (current) context: token, token file or client certificate."""
    path = Path(path)
    cfg: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    ctx_name = context or cfg.get("current-context")
    ctxs = {c["name"]: c.get("context") or {} for c in cfg.get("contexts") or []}
    if ctx_name not in ctxs:
        raise ValueError(f"{path}: context {ctx_name!r} not found")
    ctx = ctxs[ctx_name]
    cluster = next(c.get("cluster") or {} for c in cfg.get("clusters") or [] if c["name"] == ctx.get("cluster"))
    user = next((u.get("user") or {} for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {})
    if "exec" in user or "auth-provider" in user:
        raise ValueError(f"{path}: exec and auth-provider credentials are not supported; use a token or certificate")

    def rel(p: str | None) -> str | None:
        return None if p is None else str((path.parent / p).resolve())

    ca = rel(cluster.get("certificate-authority"))
    if cluster.get("certificate-authority-data"):
        ca = _data_file(cluster["certificate-authority-data"], ".crt")
    cert = rel(user.get("client-certificate"))
    if user.get("client-certificate-data"):
        cert = _data_file(user["client-certificate-data"], ".crt")
    key = rel(user.get("client-key"))
    if user.get("client-key-data"):
        key = _data_file(user["client-key-data"], ".key")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=ca,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        cert_file=cert,
        key_file=key,
        namespace=ctx.get("namespace"),
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


class _Bearer(httpx.Auth):
    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.creds.bearer()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


# ------------------------------------------------------------------------------------ merge patch


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (null removes a key; lists are replaced)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value) if isinstance(value, dict) else value
    return patch


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------ client


def _group_path(api_version: str) -> str:
    return f"api/{api_version}" if "/" not in api_version else f"apis/{api_version}"


class Kube:
    """The few API calls the operator makes."""

    def __init__(self, creds: Credentials, timeout: float = 15.0) -> None:
        self.creds = creds
        self.http = httpx.AsyncClient(
            base_url=creds.server,
            verify=creds.ssl_context(),
            auth=_Bearer(creds),
            timeout=timeout,
            trust_env=False,
            headers={"User-Agent": "modeldeploy-operator"},
        )
        self.instance = socket.gethostname()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        allow_404: bool = False,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        r = await self.http.request(method, "/" + path, content=content, headers=headers, params=params)
        if r.status_code == 404 and allow_404:
            return None
        if r.status_code >= 400:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            raise KubeError(r.status_code, f"{method} /{path}: {message}")
        result: dict[str, Any] = r.json() if r.content else {}
        return result

    @staticmethod
    def path_of(obj: dict[str, Any]) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, plural = _RESOURCES[(api_version, kind)]
        md = obj["metadata"]
        return f"{group}/namespaces/{md['namespace']}/{plural}/{md['name']}"

    # --- ModelDeployments and policies
    def md_path(self, namespace: str, name: str) -> str:
        return f"{_group_path(API_VERSION)}/namespaces/{namespace}/{MODELDEPLOYMENT_PLURAL}/{name}"

    async def get_md(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", self.md_path(namespace, name), allow_404=True)

    async def list_policies(self) -> list[dict[str, Any]]:
        out = await self._call("GET", f"{_group_path(API_VERSION)}/{ROLLOUTPOLICY_PLURAL}", allow_404=True)
        return list((out or {}).get("items") or [])

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the status subresource (the operator's only write to a ModelDeployment)."""
        return await self._call(
            "PATCH",
            self.md_path(namespace, name) + "/status",
            body={"status": patch},
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
            allow_404=True,
        )

    # --- children
    async def list_objects(
        self, api_version: str, plural: str, namespace: str, selector: dict[str, str]
    ) -> list[dict[str, Any]]:
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        out = await self._call(
            "GET", f"{_group_path(api_version)}/namespaces/{namespace}/{plural}", params={"labelSelector": sel}
        )
        return list((out or {}).get("items") or [])

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply under the one field manager, forcing conflicts on our own objects."""
        return await self._call(
            "PATCH",
            self.path_of(obj),
            body=obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(
            "PATCH",
            f"apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
            allow_404=True,
        )

    async def delete_deployment(self, namespace: str, name: str) -> None:
        await self._call(
            "DELETE",
            f"apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            body={"propagationPolicy": "Background"},
            allow_404=True,
        )

    async def label_pod(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        await self._call(
            "PATCH",
            f"api/v1/namespaces/{namespace}/pods/{name}",
            body={"metadata": {"labels": labels}},
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
            allow_404=True,
        )

    async def post_event(
        self, md: dict[str, Any], type_: str, reason: str, message: str, action: str = "Reconcile"
    ) -> None:
        """A core/v1 Event about the ModelDeployment."""
        meta = md["metadata"]
        ns = meta["namespace"]
        ts = now_rfc3339()
        micro = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": MODELDEPLOYMENT_KIND,
                "name": meta["name"],
                "namespace": ns,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "action": action,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": "modeldeploy.io/operator",
            "reportingInstance": self.instance[:128],
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "eventTime": micro,
            "count": 1,
        }
        await self._call("POST", f"api/v1/namespaces/{ns}/events", body=event)
