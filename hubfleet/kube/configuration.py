"""A Kubernetes client configuration from a member's in-memory kubeconfig.

Built here, field by field, instead of through the client's own kubeconfig loader: that loader
keeps a process-wide cache of the certificate files it writes, and clearing it between members
would mean reaching into the library's private state. Only what hubfleet's members use is
read: the server, its CA (data or file), TLS server name and verification, and the user's
client certificate, bearer token (or token file) or password. Credential plugins (exec,
auth-provider) are refused with a clear reason.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _entry(kubeconfig: Mapping[str, Any], section: str, name: Any) -> Mapping[str, Any]:
    for item in kubeconfig.get(section) or []:
        if isinstance(item, Mapping) and item.get("name") == name:
            found = item.get(section[:-1])
            if isinstance(found, Mapping):
                return found
    if section == "users" and not name:
        return {}
    raise ValueError(f"no {section[:-1]} named {name!r}")


def _file_or_data(entry: Mapping[str, Any], key: str, workdir: Path) -> str | None:
    """`key-data` (base64) written to a 0600 file in `workdir`, or the file `key` names."""
    data = entry.get(f"{key}-data")
    if data:
        path = workdir / key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64decode(str(data), validate=True))
        return str(path)
    named = entry.get(key)
    if named:
        if not Path(str(named)).is_file():
            raise ValueError(f"{key} {named} is not a file")
        return str(named)
    return None


def configuration_from_kubeconfig(
    kubeconfig: Mapping[str, Any], context: str, workdir: Path
) -> Any:
    """A fresh client configuration from the member's in-memory kubeconfig and context: the
    server, its CA, and the user's client certificate, token or password. Certificate files
    go in `workdir` (0600); the client's own loader, its process-wide caches and its global
    default configuration are not used."""
    from kubernetes import client

    ctx = _entry(kubeconfig, "contexts", context)
    cluster = _entry(kubeconfig, "clusters", ctx.get("cluster"))
    user = _entry(kubeconfig, "users", ctx.get("user"))
    if "exec" in user or "auth-provider" in user:
        raise ValueError(
            "its user runs a credential plugin (exec/auth-provider), which hubfleet does not run; store a token or a client certificate"
        )
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ValueError("its cluster has no server")
    configuration = client.Configuration()
    configuration.host = server
    configuration.retries = 1
    if server.startswith("https"):
        configuration.ssl_ca_cert = _file_or_data(cluster, "certificate-authority", workdir)
        configuration.cert_file = _file_or_data(user, "client-certificate", workdir)
        configuration.key_file = _file_or_data(user, "client-key", workdir)
    if "insecure-skip-tls-verify" in cluster:
        configuration.verify_ssl = not cluster["insecure-skip-tls-verify"]
    if cluster.get("tls-server-name"):
        configuration.tls_server_name = str(cluster["tls-server-name"])
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).read_text(encoding="utf-8").strip()
    if token:
        configuration.api_key["BearerToken"] = f"Bearer {token}"
    elif "username" in user and "password" in user:
        pair = f"{user['username']}:{user['password']}".encode()
        configuration.api_key["BearerToken"] = f"Basic {base64.b64encode(pair).decode()}"
    return configuration
