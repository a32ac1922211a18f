"""Certificates and keys for the local API server, made with the openssl command line.

A CA, a serving certificate for every name and address the API server answers on, one for the
kubelet, a client certificate the API server shows the kubelet (logs, exec, port-forward), an EC
key that signs service-account tokens, and random bearer tokens in a static token file: the
admin (`modeldeploy-admin` in `system:masters`), the node (`system:node:<name>` in
`system:nodes`, for the Node authorizer) and kube-proxy (`system:kube-proxy`, bound by the
default `system:node-proxier` ClusterRoleBinding).
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .paths import KUBERNETES_SERVICE_IP, NODE_IP, NODE_NAME


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    kubelet_cert: Path
    kubelet_key: Path
    sa_key: Path
    sa_pub: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path
    token: str
    node_token: str
    proxy_token: str
    token_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=path.parent)
    path.chmod(0o600)


def _issue(d: Path, name: str, cn: str, sans: list[str], *, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A serving certificate `name`.crt/.key signed by the CA."""
    key, cert, ext, csr = d / f"{name}.key", d / f"{name}.crt", d / f"{name}.ext", d / f"{name}.csr"
    _ec_key(key)
    ext.write_text(
        f"subjectAltName={','.join(sans)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr), cwd=d)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "3650", "-extfile", str(ext), "-out", str(cert), cwd=d,
    )  # fmt: skip
    return cert, key


def _client(d: Path, name: str, subject: str, *, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A client certificate `name`.crt/.key signed by the CA."""
    key, cert, ext, csr = d / f"{name}.key", d / f"{name}.crt", d / f"{name}.ext", d / f"{name}.csr"
    _ec_key(key)
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    )
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=d)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "3650", "-extfile", str(ext), "-out", str(cert), cwd=d,
    )  # fmt: skip
    return cert, key


def make(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    ca_key, ca_cert = d / "ca.key", d / "ca.crt"
    sa_key, sa_pub = d / "sa.key", d / "sa.pub"
    for k in (ca_key, sa_key):
        _ec_key(k)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=modeldeploy-local-ca", "-days", "3650",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", str(ca_cert), cwd=d,
    )  # fmt: skip
    sans = [
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
        "IP:127.0.0.1",
        f"IP:{NODE_IP}",
        f"IP:{KUBERNETES_SERVICE_IP}",
    ]
    server_cert, server_key = _issue(d, "apiserver", "kube-apiserver", sans, ca_cert=ca_cert, ca_key=ca_key)
    kubelet_sans = [f"DNS:{NODE_NAME}", f"IP:{NODE_IP}"]
    kubelet_cert, kubelet_key = _issue(d, "kubelet", NODE_NAME, kubelet_sans, ca_cert=ca_cert, ca_key=ca_key)
    client_cert, client_key = _client(
        d,
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        ca_cert=ca_cert,
        ca_key=ca_key,
    )
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub), cwd=d)
    token, node_token, proxy_token = (secrets.token_hex(24) for _ in range(3))
    token_file = d / "tokens.csv"
    token_file.write_text(
        f'{token},modeldeploy-admin,modeldeploy-admin,"system:masters"\n'
        f'{node_token},system:node:{NODE_NAME},system:node:{NODE_NAME},"system:nodes"\n'
        f"{proxy_token},system:kube-proxy,system:kube-proxy\n"
    )
    token_file.chmod(0o600)
    return Pki(
        ca_cert, ca_key, server_cert, server_key, kubelet_cert, kubelet_key, sa_key, sa_pub,
        client_cert, client_key, token, node_token, proxy_token, token_file,
    )  # fmt: skip
