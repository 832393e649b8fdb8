"""A member's cluster credentials, held in memory and passed down explicitly.

No task reads ~/.kube/config, KUBECONFIG or a default context, and none changes os.environ:
the kubeconfig a member's deploy uses is the one decrypted from its own secrets file, and the
context is the one that file names. Two members can therefore be deployed in one process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hubfleet.errors import SecretsError


@dataclass(frozen=True)
class ClusterCredentials:
    """The kubeconfig of one member, decrypted in memory, and the context to use in it."""

    member: str
    kubeconfig: Mapping[str, Any]
    context: str
    source: str  # the file it was decrypted from, for messages
    # when the kubeconfig's credential stops working (a GKE access token); None: not known
    expires_at: dt.datetime | None = None

    def kubeconfig_yaml(self) -> str:
        """The kubeconfig as YAML text, for engines that take it inline."""
        return yaml.safe_dump(dict(self.kubeconfig), sort_keys=False)

    @property
    def server(self) -> str:
        """The API server address of the selected context's cluster."""
        contexts = {c["name"]: c["context"] for c in self.kubeconfig.get("contexts", [])}
        clusters = {c["name"]: c["cluster"] for c in self.kubeconfig.get("clusters", [])}
        cluster = clusters.get(contexts[self.context]["cluster"], {})
        return str(cluster.get("server", "?"))

    def __repr__(self) -> str:  # never show credential material in logs or tracebacks
        return f"ClusterCredentials(member={self.member!r}, context={self.context!r}, server={self.server!r})"


def credentials_from_kubeconfig(
    member: str, kubeconfig: Any, source: str, context: str | None = None
) -> ClusterCredentials:
    """Check a decrypted kubeconfig's shape and pick its context (the one named, else current)."""
    if not isinstance(kubeconfig, dict) or not isinstance(kubeconfig.get("contexts"), list):
        raise SecretsError(f"{source}: not a kubeconfig (no contexts list); member {member}")
    names = [c.get("name") for c in kubeconfig["contexts"] if isinstance(c, dict)]
    chosen = context or kubeconfig.get("current-context")
    if not chosen:
        raise SecretsError(
            f"{source}: no current-context and the registry names none for member {member}"
        )
    if chosen not in names:
        raise SecretsError(
            f"{source}: context {chosen!r} not found (has: {', '.join(map(str, names))})"
        )
    ctx = next(c["context"] for c in kubeconfig["contexts"] if c.get("name") == chosen)
    clusters = {c.get("name") for c in kubeconfig.get("clusters", []) if isinstance(c, dict)}
    users = {u.get("name") for u in kubeconfig.get("users", []) if isinstance(u, dict)}
    if ctx.get("cluster") not in clusters:
        raise SecretsError(
            f"{source}: context {chosen!r} names cluster {ctx.get('cluster')!r}, which is not defined"
        )
    if ctx.get("user") and ctx.get("user") not in users:
        raise SecretsError(
            f"{source}: context {chosen!r} names user {ctx.get('user')!r}, which is not defined"
        )
    return ClusterCredentials(member=member, kubeconfig=kubeconfig, context=chosen, source=source)


@contextlib.contextmanager
def kubeconfig_file(content: str) -> Iterator[Path]:
    """The kubeconfig as a 0600 file in a fresh 0700 directory, removed afterwards.

    Only for tools that insist on a file (the helm CLI, the Helm SDK's client); removed on
    exit and on failure alike.
    """
    directory = Path(tempfile.mkdtemp(prefix="hubfleet-kube-"))
    try:
        os.chmod(directory, 0o700)
        path = directory / "kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)
