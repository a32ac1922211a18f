"""A small Kubernetes API client on httpx for the node agent and the proxy (list, watch, write)."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Access:
    """How to reach and log in to the API server (written by the launcher as access.json)."""

    server: str
    token: str
    ca_file: str

    @classmethod
    def load(cls, path: str | Path) -> Access:
        d = json.loads(Path(path).read_text())
        return cls(server=d["server"], token=d["token"], ca_file=d["ca_file"])

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"server": self.server, "token": self.token, "ca_file": self.ca_file}))
        path.chmod(0o600)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.server,
            verify=self.ssl_context(),
            headers=self.headers(),
            timeout=timeout,
            trust_env=False,
        )


class ApiError(Exception):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class AsyncKube:
    def __init__(self, access: Access) -> None:
        self.access = access
        self.http = httpx.AsyncClient(
            base_url=access.server,
            verify=access.ssl_context(),
            headers=access.headers(),
            timeout=httpx.Timeout(30.0),
            trust_env=False,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> Obj | None:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        r = await self.http.request(method, path, content=content, params=params, headers=headers)
        if r.status_code == 404 and ok_missing:
            return None
        if r.status_code >= 400:
            raise ApiError(r.status_code, r.text, f"{method} {path}")
        result: Obj = r.json()
        return result

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        return await self._request("GET", path, params=params, ok_missing=True)

    async def create(self, path: str, body: Obj) -> Obj:
        r = await self._request("POST", path, body=body)
        assert r is not None
        return r

    async def replace(self, path: str, body: Obj) -> Obj:
        r = await self._request("PUT", path, body=body)
        assert r is not None
        return r

    async def patch(self, path: str, body: Obj, content_type: str = "application/merge-patch+json") -> Obj:
        r = await self._request("PATCH", path, body=body, content_type=content_type)
        assert r is not None
        return r

    async def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        return await self._request("DELETE", path, body=body, ok_missing=True)

    async def list_and_watch(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield ("SYNC", list) after each (re)list, then ("ADDED"|"MODIFIED"|"DELETED", obj) forever.

        A consumer treats SYNC as the complete current state (objects missing from it are gone).
        """
        base = dict(params or {})
        while True:
            try:
                listing = await self._request("GET", path, params=base)
                assert listing is not None
                rv = listing["metadata"]["resourceVersion"]
                yield "SYNC", listing
                while True:
                    q = {**base, "watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
                    q["timeoutSeconds"] = "240"
                    timeout = httpx.Timeout(30.0, read=300.0)
                    async with self.http.stream("GET", path, params=q, timeout=timeout) as resp:
                        if resp.status_code >= 400:
                            raise ApiError(resp.status_code, (await resp.aread()).decode(), f"watch {path}")
                        async for line in resp.aiter_lines():
                            if not line:
                                continue
                            ev = json.loads(line)
                            kind, obj = ev["type"], ev["object"]
                            if kind == "ERROR":
                                raise ApiError(obj.get("code", 500), json.dumps(obj), f"watch {path}")
                            rv = obj["metadata"]["resourceVersion"]
                            if kind != "BOOKMARK":
                                yield kind, obj
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, ApiError, ValueError, KeyError) as e:
                log.info("list/watch %s: %s; relisting", path, e)
                await asyncio.sleep(1.0)  # poll: back off before relisting
