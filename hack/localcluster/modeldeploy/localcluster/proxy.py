"""A kube-proxy stand-in: each Service's ClusterIP:port forwards connections to ready endpoints.

`python -m modeldeploy.localcluster.proxy --access STATE/access.json`, run by the launcher inside
the cluster's network namespace, where every address of the service range is local on `lo`, so
the proxy can listen on each ClusterIP directly. It watches Services and EndpointSlices and
keeps one TCP listener per (ClusterIP, port). Each accepted connection goes to the next ready
endpoint in round-robin order (kube-proxy's iptables mode picks at random per connection;
round-robin spreads connections exactly evenly, so traffic follows the replica ratio). If no
endpoint is ready, serving-and-terminating endpoints are used, as kube-proxy does; with none at
all the connection is closed (kube-proxy rejects it).

Not done: UDP/SCTP, NodePort, externalIPs, sessionAffinity, internal/external traffic policy,
topology hints, and cluster DNS (there is none: use ClusterIPs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
from dataclasses import dataclass, field

from .agent import run_async
from .kube import Access, AsyncKube, Obj

log = logging.getLogger("modeldeploy.localcluster.proxy")

PortKey = tuple[str, int]  # (cluster ip, port)


@dataclass
class Target:
    namespace: str
    service: str
    port_name: str
    target_port: int | str


@dataclass
class Listener:
    server: asyncio.Server
    target: Target
    next_index: int = 0
    active: set[asyncio.Task[None]] = field(default_factory=set)


class Proxy:
    def __init__(self, kube: AsyncKube) -> None:
        self.kube = kube
        self.services: dict[tuple[str, str], Obj] = {}
        self.slices: dict[tuple[str, str], Obj] = {}
        self.listeners: dict[PortKey, Listener] = {}
        self.synced = {"services": False, "slices": False}
        self.lock = asyncio.Lock()

    def endpoints(self, t: Target) -> list[tuple[str, int]]:
        ready: list[tuple[str, int]] = []
        fallback: list[tuple[str, int]] = []
        for (ns, _), s in sorted(self.slices.items()):
            labels = s["metadata"].get("labels") or {}
            if ns != t.namespace or labels.get("kubernetes.io/service-name") != t.service:
                continue
            if s.get("addressType") != "IPv4":
                continue
            port = None
            for p in s.get("ports") or []:
                if (p.get("name") or "") == t.port_name and p.get("protocol", "TCP") == "TCP":
                    port = p.get("port")
            if port is None:
                continue
            for ep in s.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                for addr in ep.get("addresses") or []:
                    if cond.get("ready") is not False:
                        ready.append((addr, int(port)))
                    elif cond.get("serving") and cond.get("terminating"):
                        fallback.append((addr, int(port)))
        return ready or fallback

    def desired(self) -> dict[PortKey, Target]:
        out: dict[PortKey, Target] = {}
        for (ns, name), svc in self.services.items():
            spec = svc.get("spec") or {}
            ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
            for ip in ips:
                if not ip or ip == "None" or ":" in ip:
                    continue
                for p in spec.get("ports") or []:
                    if p.get("protocol", "TCP") != "TCP":
                        continue
                    out[(ip, int(p["port"]))] = Target(ns, name, p.get("name") or "", p.get("targetPort", p["port"]))
        return out

    async def reconcile(self) -> None:
        if not all(self.synced.values()):
            return
        async with self.lock:
            want = self.desired()
            for key in list(self.listeners):
                if key not in want:
                    lst = self.listeners.pop(key)
                    lst.server.close()
                    log.info("closed %s:%d", *key)
            for key, target in want.items():
                existing = self.listeners.get(key)
                if existing is not None:
                    existing.target = target
                    continue
                try:
                    server = await asyncio.start_server(
                        functools.partial(self.handle, key), host=key[0], port=key[1], reuse_address=True
                    )
                except OSError as e:
                    log.warning("cannot listen on %s:%d: %s", key[0], key[1], e)
                    continue
                self.listeners[key] = Listener(server, target)
                log.info("listening on %s:%d for %s/%s", key[0], key[1], target.namespace, target.service)

    async def handle(self, key: PortKey, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lst = self.listeners.get(key)
        try:
            if lst is None:
                return
            eps = self.endpoints(lst.target)
            for _ in range(len(eps)):
                ep = eps[lst.next_index % len(eps)]
                lst.next_index += 1
                try:
                    up_r, up_w = await asyncio.wait_for(asyncio.open_connection(ep[0], ep[1]), 3.0)
                except (OSError, TimeoutError) as e:
                    log.info("%s:%d -> %s:%d: %s", *key, *ep, e)
                    continue
                try:
                    await asyncio.gather(self.pipe(reader, up_w), self.pipe(up_r, writer))
                finally:
                    up_w.close()
                return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, ConnectionError):
            dst.close()

    async def watch(self, path: str, store: dict[tuple[str, str], Obj], name: str) -> None:
        async for kind, obj in self.kube.list_and_watch(path):
            if kind == "SYNC":
                store.clear()
                for o in obj.get("items") or []:
                    store[(o["metadata"]["namespace"], o["metadata"]["name"])] = o
                self.synced[name] = True
            else:
                k = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                if kind == "DELETED":
                    store.pop(k, None)
                else:
                    store[k] = obj
            if name == "services" or kind == "SYNC":  # endpoints are read per connection
                await self.reconcile()

    async def run(self) -> None:
        await asyncio.gather(
            self.watch("/api/v1/services", self.services, "services"),
            self.watch("/apis/discovery.k8s.io/v1/endpointslices", self.slices, "slices"),
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m modeldeploy.localcluster.proxy")
    ap.add_argument("--access", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def amain() -> None:
        kube = AsyncKube(Access.load(args.access))
        proxy = Proxy(kube)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(proxy.run())
        await stop.wait()
        task.cancel()
        for lst in proxy.listeners.values():
            lst.server.close()
        await kube.aclose()

    run_async(amain)


if __name__ == "__main__":
    main()
