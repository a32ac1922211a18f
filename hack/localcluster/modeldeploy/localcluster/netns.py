"""The cluster's own network namespace.

`ip netns add NAME` makes a named namespace (a bind mount under /run/netns), so that
`nsenter --net=/run/netns/NAME` (bin/in-cluster) can enter it later. Inside it: `lo`, and a veth
pair `node0`/`node0p` (both ends inside) whose `node0` carries the node's address with a default
route to a next hop that does not exist (the kubelet and kube-proxy want one; nothing can leave).
The CNI bridge plugin adds `cni0` and one veth per pod; kube-proxy adds the Service rules. The
host's root namespace gets no address, route, bridge or rule.

A network namespace belongs to a *thread*: `setns` moves the calling thread only, and threads
(and processes) created afterwards inherit the namespace of the thread that creates them. So
`enter()` must run on the main thread before the threads that must be inside are created.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Final

from .paths import NODE_GATEWAY, NODE_IP, NODE_PREFIX

CLONE_NEWNET: Final = 0x40000000
NETNS_RUN_DIR: Final = Path("/run/netns")
NODE_LINK: Final = "node0"
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetnsError(RuntimeError):
    pass


def path_of(name: str) -> Path:
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    return path_of(name).exists()


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")


def create(name: str) -> None:
    """Create the namespace: lo up, the node's veth with NODE_IP and a default route."""
    if os.geteuid() != 0:
        raise NetnsError("the local cluster needs root to create its network namespace (ip netns add)")
    if exists(name):
        delete(name)
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")
    _ip("-n", name, "link", "add", NODE_LINK, "type", "veth", "peer", "name", f"{NODE_LINK}p")
    _ip("-n", name, "addr", "add", f"{NODE_IP}/{NODE_PREFIX}", "dev", NODE_LINK)
    _ip("-n", name, "link", "set", NODE_LINK, "up")
    _ip("-n", name, "link", "set", f"{NODE_LINK}p", "up")
    _ip("-n", name, "route", "add", "default", "via", NODE_GATEWAY, "dev", NODE_LINK, "onlink")


def delete(name: str) -> None:
    if exists(name):
        _ip("netns", "delete", name)


def inode_of(path: str | Path) -> int:
    return os.stat(path).st_ino


def current_inode() -> int:
    """The network namespace of the calling thread."""
    return inode_of(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns failed: {os.strerror(err)}")


def enter(name: str) -> int:
    """Move the calling thread into namespace `name`; return an fd of the namespace it was in."""
    if threading.current_thread() is not threading.main_thread():
        raise NetnsError("enter the cluster's network namespace from the main thread")
    old = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fd = os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    finally:
        os.close(fd)
    return old


def leave(old_fd: int) -> None:
    """Return the calling thread to the namespace `enter` came from."""
    try:
        _setns(old_fd)
    finally:
        os.close(old_fd)


def threads_outside(name: str) -> list[str]:
    """Python threads of this process that are not in namespace `name` (they cannot reach it)."""
    target = inode_of(path_of(name))
    out = []
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        try:
            ino = inode_of(f"/proc/self/task/{t.native_id}/ns/net")
        except FileNotFoundError:
            continue
        if ino != target:
            out.append(t.name)
    return out


def processes_inside(ns_inode: int) -> list[int]:
    """Process ids whose network namespace is `ns_inode` (this process excluded)."""
    pids = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if inode_of(f"/proc/{entry}/ns/net") == ns_inode:
                pids.append(int(entry))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return pids


def kill_all_inside(ns_inode: int) -> list[int]:
    """SIGKILL every process left in the namespace; returns their ids (the safety net of stop())."""
    pids = processes_inside(ns_inode)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
