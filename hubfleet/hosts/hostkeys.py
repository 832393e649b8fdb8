"""Pinned SSH host keys: the repo's `config/known_hosts` is the only source of trust.

An unknown host key is accepted only when the operator passes its SHA256 fingerprint (or says
yes at a prompt), and is then pinned; a key that differs from the pinned one is refused (by
hubfleet.hosts.ssh).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from hubfleet.errors import HubfleetError
from hubfleet.files.atomic import write_atomically

if TYPE_CHECKING:
    import paramiko

# A host's public key, as other packages name it (they never import paramiko themselves).
HostKey: TypeAlias = "paramiko.PKey"


class HostKeyError(HubfleetError):
    """The host's key is unknown (and not accepted) or differs from the pinned one."""


def fingerprint(key: paramiko.PKey) -> str:
    """A host key's fingerprint as OpenSSH prints it: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """How known_hosts names a host: the address, or [address]:port for other ports."""
    return address if port == 22 else f"[{address}]:{port}"


# --- pinned host keys ---------------------------------------------------------------------


class PinnedHostKeys:
    """The repo's known_hosts file: the only host keys hubfleet trusts."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> paramiko.HostKeys:
        import paramiko

        keys = paramiko.HostKeys()
        if self.path.is_file():
            keys.load(str(self.path))
        return keys

    def pin(self, name: str, key: paramiko.PKey) -> None:
        """Add a host key line, keeping every other line; the file is replaced atomically."""
        with self._lock:
            current = self.path.read_text() if self.path.is_file() else ""
            if current and not current.endswith("\n"):
                current += "\n"
            line = f"{name} {key.get_name()} {key.get_base64()}\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, current + line)


@dataclass(frozen=True)
class HostKeyDecision:
    """How first contact with an unknown host key is settled."""

    accept: str | None = None  # a fingerprint the operator passed (--accept-host-key)
    prompt: Callable[[str], bool] | None = None  # asks the operator, when there is a terminal


def accept_unknown_key(
    label: str, pinned: PinnedHostKeys, name: str, decision: HostKeyDecision, key: paramiko.PKey
) -> None:
    """A host key not yet pinned: pinned when the operator accepted its fingerprint (flag or
    prompt), else refused naming the fingerprint and how to accept it."""
    seen = fingerprint(key)
    accepted = decision.accept == seen or (
        decision.accept is None
        and decision.prompt is not None
        and decision.prompt(f"{label}: unknown host key {seen} ({key.get_name()}). Trust it?")
    )
    if not accepted:
        hint = (
            f"the fingerprint given was {decision.accept}"
            if decision.accept
            else f"check it out of band, then rerun with --accept-host-key {seen}"
        )
        raise HostKeyError(f"{label}: unknown host key {seen}; {hint}")
    pinned.pin(name, key)
