"""The node agent: a kubelet stand-in that runs each pod's containers as local processes.

`python -m modeldeploy.localcluster.agent --access STATE/access.json --state-dir STATE`, run by
the launcher inside the cluster's network namespace. It

- registers the Node (capacity and allocatable cpu, memory, pods), keeps it Ready (status
  heartbeat and its Lease in kube-node-lease, renewed every 10 s);
- watches pods bound to the node and, for each, allocates an address from the pod range, mounts
  volumes as per-pod host directories, resolves the environment (downward API after the address
  is known), starts each container as a process in its own process group, runs the probes over
  HTTP/TCP/exec, writes pod status through `/status`, restarts crashed containers with back-off;
- on deletion runs preStop, sends SIGTERM, waits the grace period, SIGKILLs, and deletes the pod
  with grace period 0.

Images: `IMAGE_REPOSITORY` (the runtime, any tag) runs `<this python> -m modeldeploy.runtime`
plus the container's args; `modeldeploy.local/exec` (any tag) runs the container's command and
args as a host command. Any other image fails the pod with ErrImagePull/ImagePullBackOff.

Processes run on the host filesystem: each volumeMount's mountPath maps to a per-pod host
directory, and every occurrence of a mountPath in command, args and env values is rewritten to
that directory. Container output goes to STATE/logs/pods/<ns>_<pod>_<uid>/<container>/<n>.log
(n = restart count), as in /var/log/pods.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from .kube import Access, ApiError, AsyncKube, Obj
from .paths import KUBERNETES_SERVICE_IP, NODE_IP, NODE_NAME, POD_CIDR, versions

log = logging.getLogger("modeldeploy.localcluster.agent")

RUNTIME_IMAGE_REPOSITORY: str
try:
    from modeldeploy.runtime.contract import IMAGE_REPOSITORY

    RUNTIME_IMAGE_REPOSITORY = IMAGE_REPOSITORY
except ImportError:  # pragma: no cover - the runtime package is optional for the agent
    RUNTIME_IMAGE_REPOSITORY = "ghcr.io/modeldeploy/runtime"
EXEC_IMAGE_REPOSITORY = "modeldeploy.local/exec"
#: the agent serves the kubelet's /containerLogs here, so that `kubectl logs` works
KUBELET_PORT = 10250

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _open_log(path: Path) -> BinaryIO:
    return open(path, "ab")  # the caller closes it once the child has its copy


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def image_repository(image: str) -> str:
    """`reg/repo:tag@sha256:...` -> `reg/repo`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(q: str | int | float) -> Decimal:
    s = str(q).strip()
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", s)
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"bad quantity {q!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are substituted, `$$` is a literal `$`."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            if value[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if value[i + 1] == "(":
                j = value.find(")", i + 2)
                if j != -1:
                    name = value[i + 2 : j]
                    out.append(env[name] if name in env else value[i : j + 1])
                    i = j + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


class ImageError(Exception):
    pass


class ConfigError(Exception):
    """A referenced ConfigMap/Secret/key is missing (kubelet: CreateContainerConfigError)."""


class MountError(Exception):
    """A volume cannot be set up (kubelet: the pod stays ContainerCreating, FailedMount)."""


class IpPool:
    """Pod addresses from the pod range, skipping the node's /24, handed out round the range."""

    def __init__(self, cidr: str = POD_CIDR) -> None:
        self.net = ipaddress.ip_network(cidr)
        self.used: set[str] = set()
        self.cursor = 256  # 10.244.1.0

    def allocate(self) -> str:
        size = self.net.num_addresses
        for _ in range(size):
            self.cursor = self.cursor + 1 if self.cursor + 1 < size - 1 else 257
            ip = str(self.net.network_address + self.cursor)
            if ip.endswith((".0", ".255")) or ip in self.used:
                continue
            self.used.add(ip)
            return ip
        raise RuntimeError("pod address range exhausted")

    def release(self, ip: str | None) -> None:
        if ip:
            self.used.discard(ip)


class Container:
    """One container of a pod: a local process, restarted per the pod's restartPolicy."""

    def __init__(self, pod: PodWorker, spec: Obj) -> None:
        self.pod = pod
        self.spec = spec
        self.name: str = spec["name"]
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.ready = False
        self.started = False
        self.finished = False  # will not run again (restartPolicy)
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.wake = asyncio.Event()
        self.startup_done = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def status(self) -> Obj:
        s: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": f"local://{self.spec.get('image', '')}",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.proc is not None:
            s["containerID"] = f"local://{self.pod.uid}/{self.name}/{self.restart_count}"
        return s

    def set_state(self, state: Obj) -> None:
        self.state = state
        self.pod.dirty()

    async def sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    def argv(self) -> list[str]:
        image = self.spec.get("image", "")
        repo = image_repository(image)
        command = list(self.spec.get("command") or [])
        args = list(self.spec.get("args") or [])
        if repo == RUNTIME_IMAGE_REPOSITORY:
            if command:
                if command[0] in ("python", "python3"):
                    command[0] = sys.executable
                return command + args
            return [sys.executable, "-m", "modeldeploy.runtime", *args]
        if repo == EXEC_IMAGE_REPOSITORY:
            if not command and not args:
                raise ImageError(f"image {image} needs a command")
            return command + args
        raise ImageError(
            f'Failed to pull image "{image}": the local node runs only {RUNTIME_IMAGE_REPOSITORY}:* '
            f"and {EXEC_IMAGE_REPOSITORY}:* images"
        )

    async def run(self) -> None:
        failures = 0
        pull_failures = 0
        while not self.stopping:
            try:
                argv = self.argv()
            except ImageError as e:
                pull_failures += 1
                self.set_state({"waiting": {"reason": "ErrImagePull", "message": str(e)}})
                self.pod.event("Warning", "Failed", f"Error: ErrImagePull: {e}", self.name)
                await self.sleep(2.0)
                if self.stopping:
                    break
                delay = min(self.pod.agent.backoff_base * 2 ** (pull_failures - 1), self.pod.agent.backoff_max)
                msg = f'Back-off pulling image "{self.spec.get("image", "")}"'
                self.set_state({"waiting": {"reason": "ImagePullBackOff", "message": msg}})
                await self.sleep(delay)
                continue
            try:
                env = await self.pod.container_env(self.spec)
            except ConfigError as e:
                self.set_state({"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}})
                await self.sleep(2.0)
                continue
            if self.state.get("terminated") is not None or self.last_state:
                self.restart_count += 1
            # the host interpreter that stands in for the image's entrypoint is a host path, never a
            # path inside the pod: a checkout under /tmp must not be rewritten to the pod's /tmp volume
            argv = [
                a if i == 0 and a == sys.executable else self.pod.rewrite(expand(a, env)) for i, a in enumerate(argv)
            ]
            log_path = self.pod.log_dir / self.name / f"{self.restart_count}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            started_at, started_mono = now(), time.monotonic()
            try:
                with _open_log(log_path) as logf:
                    self.proc = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=subprocess.DEVNULL,
                        stdout=logf,
                        stderr=subprocess.STDOUT,
                        cwd=self.pod.workdir(self.spec),
                        env=env,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
            except OSError as e:
                code, reason = 128, "StartError"
                term = {"exitCode": code, "reason": reason, "message": str(e), "startedAt": started_at}
                self.set_state({"terminated": {**term, "finishedAt": now()}})
            else:
                log.info("%s/%s: started %s (pid %d)", self.pod.key, self.name, argv[:4], self.proc.pid)
                self.pod.event("Normal", "Started", f"Started container {self.name}", self.name)
                if self.stopping:  # stop() came while the process was being created
                    self.kill_group(signal.SIGKILL)
                self.set_state({"running": {"startedAt": started_at}})
                probes = self.start_probes()
                rc = await self.proc.wait()
                for t in probes:
                    t.cancel()
                self.kill_group(signal.SIGKILL)  # whatever the main process left behind
                self.ready = self.started = False
                self.startup_done.clear()
                code = rc if rc >= 0 else 128 - rc
                reason = "Completed" if code == 0 else "Error"
                log.info("%s/%s: exited with %d", self.pod.key, self.name, code)
                finished = {"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now()}
                finished["containerID"] = f"local://{self.pod.uid}/{self.name}/{self.restart_count}"
                self.set_state({"terminated": finished})
            if self.stopping:
                break
            policy = self.pod.pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self.finished = True
                self.pod.dirty()
                break
            self.last_state = self.state
            if time.monotonic() - started_mono > 600:
                failures = 0
            delay = (
                0.0
                if failures == 0
                else min(self.pod.agent.backoff_base * 2 ** (failures - 1), self.pod.agent.backoff_max)
            )
            failures += 1
            if delay > 0:
                msg = f"back-off {delay:g}s restarting failed container={self.name} pod={self.pod.key}"
                self.set_state({"waiting": {"reason": "CrashLoopBackOff", "message": msg}})
                self.pod.event("Warning", "BackOff", "Back-off restarting failed container", self.name)
                await self.sleep(delay)

    def kill_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    async def terminate_process(self, grace: float) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self.kill_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), max(grace, 0.0))
        except TimeoutError:
            self.kill_group(signal.SIGKILL)
            await proc.wait()

    async def stop(self, grace: float) -> None:
        self.stopping = True
        self.wake.set()
        await self.terminate_process(grace)
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 10.0)
            except TimeoutError:
                log.warning("%s/%s: run loop did not end; cancelling", self.pod.key, self.name)
                self.task.cancel()
                self.kill_group(signal.SIGKILL)
            except asyncio.CancelledError:
                pass

    # --- probes -----------------------------------------------------------------------------
    def start_probes(self) -> list[asyncio.Task[None]]:
        tasks = []
        if self.spec.get("startupProbe"):
            tasks.append(asyncio.create_task(self.probe_loop("startup", self.spec["startupProbe"])))
        else:
            self.started = True
            self.startup_done.set()
        if self.spec.get("readinessProbe"):
            tasks.append(asyncio.create_task(self.probe_loop("readiness", self.spec["readinessProbe"])))
        else:
            tasks.append(asyncio.create_task(self._ready_when_started()))
        if self.spec.get("livenessProbe"):
            tasks.append(asyncio.create_task(self.probe_loop("liveness", self.spec["livenessProbe"])))
        self.pod.dirty()
        return tasks

    async def _ready_when_started(self) -> None:
        await self.startup_done.wait()
        self.ready = True
        self.pod.dirty()

    async def probe_loop(self, kind: str, probe: Obj) -> None:
        period = float(probe.get("periodSeconds", 10))
        failure_threshold = int(probe.get("failureThreshold", 3))
        success_threshold = int(probe.get("successThreshold", 1))
        if kind != "startup":
            await self.startup_done.wait()
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        fails = successes = 0
        while True:
            ok = await self.pod.run_probe(probe, self.spec)
            fails, successes = (0, successes + 1) if ok else (fails + 1, 0)
            if not ok and fails == 1:
                self.pod.event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed", self.name)
            if kind == "readiness":
                if ok and successes >= success_threshold and not self.ready:
                    self.ready = True
                    self.pod.dirty()
                elif not ok and fails >= failure_threshold and self.ready:
                    self.ready = False
                    self.pod.dirty()
            elif kind == "startup":
                if ok:
                    self.started = True
                    self.startup_done.set()
                    self.pod.dirty()
                    return
                if fails >= failure_threshold:
                    await self._probe_kill(kind, probe)
                    return
            elif fails >= failure_threshold:
                await self._probe_kill(kind, probe)
                return
            await asyncio.sleep(period)

    async def _probe_kill(self, kind: str, probe: Obj) -> None:
        log.info("%s/%s: %s probe failed, killing", self.pod.key, self.name, kind)
        msg = f"Container {self.name} failed {kind} probe, will be restarted"
        self.pod.event("Normal", "Killing", msg, self.name)
        grace = probe.get(
            "terminationGracePeriodSeconds", self.pod.pod["spec"].get("terminationGracePeriodSeconds", 30)
        )
        # in its own task: terminate_process waits for the exit that cancels this probe task
        self.pod.agent.background(self.terminate_process(float(grace)))


class PodWorker:
    def __init__(self, agent: Agent, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        md = pod["metadata"]
        self.uid: str = md["uid"]
        self.namespace: str = md["namespace"]
        self.name: str = md["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.ip: str | None = None
        self.start_time = now()
        self.root: Path = agent.state_dir / "pods" / self.uid
        self.log_dir = agent.state_dir / "logs" / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.mounts: list[tuple[str, Path]] = []  # (mountPath, host path), per container below
        self.container_mounts: dict[str, list[tuple[str, Path]]] = {}
        self.volume_versions: dict[str, str] = {}
        self.containers = [Container(self, c) for c in pod["spec"].get("containers", [])]
        self.terminating = False
        self.gone = False
        self.mount_error: str | None = None
        self._dirty = asyncio.Event()
        self._last_written: str | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.status_task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    def dirty(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.main()))
        self.status_task = asyncio.create_task(self.status_loop())

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.tasks.append(asyncio.create_task(self.terminate(float(grace), delete=True)))

    # --- life -------------------------------------------------------------------------------
    async def main(self) -> None:
        self.ip = self.agent.ips.allocate()
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.dirty()
        while not self.terminating:
            try:
                await self.setup_volumes()
                self.mount_error = None
                break
            except (MountError, ApiError, httpx.HTTPError) as e:
                if self.mount_error != str(e):
                    log.info("%s: volumes: %s", self.key, e)
                if self.mount_error != str(e):
                    self.event("Warning", "FailedMount", f"MountVolume.SetUp failed: {e}")
                self.mount_error = str(e)
                self.dirty()
                await asyncio.sleep(2.0)  # poll: the missing object may appear
        if self.terminating:
            return
        for c in self.containers:
            c.task = asyncio.create_task(c.run())
        self.tasks.append(asyncio.create_task(self.refresh_volumes_loop()))

    def event(self, etype: str, reason: str, message: str, container: str | None = None) -> None:
        """Post a core/v1 Event about this pod from "kubelet", as `kubectl describe pod` shows them."""
        t = micro_now()
        ref: Obj = {"apiVersion": "v1", "kind": "Pod", "namespace": self.namespace, "name": self.name, "uid": self.uid}
        if container:
            ref["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{self.name}.{os.urandom(8).hex()}", "namespace": self.namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": "kubelet", "host": self.agent.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.agent.node_name,
            "firstTimestamp": t[:19] + "Z",
            "lastTimestamp": t[:19] + "Z",
            "count": 1,
        }

        async def post() -> None:
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.agent.kube.create(f"/api/v1/namespaces/{self.namespace}/events", body)

        self.agent.background(post())

    async def terminate(self, grace: float, delete: bool) -> None:
        if self.terminating:
            return
        self.terminating = True
        self.dirty()
        for c in self.containers:
            if c.proc is not None and c.proc.returncode is None:
                self.event("Normal", "Killing", f"Stopping container {c.name}", c.name)
        deadline = time.monotonic() + grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.run_pre_stop_hooks(), grace)
        remaining = max(deadline - time.monotonic(), 0.0)
        await asyncio.gather(*(c.stop(remaining) for c in self.containers))
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        if delete and not self.gone:
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.write_status()
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
            body["preconditions"] = {"uid": self.uid}
            try:
                await self.agent.kube.delete(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body)
            except (ApiError, httpx.HTTPError) as e:
                log.info("%s: delete: %s", self.key, e)
        if self.status_task is not None:
            self.status_task.cancel()
        self.agent.ips.release(self.ip)
        shutil.rmtree(self.root, ignore_errors=True)
        self.agent.workers.pop(self.uid, None)
        self.agent.write_sd()
        self.done.set()
        log.info("%s: terminated", self.key)

    async def run_pre_stop_hooks(self) -> None:
        async def one(c: Container) -> None:
            hook = (c.spec.get("lifecycle") or {}).get("preStop")
            if not hook or c.proc is None or c.proc.returncode is not None:
                return
            if "sleep" in hook:
                await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
            elif "exec" in hook or "httpGet" in hook or "tcpSocket" in hook:
                await self.run_probe({**hook, "timeoutSeconds": 3600}, c.spec)

        await asyncio.gather(*(one(c) for c in self.containers))

    # --- status -----------------------------------------------------------------------------
    def phase(self) -> str:
        cs = self.containers
        if cs and all(c.finished for c in cs):
            ok = all((c.state.get("terminated") or {}).get("exitCode") == 0 for c in cs)
            return "Succeeded" if ok else "Failed"
        if any(c.proc is not None or c.last_state for c in cs):
            return "Running"
        return "Pending"

    def build_status(self) -> Obj:
        all_ready = bool(self.containers) and all(c.ready for c in self.containers) and not self.terminating
        statuses = [c.status() for c in self.containers]
        if self.mount_error:
            for s in statuses:
                s["state"] = {"waiting": {"reason": "ContainerCreating", "message": self.mount_error}}
        conds = {
            "PodReadyToStartContainers": self.ip is not None,
            "Initialized": True,
            "ContainersReady": all_ready,
            "Ready": all_ready,
        }
        status: Obj = {
            "phase": self.phase(),
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "startTime": self.start_time,
            "containerStatuses": statuses,
            "conditions": [],
        }
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        for ctype, value in conds.items():
            flag = "True" if value else "False"
            prev = self._transitions.get(ctype)
            if prev is None or prev[0] != flag:
                self._transitions[ctype] = (flag, now())
            cond: Obj = {"type": ctype, "status": flag, "lastProbeTime": None}
            cond["lastTransitionTime"] = self._transitions[ctype][1]
            if ctype in ("Ready", "ContainersReady") and not value:
                cond["reason"] = "ContainersNotReady"
            status["conditions"].append(cond)
        return status

    async def status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.write_status()
            except (ApiError, httpx.HTTPError) as e:
                if isinstance(e, ApiError) and e.status == 404:
                    return
                log.info("%s: status: %s", self.key, e)
                await asyncio.sleep(0.5)  # poll: retry the write
                self.dirty()
            if self.done.is_set():
                return

    async def write_status(self) -> None:
        ours = self.build_status()
        fingerprint = json.dumps(ours, sort_keys=True)
        if fingerprint == self._last_written:
            return
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        for _ in range(5):
            cur = await self.agent.kube.get(path)
            if cur is None or cur["metadata"]["uid"] != self.uid:
                return
            status = dict(cur.get("status") or {})
            theirs = [
                c for c in status.get("conditions", []) if c["type"] not in {x["type"] for x in ours["conditions"]}
            ]
            status.update(ours)
            status["conditions"] = theirs + ours["conditions"]
            cur["status"] = status
            try:
                await self.agent.kube.replace(path + "/status", cur)
            except ApiError as e:
                if e.status == 409:
                    continue
                raise
            self._last_written = fingerprint
            self.agent.write_sd()
            return

    # --- environment --------------------------------------------------------------------------
    def field_value(self, path: str) -> str:
        md = self.pod["metadata"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
        simple: dict[str, str] = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.agent.node_name,
            "spec.serviceAccountName": str(self.pod["spec"].get("serviceAccountName", "default")),
            "status.hostIP": NODE_IP,
            "status.hostIPs": NODE_IP,
            "status.podIP": self.ip or "",
            "status.podIPs": self.ip or "",
        }
        if path not in simple:
            raise ConfigError(f"unsupported fieldRef {path}")
        return simple[path]

    def resource_value(self, ref: Obj, spec: Obj) -> str:
        resource = ref["resource"]
        kind, _, name = resource.partition(".")
        res = spec.get("resources") or {}
        raw = (res.get(kind) or {}).get(name)
        if raw is None:  # no limit: the node's allocatable, as the kubelet does
            raw = self.agent.allocatable.get(name, "0")
        divisor = parse_quantity(ref.get("divisor", "1") or "1")
        value = parse_quantity(raw) / divisor
        return str(int(value.to_integral_value(rounding="ROUND_CEILING")))

    async def _object(self, kind: str, name: str) -> Obj | None:
        plural = "configmaps" if kind == "configMap" else "secrets"
        return await self.agent.kube.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")

    @staticmethod
    def _data(kind: str, obj: Obj) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        if kind == "configMap":
            out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        return out

    async def container_env(self, spec: Obj) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOSTNAME": self.name,
            "HOME": str(self.root),
            "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_IP,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{KUBERNETES_SERVICE_IP}:443",
        }
        for k in ("LANG", "LC_ALL", "TZ"):
            if k in os.environ:
                env[k] = os.environ[k]
        tmp = dict(self.mounts).get("/tmp")  # noqa: S108 - the container's /tmp
        if tmp is not None:
            env["TMPDIR"] = str(tmp)
        if image_repository(spec.get("image", "")) == RUNTIME_IMAGE_REPOSITORY:
            env["PYTHONUNBUFFERED"] = "1"  # as the image's Dockerfile would set
        for src in spec.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind in ("configMap", "secret"):
                ref = src.get(f"{kind}Ref")
                if ref is None:
                    continue
                obj = await self._object(kind, ref["name"])
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'{kind} "{ref["name"]}" not found')
                for k, v in self._data(kind, obj).items():
                    env[prefix + k] = v.decode(errors="replace")
        for e in spec.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                env[name] = self.rewrite(expand(e.get("value", ""), env))
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[name] = self.field_value(vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                env[name] = self.resource_value(vf["resourceFieldRef"], spec)
            else:
                kind = "configMap" if "configMapKeyRef" in vf else "secret"
                ref = vf[f"{kind}KeyRef"]
                obj = await self._object(kind, ref["name"])
                data = self._data(kind, obj) if obj is not None else None
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    what = (
                        f'{kind} "{ref["name"]}"' if data is None else f'key "{ref["key"]}" in {kind} "{ref["name"]}"'
                    )
                    raise ConfigError(f"{what} not found")
                env[name] = self.rewrite(data[ref["key"]].decode(errors="replace"))
        return env

    # --- volumes ------------------------------------------------------------------------------
    def rewrite(self, value: str) -> str:
        """Replace each mountPath in `value` with its host directory (longest mountPath first)."""
        if not self.mounts:
            return value
        table = dict(self.mounts)
        pattern = "|".join(re.escape(m) for m in sorted(table, key=len, reverse=True))
        # a whole path component: not "/var/tmp" for "/tmp", not "/tmp2" for "/tmp"
        boundary = r"(?<![A-Za-z0-9_.-])"
        return re.sub(f"{boundary}({pattern})(?=/|$|[^A-Za-z0-9_.-])", lambda m: str(table[m.group(1)]), value)

    def workdir(self, spec: Obj) -> str:
        wd = spec.get("workingDir")
        if wd:
            mapped = self.rewrite(wd)
            if mapped != wd or os.path.isdir(wd):
                return mapped
        return str(self.root)

    async def setup_volumes(self) -> None:
        vols = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        host: dict[str, Path] = {}
        for name, v in vols.items():
            host[name] = await self.materialize(name, v)
        mounts: list[tuple[str, Path]] = []
        for c in self.pod["spec"].get("containers", []):
            for m in c.get("volumeMounts") or []:
                if m["name"] not in host:
                    raise MountError(f'volume "{m["name"]}" not found in the pod spec')
                p = host[m["name"]]
                if m.get("subPath"):
                    p = p / m["subPath"]
                mounts.append((m["mountPath"].rstrip("/") or "/", p))
        self.mounts = mounts

    async def materialize(self, name: str, v: Obj) -> Path:
        d: Path = self.root / "volumes" / name
        if "hostPath" in v:
            return Path(str(v["hostPath"]["path"]))
        if "persistentVolumeClaim" in v:
            p = self.agent.state_dir / "pvc" / self.namespace / str(v["persistentVolumeClaim"]["claimName"])
            p.mkdir(parents=True, exist_ok=True)
            return p
        os.makedirs(d, exist_ok=True)
        if "emptyDir" in v:
            return d
        files = await self.volume_files(name, v)
        if files is not None:
            self.write_files(d, files)
        return d

    async def volume_files(self, name: str, v: Obj) -> dict[str, tuple[bytes, int]] | None:
        """path -> (content, mode) of a configMap/secret/downwardAPI/projected volume."""
        files: dict[str, tuple[bytes, int]] = {}
        versions: list[str] = []
        sources: list[tuple[str, Obj]] = []
        default_mode = 0o644
        if "configMap" in v or "secret" in v:
            kind = "configMap" if "configMap" in v else "secret"
            src = v[kind]
            default_mode = int(src.get("defaultMode", 0o644))
            sources.append((kind, {**src, "name": src.get("name") or src.get("secretName")}))
        elif "downwardAPI" in v:
            default_mode = int(v["downwardAPI"].get("defaultMode", 0o644))
            sources.append(("downwardAPI", v["downwardAPI"]))
        elif "projected" in v:
            default_mode = int(v["projected"].get("defaultMode", 0o644))
            for s in v["projected"].get("sources") or []:
                for kind in ("configMap", "secret", "downwardAPI", "serviceAccountToken"):
                    if kind in s:
                        sources.append((kind, s[kind]))
        else:
            raise MountError(
                f'volume "{name}": this node supports emptyDir, hostPath, configMap, secret, downwardAPI, '
                "projected and persistentVolumeClaim volumes"
            )
        for kind, src in sources:
            if kind in ("configMap", "secret"):
                obj = await self._object(kind, src["name"])
                if obj is None:
                    if src.get("optional"):
                        continue
                    raise MountError(f'{kind} "{src["name"]}" not found')
                versions.append(obj["metadata"]["resourceVersion"])
                data = self._data(kind, obj)
                items = src.get("items")
                if items:
                    for it in items:
                        if it["key"] not in data:
                            if src.get("optional"):
                                continue
                            raise MountError(f'key "{it["key"]}" not in {kind} "{src["name"]}"')
                        files[it["path"]] = (data[it["key"]], int(it.get("mode", default_mode)))
                else:
                    for k, val in data.items():
                        files[k] = (val, default_mode)
            elif kind == "downwardAPI":
                for it in src.get("items") or []:
                    if "fieldRef" in it:
                        path = it["fieldRef"]["fieldPath"]
                        md = self.pod["metadata"]
                        if path in ("metadata.labels", "metadata.annotations"):
                            kv = md.get(path.split(".")[1]) or {}
                            text = "\n".join(f'{k}="{val}"' for k, val in sorted(kv.items()))
                        else:
                            try:
                                text = self.field_value(path)
                            except ConfigError as e:
                                raise MountError(str(e)) from e
                        files[it["path"]] = (text.encode(), int(it.get("mode", default_mode)))
            else:  # serviceAccountToken, through the TokenRequest API, bound to this pod
                sa = self.pod["spec"].get("serviceAccountName", "default")
                spec: Obj = {"expirationSeconds": int(src.get("expirationSeconds", 3607))}
                if src.get("audience"):
                    spec["audiences"] = [src["audience"]]
                spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}
                body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
                tr = await self.agent.kube.create(
                    f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token", body
                )
                files[src["path"]] = (tr["status"]["token"].encode(), 0o600)
                versions.append("token")
        key = json.dumps(versions)
        if self.volume_versions.get(name) == key and any(kind != "serviceAccountToken" for kind, _ in sources):
            return None
        self.volume_versions[name] = key
        return files

    @staticmethod
    def write_files(d: Path, files: dict[str, tuple[bytes, int]]) -> None:
        """Write atomically (temp file + rename) and drop files no longer present."""
        for rel, (content, mode) in files.items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.tmp")
            tmp.write_bytes(content)
            tmp.chmod(mode)
            tmp.replace(p)
        keep = {str(d / rel) for rel in files}
        for p in d.rglob("*"):
            if p.is_file() and str(p) not in keep:
                p.unlink()

    async def refresh_volumes_loop(self) -> None:
        """Keep configMap/secret/projected volume contents current (the kubelet syncs within ~1 min)."""
        vols = [
            v
            for v in self.pod["spec"].get("volumes") or []
            if any(k in v for k in ("configMap", "secret", "projected", "downwardAPI"))
        ]
        if not vols:
            return
        while True:
            await asyncio.sleep(self.agent.volume_sync_s)  # poll: refresh volume contents
            for v in vols:
                try:
                    files = await self.volume_files(v["name"], v)
                except (MountError, ApiError, httpx.HTTPError) as e:
                    log.info("%s: volume %s: %s", self.key, v["name"], e)
                    continue
                if files is not None:
                    self.write_files(self.root / "volumes" / v["name"], files)
                    log.info("%s: volume %s updated", self.key, v["name"])

    # --- probes -------------------------------------------------------------------------------
    def _port(self, port: int | str, spec: Obj) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for c in self.pod["spec"].get("containers", []):
            for p in c.get("ports") or []:
                if p.get("name") == port:
                    return int(p["containerPort"])
        raise ValueError(f"no container port named {port}")

    async def run_probe(self, probe: Obj, spec: Obj) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                h = probe["httpGet"]
                host = h.get("host") or self.ip
                scheme = h.get("scheme", "HTTP").lower()
                url = f"{scheme}://{host}:{self._port(h['port'], spec)}{h.get('path', '/')}"
                headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
                headers.setdefault("User-Agent", "kube-probe/local")
                r = await self.agent.probe_http.get(url, headers=headers, timeout=timeout)
                return 200 <= r.status_code < 400
            if "tcpSocket" in probe:
                t = probe["tcpSocket"]
                host = t.get("host") or self.ip
                _, w = await asyncio.wait_for(asyncio.open_connection(host, self._port(t["port"], spec)), timeout)
                w.close()
                return True
            if "exec" in probe:
                env = await self.container_env(spec)
                argv = [self.rewrite(a) for a in probe["exec"]["command"]]
                p = await asyncio.create_subprocess_exec(
                    *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=self.workdir(spec)
                )
                try:
                    return await asyncio.wait_for(p.wait(), timeout) == 0
                except TimeoutError:
                    p.kill()
                    await p.wait()
                    return False
            if "grpc" in probe:
                log.warning("%s: grpc probes are not supported by the local node agent", self.key)
                return False
        except (OSError, TimeoutError, httpx.HTTPError, ValueError, ConfigError):
            return False
        return False


