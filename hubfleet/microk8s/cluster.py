"""A MicroK8s cluster's joins and what it reports, as data: status, join tickets, nodes, GPUs.

Pure: no I/O. This builds the `add-node` and `join` commands and picks the join URL from an
`add-node` ticket (at the main node's VPN address with WireGuard), and reads `microk8s status
--format yaml`, `add-node --format json`, `join` output, `kubectl get nodes -o json` and
`nvidia-smi`. The member's settings and main node are in hubfleet.microk8s.settings.

A join ticket holds a secret (the token): its repr hides it, and the commands built from it
must be logged through `redact`.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import NamedTuple

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.yamlfile import parse_bounded
from hubfleet.hosts.addresses import address_with_port
from hubfleet.kube import nodes
from hubfleet.kube.nodes import NodeStatus
from hubfleet.microk8s import wireguard
from hubfleet.microk8s.settings import DEFAULT_TOKEN_TTL
from hubfleet.registry.members import Host, Member
from hubfleet.registry.roles import main_host

CLUSTER_AGENT_PORT = 25000
GPU_QUERY_COMMAND = "nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader"
GPU_RESOURCE = "nvidia.com/gpu"

JOINED = "Successfully joined the cluster"
NOT_RUNNING = "microk8s is not running"
WORKER_NOTICE = "acting as a node in a cluster"


# --- records --------------------------------------------------------------------------------


class Status(NamedTuple):
    """`microk8s status --format yaml`: is it running, and which addons are enabled."""

    running: bool
    enabled: frozenset[str]


@dataclass(frozen=True)
class JoinTicket:
    """One `microk8s add-node` token and the URLs it can be used at (one per main-node address).

    The token is a secret, valid once: the repr shows the addresses only.
    """

    token: str
    urls: tuple[str, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(url_address(url) for url in self.urls)

    def __repr__(self) -> str:
        return f"JoinTicket(token=<hidden>, addresses={self.addresses!r})"


@dataclass(frozen=True)
class JoinResult:
    """What `microk8s join` said: joined, or why not (and whether the token was refused)."""

    joined: bool
    token_rejected: bool
    message: str


@dataclass(frozen=True)
class Gpu:
    """One GPU as `nvidia-smi --query-gpu=index,name,driver_version` lists it."""

    index: int
    name: str
    driver: str


# --- status ---------------------------------------------------------------------------------


def joined_as_worker(output: str) -> bool:
    """Whether `microk8s status` says this host is a worker joined to a cluster."""
    return WORKER_NOTICE in output


def parse_status(output: str) -> Status:
    """`microk8s status --format yaml` output (`microk8s: {running: True}`, `addons: [...]`)."""
    text = output.strip()
    if joined_as_worker(text):
        raise HubfleetError("microk8s status: this host is a joined worker; ask the main node")
    if text.startswith(NOT_RUNNING):
        return Status(False, frozenset())
    try:
        data = parse_bounded(text, "microk8s status")
    except ConfigError:
        data = None
    node = data.get("microk8s") if isinstance(data, dict) else None
    if not isinstance(node, dict) or "running" not in node:
        first = (text.splitlines() or ["no output"])[0]
        raise HubfleetError(f"cannot read microk8s status from: {first}")
    addons = data.get("addons") if isinstance(data, dict) else None
    enabled = frozenset(
        str(a["name"])
        for a in (addons if isinstance(addons, list) else [])
        if isinstance(a, dict) and "name" in a and a.get("status") == "enabled"
    )
    return Status(node["running"] is True, enabled)


# --- joins ----------------------------------------------------------------------------------

_EXPANSION = re.compile(r'^"\$\w+"$')
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9._:/\[\]-]+$")
_URL = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^/:\s]+):(\d+)/(\S+)$")


def add_node_command(token_ttl: int = DEFAULT_TOKEN_TTL) -> str:
    """A fresh single-use join token, as JSON, valid `token_ttl` seconds."""
    return f"microk8s add-node --format json --token-ttl {int(token_ttl)}"


def join_address(member: Member, main: Host | None = None) -> str:
    """The main node's address workers join at: its VPN address with WireGuard, else its
    address (what the cluster uses for it)."""
    return wireguard.cluster_address(member, main or main_host(member))


def url_address(url: str) -> str:
    """The address in a join URL: `10.0.0.1:25000/<token>` -> `10.0.0.1` (IPv6 unbracketed)."""
    match = _URL.match(url)
    if not match:
        raise HubfleetError("a join URL is not <address>:<port>/<token>")
    return match.group(1).strip("[]")


def parse_add_node(json_text: str) -> JoinTicket:
    """`microk8s add-node --format json` output: `{"token": ..., "urls": [...]}`.

    Errors never quote the output: it holds the token.
    """
    try:
        data = parse_json(json_text, "microk8s add-node")
    except ConfigError:
        raise HubfleetError("microk8s add-node did not print JSON") from None
    token = data.get("token") if isinstance(data, dict) else None
    urls = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or not isinstance(urls, list) or not urls:
        raise HubfleetError("microk8s add-node printed no token and URLs")
    for url in urls:
        if not isinstance(url, str) or not url.endswith("/" + token):
            raise HubfleetError("microk8s add-node printed a URL without its token")
        if not _SHELL_SAFE.match(url):
            raise HubfleetError("microk8s add-node printed a URL with unexpected characters")
        url_address(url)
    return JoinTicket(token, tuple(urls))


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def join_url(ticket: JoinTicket, prefer: str) -> str:
    """The ticket's URL at `prefer`, the main node's VPN or LAN address.

    `add-node` lists one URL per address of the main node's interfaces; an address not among
    them (a DNS name, a forwarded port's address) gets the same token at the same port.
    """
    for url in ticket.urls:
        if _same_address(url_address(url), prefer):
            return url
    first = _URL.match(ticket.urls[0]) if ticket.urls else None
    port = int(first.group(2)) if first else CLUSTER_AGENT_PORT
    return f"{address_with_port(prefer, port)}/{ticket.token}"


def join_command(url: str, worker: bool = True) -> str:
    """`microk8s join <url> [--worker]`; `url` may be a shell expansion such as `"$url"` (read
    from stdin, so the command sent over SSH holds no token). A URL holds the token: log the
    command through `redact`."""
    shown = url if _EXPANSION.match(url) else shlex.quote(url)
    return f"microk8s join {shown}" + (" --worker" if worker else "")


def redact(text: str, ticket: JoinTicket) -> str:
    """`text` with the ticket's token replaced, fit for logs."""
    return text.replace(ticket.token, "<token>")


def parse_join_output(output: str) -> JoinResult:
    """`microk8s join` output: joined, or the reason (a refused token needs a fresh one)."""
    if JOINED in output:
        return JoinResult(True, False, JOINED + ".")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    message = lines[-1] if lines else "microk8s join printed nothing"
    return JoinResult(False, "invalid token" in output.lower(), message)


# --- nodes and GPUs -------------------------------------------------------------------------


def parse_nodes(output: str) -> list[NodeStatus]:
    """The nodes in `microk8s kubectl get nodes -o json` output."""
    return nodes.parse_nodes(output, "microk8s kubectl get nodes")


def gpu_allocatable(output: str) -> dict[str, int]:
    """Allocatable nvidia.com/gpu per node name, from `kubectl get nodes -o json` (0 when none)."""
    try:
        data = parse_json(output, "microk8s kubectl get nodes")
    except ConfigError as err:
        raise HubfleetError(f"microk8s kubectl get nodes did not print JSON ({err})") from None
    found: dict[str, int] = {}
    for item in data.get("items", []) if isinstance(data, dict) else []:
        name = str(item.get("metadata", {}).get("name", ""))
        value = str(item.get("status", {}).get("allocatable", {}).get(GPU_RESOURCE, "0"))
        found[name] = int(value) if value.isdigit() else 0
    return found


def verify_problems(member: Member, nodes: list[NodeStatus]) -> list[str]:
    """What is wrong with the cluster's nodes: not Ready, or not one per host of the record."""
    problems = [f"node {n.name} is not Ready" for n in nodes if not n.ready]
    if len(nodes) != len(member.hosts):
        problems.append(
            f"{len(nodes)} nodes in the cluster, {len(member.hosts)} hosts in the record"
        )
    return problems


def parse_gpus(output: str) -> list[Gpu]:
    """The GPUs in `nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader`."""
    gpus = []
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and fields[0].isdigit():
            gpus.append(Gpu(int(fields[0]), fields[1], fields[2]))
    return gpus
