"""How k3s gets onto a host, as data: the install command and whether a host needs it.

Pure: no I/O. From the member record and one of its hosts this builds the install script
invocation (download, pinned version or channel, air-gapped, agent join with the cluster token
kept off the command line), parses `k3s --version`, orders k3s versions, and decides whether a
host needs an install, an upgrade or only a restart. The files a host gets before the install
are in `hubfleet.k3s.config`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.k3s.config import BINARY_PATH, TOKEN_PATH, server_url
from hubfleet.registry.members import Host, Member
from hubfleet.registry.roles import first_server, is_server

AIRGAP_IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"
AIRGAP_INSTALL_SCRIPT_PATH = "/usr/local/bin/k3s-install.sh"

DEFAULT_CHANNEL = "stable"
INSTALL_URL = "https://get.k3s.io"


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """An air-gap artefact to copy from the deploy repo to a host."""

    source: str  # relative to the deploy repo root
    destination: str
    mode: int


@dataclass(frozen=True)
class InstallCommand:
    """How to run the k3s install script on one host.

    `script` and `env` are safe to log. `secret_env` (the join token) must never be on a
    command line: run `command` with `stdin` as its standard input, and it reads the secrets
    into exported variables before running `script`.
    """

    script: str
    env: Mapping[str, str]
    secret_env: Mapping[str, str] = field(default_factory=dict)
    uploads: tuple[Upload, ...] = ()

    @property
    def command(self) -> str:
        """The whole command for `sh -c`: read `secret_env` from stdin, then run `script`."""
        reads = "".join(f"IFS= read -r {name}; export {name}; " for name in self.secret_env)
        return reads + self.script

    @property
    def stdin(self) -> str:
        """The secret values, one a line, in the order `command` reads them."""
        return "".join(f"{value}\n" for value in self.secret_env.values())

    def __repr__(self) -> str:  # never show the token in logs or tracebacks
        hidden = ", ".join(f"{name}=<hidden>" for name in self.secret_env)
        return f"InstallCommand(script={self.script!r}, secret_env=[{hidden}])"


@dataclass(frozen=True)
class InstallDecision:
    """What a host's k3s needs: a fresh install, an upgrade, or only a restart."""

    action: Literal["install", "upgrade", "restart"]
    reason: str


# --- install ----------------------------------------------------------------------------------


def wanted_version(member: Member) -> str | None:
    """The pinned k3s version, or None when the member follows a channel."""
    version = member.k3s.get("version")
    return str(version) if version else None


MIN_TOKEN_LENGTH = 16


def check_token(token: str) -> str:
    """A cluster token, checked and stripped: k3s takes any string as `token`; hubfleet wants
    the server's full form (K10<ca-hash>::server:<secret>, as in its token file) or a secret of
    16 or more characters, without spaces (it travels as one line on stdin)."""
    value = token.strip()
    if len(value) < MIN_TOKEN_LENGTH or any(ch.isspace() for ch in value):
        raise HubfleetError(
            f"not a usable k3s join token (K10<ca-hash>::server:<secret> as in {TOKEN_PATH}, or "
            f"{MIN_TOKEN_LENGTH}+ characters without spaces)"
        )
    return value


def install_command(member: Member, host: Host, token: str | None = None) -> InstallCommand:
    """The install script invocation for this host.

    The member's first server installs plainly (its token is in its config file); agents (and
    further servers) join it, with K3S_URL and the member's cluster token, which travels in
    `secret_env` only. A pinned `k3s.version`
    wins over the channel (default stable). With `k3s.airgap` nothing is downloaded: the
    binary, images and install script are uploaded first (see `uploads`).
    """
    settings = member.k3s
    env: dict[str, str] = {"INSTALL_K3S_EXEC": "server" if is_server(host) else "agent"}
    secret_env: dict[str, str] = {}
    joining = host != first_server(member)
    if joining:
        if token is None:
            raise HubfleetError(
                f"member {member.name}: host {host.address} joins the cluster and needs the "
                "member's cluster token"
            )
        env["K3S_URL"] = server_url(first_server(member).address)
        secret_env["K3S_TOKEN"] = check_token(token)
    airgap = settings.get("airgap")
    if airgap:
        env["INSTALL_K3S_SKIP_DOWNLOAD"] = "true"
        uploads = [Upload(str(airgap["binary"]), BINARY_PATH, 0o755)]
        if airgap.get("images"):
            name = PurePosixPath(str(airgap["images"])).name
            uploads.append(Upload(str(airgap["images"]), f"{AIRGAP_IMAGES_DIR}/{name}", 0o644))
        uploads.append(Upload(str(airgap["install_script"]), AIRGAP_INSTALL_SCRIPT_PATH, 0o755))
        script = f"{_assignments(env)} sh {AIRGAP_INSTALL_SCRIPT_PATH}"
        return InstallCommand(script, env, secret_env, tuple(uploads))
    version = wanted_version(member)
    if version:
        env["INSTALL_K3S_VERSION"] = version
    else:
        env["INSTALL_K3S_CHANNEL"] = str(settings.get("channel") or DEFAULT_CHANNEL)
    pipeline = f"curl -sfL {INSTALL_URL} | sh -s -"
    script = f"{_assignments(env)} bash -o pipefail -c {shlex.quote(pipeline)}"
    return InstallCommand(script, env, secret_env)


def _assignments(env: Mapping[str, str]) -> str:
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())


# --- versions and decisions -----------------------------------------------------------------

_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-rc(\d+))?\+k3s(\d+)$")


def version_key(version: str) -> tuple[int, int, int, float, int]:
    """A sortable key for a k3s version such as v1.32.5+k3s1 (a release candidate sorts first)."""
    match = _VERSION.match(version)
    if not match:
        raise HubfleetError(f"{version!r} is not a k3s version (like v1.32.5+k3s1)")
    major, minor, patch, rc, build = match.groups()
    return int(major), int(minor), int(patch), int(rc) if rc else float("inf"), int(build)


def parse_version(output: str) -> str:
    """The version from `k3s --version` output (`k3s version v1.32.5+k3s1 (8e8f2a47)`)."""
    match = re.search(r"^k3s version (v\S+)", output, re.MULTILINE)
    if not match:
        first = (output.strip().splitlines() or ["no output"])[0]
        raise HubfleetError(f"cannot read the k3s version from: {first}")
    return match.group(1)


def needs_install(
    installed_version: str | None, wanted: str | None, config_changed: bool
) -> InstallDecision | None:
    """What to do with a host's k3s, or None when nothing.

    Absent: install. A pinned version (`wanted`) that differs: upgrade to it; an older one is
    refused, k3s cannot be downgraded. `wanted` None (a channel) never reinstalls a present
    k3s: the upgrade controller keeps it current. Otherwise a changed config needs a restart,
    and only then; an install restarts k3s anyway.
    """
    if installed_version is None:
        target = wanted or "the channel's current release"
        return InstallDecision("install", f"k3s is not installed; installing {target}")
    if wanted is not None and installed_version != wanted:
        if version_key(installed_version) > version_key(wanted):
            raise ConfigError(
                f"k3s {installed_version} is installed, newer than the pinned {wanted}; k3s "
                f"cannot be downgraded: pin {installed_version} or later as k3s.version in "
                "config/federation.yaml"
            )
        return InstallDecision("upgrade", f"k3s {installed_version} installed, {wanted} wanted")
    if config_changed:
        return InstallDecision("restart", "k3s configuration changed")
    return None