class Agent:
    def __init__(
        self,
        kube: AsyncKube,
        state_dir: Path,
        *,
        node_name: str = NODE_NAME,
        cpu: str = "16",
        memory: str | None = None,
        pods: int = 110,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        heartbeat_s: float = 10.0,
        volume_sync_s: float = 2.0,
        serving: ssl.SSLContext | None = None,
    ) -> None:
        self.serving = serving
        self.kube = kube
        self.state_dir = state_dir
        self.node_name = node_name
        if memory is None:
            memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
        self.allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.heartbeat_s = heartbeat_s
        self.volume_sync_s = volume_sync_s
        self.workers: dict[str, PodWorker] = {}
        self._sd_last: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.ips = IpPool()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the kubelet does not verify HTTPS probes either
        self.probe_http = httpx.AsyncClient(
            trust_env=False, verify=ctx, limits=httpx.Limits(max_keepalive_connections=0), follow_redirects=True
        )

    # --- node ---------------------------------------------------------------------------------
    def node_status(self) -> Obj:
        t = now()

        def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": t,
                "lastTransitionTime": self.started_at,
            }

        v = versions()
        return {
            "capacity": self.allocatable,
            "allocatable": self.allocatable,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "local node agent"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "local node agent"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "local node agent"),
                cond("Ready", "True", "KubeletReady", "modeldeploy local node agent is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT if self.serving else 0}},
            "nodeInfo": {
                "machineID": "modeldeploy-local",
                "systemUUID": "modeldeploy-local",
                "bootID": self.boot_id,
                "kernelVersion": platform.release(),
                "osImage": "modeldeploy local node agent",
                "containerRuntimeVersion": "local://0.1.0",
                "kubeletVersion": v.get("K8S_VERSION", "v0.0.0"),
                "kubeProxyVersion": v.get("K8S_VERSION", "v0.0.0"),
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def register(self) -> None:
        self.started_at = now()
        self.boot_id = os.urandom(8).hex()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "modeldeploy.io/local-node": "true",
                },
            },
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]},
        }
        try:
            self.node = await self.kube.create("/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
            cur = await self.kube.get(f"/api/v1/nodes/{self.node_name}")
            assert cur is not None
            self.node = cur
        await self.heartbeat()
        log.info("node %s registered", self.node_name)

    async def heartbeat(self) -> None:
        await self.kube.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self.node_status()})
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": micro_now()}
        lease = await self.kube.get(lease_path)
        if lease is None:
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node["metadata"]["uid"]}
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.kube.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body)
        else:
            await self.kube.patch(lease_path, {"spec": spec})

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)  # poll: node heartbeat period
            try:
                await self.heartbeat()
            except (ApiError, httpx.HTTPError) as e:
                log.warning("heartbeat: %s", e)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a task without awaiting it, holding a reference so it is not garbage-collected."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the kubelet API, as far as `kubectl logs` needs it ---------------------------------------
    def log_file(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        live = [w for w in self.workers.values() if w.namespace == namespace and w.name == pod]
        if live:
            dirs = [live[0].log_dir]
        else:
            dirs = sorted(self.state_dir.glob(f"logs/pods/{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
        if not dirs:
            return None
        files = sorted((dirs[-1] / container).glob("*.log"), key=lambda p: int(p.stem))
        if previous:
            files = files[:-1]
        return files[-1] if files else None

    async def serve_logs(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            url = httpx.URL(target)
            parts = url.path.strip("/").split("/")
            q = dict(url.params)
            if method != "GET" or len(parts) != 4 or parts[0] != "containerLogs":
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            path = self.log_file(parts[1], parts[2], parts[3], q.get("previous") == "true")
            if path is None:
                msg = f"no logs for container {parts[3]} of pod {parts[1]}/{parts[2]}".encode()
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n")
                writer.write(f"Content-Length: {len(msg)}\r\nConnection: close\r\n\r\n".encode() + msg)
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            data = path.read_bytes()
            if q.get("tailLines"):
                data = b"".join(data.splitlines(keepends=True)[-int(q["tailLines"]) :])
            if q.get("limitBytes"):
                data = data[: int(q["limitBytes"])]
            writer.write(data)
            await writer.drain()
            if q.get("follow") == "true":
                offset = path.stat().st_size
                while not reader.at_eof():
                    await asyncio.sleep(0.2)  # poll: follow the file
                    size = path.stat().st_size
                    if size > offset:
                        with path.open("rb") as f:
                            f.seek(offset)
                            writer.write(f.read(size - offset))
                        offset = size
                        await writer.drain()
                    if not any(w.log_dir == path.parent.parent for w in self.workers.values()):
                        break
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # --- Prometheus discovery ---------------------------------------------------------------------
    def sd_targets(self) -> list[Obj]:
        """The pods as Prometheus file_sd groups with Kubernetes pod-role discovery's meta labels."""
        groups: list[Obj] = []
        for w in sorted(self.workers.values(), key=lambda w: w.key):
            if w.ip is None or w.terminating:
                continue
            md = w.pod["metadata"]
            base: dict[str, str] = {
                "__meta_kubernetes_namespace": w.namespace,
                "__meta_kubernetes_pod_name": w.name,
                "__meta_kubernetes_pod_uid": w.uid,
                "__meta_kubernetes_pod_ip": w.ip,
                "__meta_kubernetes_pod_node_name": self.node_name,
                "__meta_kubernetes_pod_host_ip": NODE_IP,
                "__meta_kubernetes_pod_phase": w.phase(),
                "__meta_kubernetes_pod_ready": str(all(c.ready for c in w.containers)).lower(),
            }
            for kind in ("label", "annotation"):
                for k, v in (md.get(f"{kind}s") or {}).items():
                    name = re.sub(r"[^a-zA-Z0-9_]", "_", k)
                    base[f"__meta_kubernetes_pod_{kind}_{name}"] = str(v)
                    base[f"__meta_kubernetes_pod_{kind}present_{name}"] = "true"
            ports = [(c, p) for c in w.pod["spec"].get("containers", []) for p in c.get("ports") or []]
            if not ports:
                groups.append({"targets": [w.ip], "labels": base})
            for c, p in ports:
                labels = {
                    **base,
                    "__meta_kubernetes_pod_container_name": c["name"],
                    "__meta_kubernetes_pod_container_port_name": p.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(p["containerPort"]),
                    "__meta_kubernetes_pod_container_port_protocol": p.get("protocol", "TCP"),
                }
                groups.append({"targets": [f"{w.ip}:{p['containerPort']}"], "labels": labels})
        return groups

    def write_sd(self) -> None:
        d = self.state_dir / "prometheus-sd"
        d.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.sd_targets(), indent=1, sort_keys=True)
        if text == self._sd_last:
            return
        tmp = d / ".pods.json.tmp"
        tmp.write_text(text)
        tmp.replace(d / "pods.json")
        self._sd_last = text

    # --- pods ---------------------------------------------------------------------------------
    def on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if w is not None:
            w.update(pod)
            return
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if pod["metadata"].get("deletionTimestamp") or finished:
            if pod["metadata"].get("deletionTimestamp"):
                self.background(self.force_delete(pod))
            return
        w = PodWorker(self, pod)
        self.workers[uid] = w
        w.start()

    async def force_delete(self, pod: Obj) -> None:
        md = pod["metadata"]
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": md["uid"]},
        }
        with contextlib.suppress(ApiError, httpx.HTTPError):
            await self.kube.delete(f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}", body)

    def on_gone(self, uid: str) -> None:
        w = self.workers.get(uid)
        if w is not None:
            w.gone = True
            self.background(w.terminate(2.0, delete=False))

    async def watch_pods(self) -> None:
        params = {"fieldSelector": f"spec.nodeName={self.node_name}"}
        async for kind, obj in self.kube.list_and_watch("/api/v1/pods", params):
            if kind == "SYNC":
                items = obj.get("items") or []
                live = {p["metadata"]["uid"] for p in items}
                for uid in list(self.workers):
                    if uid not in live:
                        self.on_gone(uid)
                for p in items:
                    self.on_pod(p)
            elif kind == "DELETED":
                self.on_gone(obj["metadata"]["uid"])
            else:
                self.on_pod(obj)

    async def shutdown(self) -> None:
        """Stop every pod's processes (the pods stay in the API, as when a kubelet stops)."""
        await asyncio.gather(*(c.stop(3.0) for w in list(self.workers.values()) for c in w.containers))

    async def run(self) -> None:
        self.write_sd()
        if self.serving is not None:
            await asyncio.start_server(self.serve_logs, NODE_IP, KUBELET_PORT, ssl=self.serving)
        while True:  # the API server may still be starting (kube-node-lease appears after /readyz)
            try:
                await self.register()
                break
            except (ApiError, httpx.HTTPError) as e:
                log.info("registering node: %s; retrying", e)
                await asyncio.sleep(0.2)  # poll: retry registration
        await asyncio.gather(self.heartbeat_loop(), self.watch_pods())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m modeldeploy.localcluster.agent", description=__doc__.split("\n")[0])
    ap.add_argument("--access", required=True, help="access.json written by the launcher")
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--node-name", default=NODE_NAME)
    ap.add_argument("--cpu", default="16", help="cpu capacity to report (requests are not enforced)")
    ap.add_argument("--memory", default=None, help="memory capacity to report (default: the machine's)")
    ap.add_argument("--pods", type=int, default=110)
    ap.add_argument("--backoff-base", type=float, default=10.0, help="CrashLoopBackOff first delay, seconds")
    ap.add_argument("--backoff-max", type=float, default=300.0)
    ap.add_argument("--serving-cert", help="serve /containerLogs on :10250 with this cert (kubectl logs)")
    ap.add_argument("--serving-key")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    serving = None
    if args.serving_cert:
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(args.serving_cert, args.serving_key)

    async def amain() -> None:
        kube = AsyncKube(Access.load(args.access))
        agent = Agent(
            kube,
            args.state_dir,
            node_name=args.node_name,
            cpu=args.cpu,
            memory=args.memory,
            pods=args.pods,
            backoff_base=args.backoff_base,
            backoff_max=args.backoff_max,
            serving=serving,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(agent.run())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception() is not None:
            log.error("agent failed: %r", task.exception())
        task.cancel()
        await agent.shutdown()
        await kube.aclose()

    run_async(amain)


def run_async(fn: Callable[[], Awaitable[None]]) -> None:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(fn())  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(fn())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
