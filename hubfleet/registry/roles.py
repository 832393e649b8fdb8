"""Which host plays which part, by the role its registry record gives it.

k3s: `server` (or `main`) hosts run the control plane, the first of them is the one agents join;
MicroK8s: exactly one `main` host, `worker`s join it. The member's entry point (where its
domain must resolve) is its first server or its main host.
"""

from __future__ import annotations

from hubfleet.errors import ConfigError
from hubfleet.registry.members import Host, Member

SERVER_ROLES = frozenset({"server", "main"})
MAIN, WORKER = "main", "worker"


def is_server(host: Host) -> bool:
    return host.role in SERVER_ROLES


def first_server(member: Member) -> Host:
    """The server agents join: the member's first host with the server role."""
    for host in member.hosts:
        if is_server(host):
            return host
    raise ConfigError(f"member {member.name}: no host has role server; k3s needs one")


def main_host(member: Member) -> Host:
    """The member's one host with role main (control plane and worker)."""
    mains = [host for host in member.hosts if host.role == MAIN]
    if len(mains) != 1:
        raise ConfigError(
            f"member {member.name}: a microk8s member needs exactly one host with role main, "
            f"not {len(mains)}"
        )
    return mains[0]


def workers(member: Member) -> list[Host]:
    """The hosts that join the main node as workers, in registry order."""
    return [host for host in member.hosts if host.role == WORKER]


# --- addons ---------------------------------------------------------------------------------


def entry_host(member: Member) -> tuple[Host, str]:
    """The host whose public address the member's domain resolves to, and how to name it."""
    if member.provider == "microk8s":
        return main_host(member), "main host"
    return first_server(member), "first server host"
