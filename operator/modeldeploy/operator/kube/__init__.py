"""The Kubernetes edge: credentials for every kubeconfig (tokens, token files, client certificates,
exec plugins, in-cluster), one async client with typed errors, and the merge patch the status write uses.

    config.py    Credentials, from_kubeconfig, in_cluster, load_credentials
    execauth.py  exec credential plugins (client.authentication.k8s.io v1/v1beta1), cached until expiry
    client.py    Kube: get, list, server-side apply, status merge patch, scale, delete, label, events
    errors.py    KubeError and one subclass per status the operator acts on (NotFound, Conflict, ...)
"""

from __future__ import annotations

from .client import Kube, group_path, merge_patch, now_rfc3339
from .config import SA_DIR, Credentials, from_kubeconfig, in_cluster, load_credentials
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    error_for,
)
from .execauth import ExecConfig, ExecCredential, ExecError, ExecProvider, parse_exec_credential

__all__ = [
    "SA_DIR",
    "BadRequest",
    "Conflict",
    "Credentials",
    "ExecConfig",
    "ExecCredential",
    "ExecError",
    "ExecProvider",
    "Forbidden",
    "Gone",
    "Invalid",
    "Kube",
    "KubeError",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "error_for",
    "from_kubeconfig",
    "group_path",
    "in_cluster",
    "load_credentials",
    "merge_patch",
    "now_rfc3339",
    "parse_exec_credential",
]
