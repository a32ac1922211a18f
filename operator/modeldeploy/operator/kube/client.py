"""The few API calls the operator makes (httpx, async), raising the typed errors of `errors`.

One field manager (`modeldeploy`), force for our own objects; status through the status
subresource as an RFC 7386 merge patch computed from the status read; no strategic merge patches.
An exec plugin's credential is fetched per request from its cache and re-fetched once on a 401.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from typing import Any

import httpx

from .. import metrics
from ..api.base import API_VERSION
from ..api.resources import MODELDEPLOYMENT_KIND, MODELDEPLOYMENT_PLURAL, ROLLOUTPOLICY_PLURAL
from ..manifests import FIELD_MANAGER, HTTPROUTE_API_VERSION, HTTPROUTE_PLURAL
from .config import Credentials
from .errors import NotFound, error_for

_RESOURCES = {
    ("apps/v1", "Deployment"): ("apis/apps/v1", "deployments"),
    ("v1", "Service"): ("api/v1", "services"),
    ("v1", "ServiceAccount"): ("api/v1", "serviceaccounts"),
    ("v1", "Pod"): ("api/v1", "pods"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): ("apis/policy/v1", "poddisruptionbudgets"),
    (HTTPROUTE_API_VERSION, "HTTPRoute"): (f"apis/{HTTPROUTE_API_VERSION}", HTTPROUTE_PLURAL),
}


def group_path(api_version: str) -> str:
    return f"api/{api_version}" if "/" not in api_version else f"apis/{api_version}"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def request_kind(method: str, path: str) -> tuple[str, str]:
    """(verb, resource) of a request as the API server's audit names them: `list` for a GET of a
    collection, `update` for a PUT; the resource with its subresource (`modeldeployments/status`)."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts and parts.index("namespaces") + 2 < len(parts):
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[3:] if parts[0] == "apis" else parts[2:]
    resource = rest[0] if rest else "?"
    if len(rest) >= 3:
        resource += "/" + rest[2]
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    verb = verbs.get(method, "list" if len(rest) == 1 else "get")
    return verb, resource


class Kube:
    """An API client for one identity; shared by the operator's reconciles (and usable by a CLI)."""

    def __init__(self, creds: Credentials, timeout: float = 15.0) -> None:
        self.creds = creds
        self.timeout = timeout
        self._tls: tuple[str, str] | None = None
        self.http = self._client()
        self.instance = socket.gethostname()

    def _client(self) -> httpx.AsyncClient:
        self._tls = self.creds.client_cert()
        return httpx.AsyncClient(
            base_url=self.creds.server,
            verify=self.creds.ssl_context(),
            timeout=self.timeout,
            trust_env=False,
            headers={"User-Agent": "modeldeploy-operator"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _auth(self) -> dict[str, str]:
        """The Authorization header now; an exec plugin runs in a thread when its credential expired.
        A new client certificate from the plugin rebuilds the connection pool."""
        provider = self.creds.exec
        if provider is not None and provider.cached() is None:
            await asyncio.to_thread(provider.get)
        if provider is not None and self.creds.client_cert() != self._tls:
            old, self.http = self.http, self._client()
            await old.aclose()
        token = self.creds.bearer()
        return {"Authorization": f"Bearer {token}"} if token else {}

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
        metrics.API_REQUESTS.labels(*request_kind(method, path)).inc()
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        r = await self.http.request(
            method, "/" + path, content=content, headers={**headers, **await self._auth()}, params=params
        )
        provider = self.creds.exec
        if r.status_code == 401 and provider is not None:
            await asyncio.to_thread(provider.refresh, provider.cached())
            r = await self.http.request(
                method, "/" + path, content=content, headers={**headers, **await self._auth()}, params=params
            )
        if r.status_code >= 400:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            err = error_for(r.status_code, f"{method} /{path}: {message}")
            if allow_404 and isinstance(err, NotFound):
                return None
            raise err
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
        return f"{group_path(API_VERSION)}/namespaces/{namespace}/{MODELDEPLOYMENT_PLURAL}/{name}"

    @staticmethod
    def lease_path(namespace: str, name: str | None = None) -> str:
        base = f"apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return base if name is None else f"{base}/{name}"

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease; None when there is none."""
        return await self._call("GET", self.lease_path(namespace, name), allow_404=True)

    async def write_lease(
        self, namespace: str, name: str, spec: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Create the Lease (`resource_version` None) or replace it if it is still at `resource_version`
        (compare-and-swap: `Conflict` when another replica wrote it first)."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}
        if resource_version is None:
            return await self._call("POST", self.lease_path(namespace), body=body)
        metadata["resourceVersion"] = resource_version
        return await self._call("PUT", self.lease_path(namespace, name), body=body)

    async def get_md(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelDeployment; None when it is gone."""
        return await self._call("GET", self.md_path(namespace, name), allow_404=True)

    async def list_policies(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every RolloutPolicy; `NotFound` when the RolloutPolicy API is not served (no CRD)."""
        params = {"limit": str(limit)} if limit else None
        out = await self._call("GET", f"{group_path(API_VERSION)}/{ROLLOUTPOLICY_PLURAL}", params=params)
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
            "GET", f"{group_path(api_version)}/namespaces/{namespace}/{plural}", params={"labelSelector": sel}
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

    async def delete_object(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete a child the spec no longer asks for (gone already is fine)."""
        group, plural = _RESOURCES[(api_version, kind)]
        await self._call(
            "DELETE",
            f"{group}/namespaces/{namespace}/{plural}/{name}",
            body={"propagationPolicy": "Background"},
            allow_404=True,
        )

    async def patch_pod(
        self, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str | None] | None = None
    ) -> None:
        """Merge-patch a pod's labels and annotations (an annotation None is removed)."""
        metadata: dict[str, Any] = {"labels": labels} if labels else {}
        if annotations:
            metadata["annotations"] = annotations
        await self._call(
            "PATCH",
            f"api/v1/namespaces/{namespace}/pods/{name}",
            body={"metadata": metadata},
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
