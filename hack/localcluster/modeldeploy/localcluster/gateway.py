"""A Gateway API data plane for the local cluster: the standard CRDs, a GatewayClass, and Traefik.

Traefik (built from its Go module by hack/cluster/build-traefik.sh, versions in
hack/cluster/gateway-versions.env) runs out of cluster as a process of this module, inside the
cluster's network namespace, with `KUBECONFIG` set and `--providers.kubernetesgateway=true`. It
watches GatewayClasses, Gateways, HTTPRoutes, Services and EndpointSlices, and sends each request
straight to a pod address (no ClusterIP in the path), with the HTTPRoute's backendRef weights.

    plane = GatewayDataPlane(handle, log_dir)   # a ClusterHandle of a running cluster
    plane.start()                               # CRDs, GatewayClass `traefik`, Traefik; waits until Accepted
    plane.create_gateway("edge", "gateway")     # listener port == Traefik's `web` entrypoint port
    plane.supported_features()                  # from GatewayClass status, never assumed
    httpx.get(f"{plane.url}/...")               # through the Gateway
    plane.stop()                                # by pid

Traefik binds `GATEWAY_IP`, the node's address (port 80 is free there: pods listen on their own
addresses). Its API (`/api/http/services` shows the weights it applied) listens on the same address,
port `API_PORT`.
Traefik does not implement RequestMirror: read `supported_features()` before using a filter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Final

import httpx

from . import netns
from .handle import ClusterHandle, wait_for
from .paths import NODE_IP, REPO_ROOT, cache_dir, read_env_file

VERSIONS_FILE: Final = REPO_ROOT / "hack" / "cluster" / "gateway-versions.env"
BUILD_SCRIPT: Final = REPO_ROOT / "hack" / "cluster" / "build-traefik.sh"
GATEWAY_IP: Final = NODE_IP
WEB_PORT: Final = 80
API_PORT: Final = 9000
GATEWAY_CLASS: Final = "traefik"
CONTROLLER_NAME: Final = "traefik.io/gateway-controller"
GROUP: Final = "gateway.networking.k8s.io"


class GatewayError(RuntimeError):
    pass


def versions() -> dict[str, str]:
    """KEY=value lines of hack/cluster/gateway-versions.env (the build script sources the same file)."""
    return read_env_file(VERSIONS_FILE)


def traefik_binary() -> Path:
    override = os.environ.get("MODELDEPLOY_TRAEFIK")
    if override:
        return Path(override)
    return cache_dir() / "bin" / f"traefik-{versions()['TRAEFIK_VERSION']}" / "traefik"


def crd_dir() -> Path:
    return cache_dir() / f"gateway-api-{versions()['GATEWAY_API_VERSION']}" / "crds"


def prerequisites() -> list[str]:
    """Why the data plane cannot run here (empty when it can)."""
    how = f"run `bash {BUILD_SCRIPT.relative_to(REPO_ROOT)}` (`make install` does; needs Go and the module proxy)"
    problems = []
    binary = traefik_binary()
    if not os.access(binary, os.X_OK):
        problems.append(f"Traefik is not built: {binary} is missing; {how}")
    crds = crd_dir()
    if not sorted(crds.glob("*.yaml")):
        problems.append(f"the Gateway API CRDs are not fetched: {crds} is empty; {how}")
    return problems


class GatewayDataPlane:
    """The Gateway API CRDs, GatewayClass `traefik` and one Traefik process for a running local cluster."""

    def __init__(
        self,
        cluster: ClusterHandle,
        log_dir: Path,
        address: str = GATEWAY_IP,
        web_port: int = WEB_PORT,
        api_port: int = API_PORT,
    ) -> None:
        self.cluster = cluster
        self.log_path = log_dir / "traefik.log"
        self.address = address
        self.web_port = web_port
        self.api_port = api_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the Gateway's listener (Traefik's `web` entrypoint)."""
        return f"http://{self.address}:{self.web_port}" if self.web_port != 80 else f"http://{self.address}"

    @property
    def api_url(self) -> str:
        return f"http://{self.address}:{self.api_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # --- start ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        problems = prerequisites()
        if problems:
            raise GatewayError("; ".join(problems))
        here = netns.current_inode()
        want = netns.inode_of(netns.path_of(self.cluster.netns))
        if here != want:
            raise GatewayError(f"start Traefik from the main thread inside network namespace {self.cluster.netns}")
        deadline = time.monotonic() + timeout
        self.install_crds(timeout)
        self.cluster.apply(
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": CONTROLLER_NAME},
            },
            field_manager="modeldeploy-localcluster",
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**self.cluster.python_env()},
            )
        try:
            wait_for(
                lambda: self._alive() and self.gateway_class_accepted(),
                max(1.0, deadline - time.monotonic()),
                f"GatewayClass {GATEWAY_CLASS} Accepted by Traefik (log {self.log_path})",
            )
            wait_for(self._api_up, max(1.0, deadline - time.monotonic()), f"Traefik's API on {self.api_url}")
        except BaseException:
            self.stop()
            raise

    def argv(self) -> list[str]:
        return [
            str(traefik_binary()),
            f"--entryPoints.web.address={self.address}:{self.web_port}",
            f"--entryPoints.traefik.address={self.address}:{self.api_port}",
            "--api.insecure=true",
            "--ping=true",
            "--providers.kubernetesgateway=true",
            f"--providers.kubernetesgateway.statusaddress.ip={self.address}",
            # apply route changes as they come (default 2s): a rollback's weight 0 reaches requests at once
            "--providers.providersThrottleDuration=0s",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=INFO",
        ]

    def install_crds(self, timeout: float = 60.0) -> None:
        """Apply the standard-channel CRDs and wait until they are Established."""
        names = []
        for path in sorted(crd_dir().glob("*.yaml")):
            for obj in self.cluster.apply(
                path.read_text(), field_manager="modeldeploy-localcluster", force_conflicts=True
            ):
                names.append(obj["metadata"]["name"])
        self.cluster.kubectl(
            "wait", "--for=condition=Established", *(f"crd/{n}" for n in names), f"--timeout={int(timeout)}s"
        )

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise GatewayError(f"Traefik exited:\n{self.log_tail()}")
        return True

    def _api_up(self) -> bool:
        with httpx.Client(trust_env=False, timeout=2.0) as c:
            return c.get(f"{self.api_url}/ping").status_code == 200

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- what Traefik reports ---------------------------------------------------------------
    def gateway_class(self) -> dict[str, Any]:
        r = self.cluster.api.get(f"/apis/{GROUP}/v1/gatewayclasses/{GATEWAY_CLASS}")
        r.raise_for_status()
        obj: dict[str, Any] = r.json()
        return obj

    def gateway_class_accepted(self) -> bool:
        conds = (self.gateway_class().get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conds)

    def supported_features(self) -> set[str]:
        """GatewayClass `status.supportedFeatures` names (e.g. HTTPRouteRequestMirror when implemented)."""
        feats = (self.gateway_class().get("status") or {}).get("supportedFeatures") or []
        return {f["name"] if isinstance(f, dict) else str(f) for f in feats}

    def http_services(self) -> list[dict[str, Any]]:
        """Traefik's `/api/http/services`: the services it built, with weights and servers."""
        with httpx.Client(trust_env=False, timeout=5.0) as c:
            r = c.get(f"{self.api_url}/api/http/services")
            r.raise_for_status()
            out: list[dict[str, Any]] = r.json()
            return out

    # --- objects ----------------------------------------------------------------------------
    def create_gateway(self, name: str, namespace: str, timeout: float = 30.0) -> dict[str, Any]:
        """A Gateway of class `traefik` with one HTTP listener on the `web` entrypoint's port, accepting
        routes from every namespace; returns it once Programmed."""
        gw = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": self.web_port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
        self.cluster.apply(gw, field_manager="modeldeploy-localcluster")

        def programmed() -> dict[str, Any] | None:
            obj = self.cluster.get_json("gateway", name, "-n", namespace)
            conds = (obj.get("status") or {}).get("conditions") or []
            ok = any(c.get("type") == "Programmed" and c.get("status") == "True" for c in conds)
            return obj if ok else None

        return wait_for(programmed, timeout, f"Gateway {namespace}/{name} Programmed (Traefik log {self.log_path})")

    # --- stop -------------------------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM Traefik by its pid (its own process group), SIGKILL after `grace` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def __enter__(self) -> GatewayDataPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
