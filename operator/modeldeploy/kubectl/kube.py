"""The API edge: ModelDeployments read and patched with the `kubernetes` client.

The kubeconfig is read as kubectl reads it, by the client's own loader: `--kubeconfig`, else
`$KUBECONFIG` (a colon-separated list, merged), else `~/.kube/config`, else the in-cluster service
account; `--context` picks a context; the namespace is `-n`, else the context's, else `default`.
Exec credential plugins, client certificates, tokens and auth-provider entries work as in kubectl.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client
from kubernetes import config as _config
from urllib3.exceptions import HTTPError

#: the loader's functions carry no annotations
config: Any = _config

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeError(Exception):
    """The API could not be reached, refused us, or the kubeconfig is unusable: exit code 5."""


class NotFoundError(Exception):
    """No such ModelDeployment (or the CRD is not installed): exit code 3."""


@dataclass(frozen=True)
class Target:
    namespace: str
    #: the kubeconfig user of the context, the fallback author
    user: str


def _message(e: Exception) -> str:
    body = getattr(e, "body", None)
    if body:
        try:
            doc = json.loads(body)
            if isinstance(doc, dict) and doc.get("message"):
                return str(doc["message"])
        except ValueError:
            pass
    reason = getattr(e, "reason", None)
    return str(reason or e).splitlines()[0][:300]


class Kube:
    """A connection to one cluster, as kubectl's flags name it."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        cfg = client.Configuration()
        try:
            in_cluster = (
                kubeconfig is None
                and "KUBECONFIG" not in os.environ
                and not Path("~/.kube/config").expanduser().exists()
                and "KUBERNETES_SERVICE_HOST" in os.environ
            )
            if in_cluster:
                config.load_incluster_config(client_configuration=cfg)
                ns = SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.exists() else "default"
                self.target = Target(namespace or ns, "serviceaccount")
            else:
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
                contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
                chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
                ctx = (chosen or {}).get("context") or {}
                self.target = Target(namespace or ctx.get("namespace") or "default", str(ctx.get("user") or "unknown"))
        except (config.ConfigException, OSError, ValueError, TypeError, KeyError) as e:
            raise KubeError(f"cannot use the kubeconfig: {e}") from None
        self.api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except client.ApiException as e:
            if e.status == 404:
                raise NotFoundError(f"{what}: not found ({_message(e)})") from None
            raise KubeError(f"{what}: HTTP {e.status}: {_message(e)}") from None
        except (HTTPError, OSError) as e:
            raise KubeError(f"{what}: cannot reach the API server: {_message(e)}") from None

    def get(self, name: str) -> dict[str, Any]:
        ns = self.target.namespace
        return cast(
            dict[str, Any],
            self._call(
                f"modeldeployment {ns}/{name}",
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                ns,
                PLURAL,
                name,
                _request_timeout=30,
            ),
        )

    def list(self, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            doc = self._call(
                "list modeldeployments",
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
                _request_timeout=30,
            )
        else:
            ns = self.target.namespace
            doc = self._call(
                f"list modeldeployments in {ns}",
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                ns,
                PLURAL,
                _request_timeout=30,
            )
        return list(doc.get("items") or [])

    def patch(self, name: str, body: dict[str, Any], field_manager: str) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of the ModelDeployment, as `kubectl patch --type merge`."""
        ns = self.target.namespace
        return cast(
            dict[str, Any],
            self._call(
                f"patch modeldeployment {ns}/{name}",
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                ns,
                PLURAL,
                name,
                body,
                field_manager=field_manager,
                _content_type="application/merge-patch+json",
                _request_timeout=30,
            ),
        )

    def whoami(self) -> str:
        """The user the API server authenticates us as (`kubectl auth whoami`), else the kubeconfig's user."""
        try:
            api = client.AuthenticationV1Api(self.api)
            review: Any = api.create_self_subject_review(client.V1SelfSubjectReview(), _request_timeout=30)
            name = review.status.user_info.username
            if name:
                return str(name)
        except (client.ApiException, HTTPError, OSError, AttributeError):
            pass  # an old or locked-down API server: the kubeconfig's user
        return self.target.user
