"""What a MicroK8s member should look like, as data: snap commands, addons, joins, readings.

Pure: no I/O. From the member record this decides the snap channel and refresh hold, the
addons to enable on the main node (dependencies first; MetalLB apart, after the joins, always
with its range), the join URL to use from an `add-node` ticket, the API server certificate's
extra SANs, the ufw rules MicroK8s needs and, with WireGuard, the kubelet's `--node-ip` and
Calico's address autodetection. It also reads `snap list`, `microk8s status
--format yaml`, `add-node --format json`, `join` output, `kubectl get nodes -o json`,
calico-node's environment and `nvidia-smi`. The step runner applies all of this over SSH; WireGuard is in hubfleet.wireguard.

A join ticket holds a secret (the token): its repr hides it, and the commands built from it
must be logged through `redact`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import yaml

from hubfleet import k3s, wireguard
from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.registry import Host, Member

SNAP = "microk8s"
API_PORT = 16443
CLUSTER_AGENT_PORT = 25000
CSR_TEMPLATE_PATH = "/var/snap/microk8s/current/certs/csr.conf.template"
KUBELET_ARGS_PATH = "/var/snap/microk8s/current/args/kubelet"
KUBELITE_RESTART_COMMAND = "snap restart microk8s.daemon-kubelite"
CALICO_AUTODETECTION = "IP_AUTODETECTION_METHOD"
CALICO_INTERNAL_IP = "kubernetes-internal-ip"
GPU_QUERY_COMMAND = "nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader"

MAIN, WORKER = "main", "worker"
DEFAULT_ADDONS = ("dns", "helm3", "hostpath-storage", "community", "dashboard")
DEFAULT_REFRESH_HOLD = "forever"
DEFAULT_TOKEN_TTL = 120
METALLB = "metallb"
GPU_ADDON = "nvidia"
GPU_RESOURCE = "nvidia.com/gpu"

# Addons that need others enabled before them (the MicroK8s docs: nvidia needs dns and helm3).
ADDON_NEEDS: Mapping[str, tuple[str, ...]] = {GPU_ADDON: ("dns", "helm3")}

JOINED = "Successfully joined the cluster"
NOT_RUNNING = "microk8s is not running"
WORKER_NOTICE = "acting as a node in a cluster"


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """A member's `microk8s` block with the defaults filled in."""

    channel: str
    addons: tuple[str, ...]
    metallb: str
    gpu: bool
    refresh_hold: str | None  # None when a refresh window is set instead
    refresh_window: str | None
    token_ttl: int


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
class SnapState:
    """The installed microk8s snap as `snap list microk8s` shows it."""

    version: str
    revision: str
    tracking: str
    held: bool


@dataclass(frozen=True)
class SnapDecision:
    """What the snap needs: installing, or refreshing to the pinned channel."""

    action: Literal["install", "refresh"]
    command: str
    reason: str


@dataclass(frozen=True)
class Gpu:
    """One GPU as `nvidia-smi --query-gpu=index,name,driver_version` lists it."""

    index: int
    name: str
    driver: str


# --- settings, hosts and roles --------------------------------------------------------------


def settings(member: Member) -> Settings:
    """The member's MicroK8s settings; a missing block or required key is a ConfigError."""
    raw = member.microk8s
    if not raw:
        raise ConfigError(f"member {member.name}: no microk8s settings in config/federation.yaml")
    for key in ("channel", "metallb"):
        if not raw.get(key):
            raise ConfigError(f"member {member.name}: microk8s.{key} is required")
    window = raw.get("refresh_window")
    hold = raw.get("refresh_hold") or (None if window else DEFAULT_REFRESH_HOLD)
    return Settings(
        channel=str(raw["channel"]),
        addons=tuple(str(a) for a in raw.get("addons", DEFAULT_ADDONS)),
        metallb=str(raw["metallb"]),
        gpu=bool(raw.get("gpu", False)),
        refresh_hold=str(hold) if hold else None,
        refresh_window=str(window) if window else None,
        token_ttl=int(raw.get("token_ttl", DEFAULT_TOKEN_TTL)),
    )


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


def addon_name(addon: str) -> str:
    """The addon's name as `microk8s status` shows it: `core/dns:1.1.1.1` -> `dns`."""
    return addon.split(":", 1)[0].rsplit("/", 1)[-1]


def wanted_addons(member: Member) -> list[str]:
    """The addons to enable on the main node, in order: each after the addons it needs.

    The member's list (or the default), plus nvidia when `gpu` is true; an addon's missing
    dependencies are added. MetalLB is not here: it is enabled after the joins, with its range.
    """
    s = settings(member)
    listed = list(s.addons)
    if s.gpu and GPU_ADDON not in {addon_name(a) for a in listed}:
        listed.append(GPU_ADDON)
    if METALLB in {addon_name(a) for a in listed}:
        raise ConfigError(
            f"member {member.name}: remove metallb from microk8s.addons; it is enabled after "
            "the workers join, with the range in microk8s.metallb"
        )
    ordered: list[str] = []

    def add(addon: str) -> None:
        if addon_name(addon) in {addon_name(a) for a in ordered}:
            return
        for need in ADDON_NEEDS.get(addon_name(addon), ()):
            add(next((a for a in listed if addon_name(a) == need), need))
        ordered.append(addon)

    for addon in listed:
        add(addon)
    return ordered


def missing_addons(member: Member, enabled: Iterable[str]) -> list[str]:
    """The wanted addons not yet enabled, in order; enabled ones are left alone."""
    have = {addon_name(a) for a in enabled}
    return [a for a in wanted_addons(member) if addon_name(a) not in have]


def enable_command(addon: str) -> str:
    """`microk8s enable <addon>`; a bare metallb is refused, since it would prompt for a range."""
    if addon_name(addon) == METALLB and ":" not in addon:
        raise HubfleetError("metallb needs its address range (metallb:<range>); it would prompt")
    return f"microk8s enable {shlex.quote(addon)}"


def _check_pool(member: Member, pool: str) -> None:
    for part in pool.split(","):
        try:
            if "/" in part:
                ipaddress.ip_network(part, strict=False)
                continue
            first, _, last = part.partition("-")
            start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
        except ValueError:
            raise ConfigError(
                f"member {member.name}: microk8s.metallb {part!r} is not A.B.C.D-E.F.G.H or a CIDR"
            ) from None
        if start.version != end.version or int(start) > int(end):
            raise ConfigError(
                f"member {member.name}: microk8s.metallb {part!r} ends before it starts"
            )


def metallb_argument(member: Member) -> str:
    """`metallb:<range>` from the record's microk8s.metallb, checked."""
    pool = settings(member).metallb
    _check_pool(member, pool)
    return f"{METALLB}:{pool}"


# --- snap -----------------------------------------------------------------------------------


def snap_install_command(channel: str) -> str:
    return f"snap install {SNAP} --classic --channel={shlex.quote(channel)}"


def snap_refresh_command(channel: str) -> str:
    return f"snap refresh {SNAP} --channel={shlex.quote(channel)}"


def refresh_hold_command(hold: str = DEFAULT_REFRESH_HOLD) -> str:
    """Hold automatic refreshes of microk8s: `forever` or a duration such as 720h."""
    return f"snap refresh --hold={shlex.quote(hold)} {SNAP}"


def refresh_window_command(window: str) -> str:
    """Let snapd refresh only in this window (refresh.timer is system-wide: every snap)."""
    return f"snap set system refresh.timer={shlex.quote(window)}"


def parse_snap_list(output: str) -> SnapState | None:
    """`snap list microk8s` output; None when the snap is not installed."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == SNAP:
            notes = fields[5].split(",") if len(fields) >= 6 else []
            return SnapState(fields[1], fields[2], fields[3], "held" in notes)
    return None


def _track(channel: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)/", channel)
    return (int(match.group(1)), int(match.group(2))) if match else None


def snap_decision(state: SnapState | None, channel: str) -> SnapDecision | None:
    """Install, refresh to the pinned channel, or None when the snap already tracks it.

    Kubernetes goes up one minor version at a time and never down: a pin further ahead or
    behind the installed track is refused, naming the channel to pin instead.
    """
    if state is None:
        return SnapDecision("install", snap_install_command(channel), f"installing {channel}")
    if state.tracking == channel:
        return None
    have, want = _track(state.tracking), _track(channel)
    if have and want and have[0] == want[0]:
        if want[1] < have[1]:
            raise ConfigError(
                f"microk8s tracks {state.tracking}, newer than the pinned {channel}; MicroK8s "
                f"cannot be downgraded: pin {state.tracking} or later"
            )
        if want[1] > have[1] + 1:
            step = f"{have[0]}.{have[1] + 1}/{channel.split('/', 1)[1]}"
            raise ConfigError(
                f"microk8s tracks {state.tracking}; upgrade one minor version at a time: "
                f"pin {step} first"
            )
    reason = f"tracking {state.tracking}, {channel} wanted"
    return SnapDecision("refresh", snap_refresh_command(channel), reason)


def refresh_commands(
    member: Member, state: SnapState, refresh_timer: str | None = None
) -> list[str]:
    """The commands that make snapd leave microk8s alone as the record says ([] when it does).

    A hold already in place is kept as it is (renewing a duration every run would never settle);
    a window is set only when `refresh_timer` (`snap get system refresh.timer`) differs.
    """
    s = settings(member)
    if s.refresh_window:
        unhold = [f"snap refresh --unhold {SNAP}"] if state.held else []
        timer = (
            [] if refresh_timer == s.refresh_window else [refresh_window_command(s.refresh_window)]
        )
        return [*unhold, *timer]
    return [] if state.held else [refresh_hold_command(s.refresh_hold or DEFAULT_REFRESH_HOLD)]


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
        data = yaml.safe_load(text)
    except yaml.YAMLError:
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
        data = json.loads(json_text)
    except ValueError:
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
    return f"{k3s.address_with_port(prefer, port)}/{ticket.token}"


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


def parse_nodes(output: str) -> list[k3s.NodeStatus]:
    """The nodes in `microk8s kubectl get nodes -o json` output (read as k3s.parse_nodes does)."""
    try:
        json.loads(output)
    except ValueError as err:
        raise HubfleetError(f"microk8s kubectl get nodes did not print JSON ({err})") from None
    return k3s.parse_nodes(output)


def gpu_allocatable(output: str) -> dict[str, int]:
    """Allocatable nvidia.com/gpu per node name, from `kubectl get nodes -o json` (0 when none)."""
    try:
        data = json.loads(output)
    except ValueError as err:
        raise HubfleetError(f"microk8s kubectl get nodes did not print JSON ({err})") from None
    found: dict[str, int] = {}
    for item in data.get("items", []) if isinstance(data, dict) else []:
        name = str(item.get("metadata", {}).get("name", ""))
        value = str(item.get("status", {}).get("allocatable", {}).get(GPU_RESOURCE, "0"))
        found[name] = int(value) if value.isdigit() else 0
    return found


def verify_problems(member: Member, nodes: list[k3s.NodeStatus]) -> list[str]:
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


# --- API server address and certificate -----------------------------------------------------


def api_url(address: str) -> str:
    """The kubeconfig server URL at `address`: https://<address>:16443."""
    return k3s.server_url(address, API_PORT)


def api_address(member: Member, main: Host | None = None) -> str:
    """The address clients use for the API server: the main host's public address if it has
    one, else its VPN address when the member has WireGuard, else its address."""
    main = main or main_host(member)
    return main.public_address or wireguard.cluster_address(member, main)


def refresh_certs_command() -> str:
    """Reissue the API server certificate from csr.conf.template (after adding SANs)."""
    return "microk8s refresh-certs --cert server.crt"


_SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*$")
_SAN = re.compile(r"^\s*(DNS|IP)\.(\d+)\s*=\s*(\S+)\s*$")


def _alt_names(lines: list[str]) -> tuple[int, int]:
    """The index of the `[ alt_names ]` header and the index where its section ends."""
    headers = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _SECTION.match(line))]
    start = next((i for i, name in headers if name == "alt_names"), None)
    if start is None:
        raise HubfleetError("csr.conf.template has no [ alt_names ] section")
    end = next((i for i in range(start + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    return start, end


def _san(address: str) -> tuple[str, str]:
    try:
        return "IP", str(ipaddress.ip_address(address))
    except ValueError:
        return "DNS", address.lower()


def _sans(lines: list[str]) -> list[tuple[str, int, str]]:
    start, end = _alt_names(lines)
    found = []
    for line in lines[start + 1 : end]:
        if match := _SAN.match(line):
            kind, value = match.group(1), match.group(3)
            found.append(
                (kind, int(match.group(2)), _san(value)[1] if kind == "IP" else value.lower())
            )
    return found


def needs_san(template_text: str, address: str) -> bool:
    """Whether `address` is not yet among the template's alt_names."""
    kind, value = _san(address)
    return all((k, v) != (kind, value) for k, _, v in _sans(template_text.splitlines()))


def csr_template_with_sans(template_text: str, addresses: Iterable[str]) -> str:
    """The template with an `IP.n`/`DNS.n` line for each address not already in `[ alt_names ]`.

    New lines go before MicroK8s's `#MOREIPS` marker (kept: MicroK8s puts the node's own IPs
    there), or at the end of the section, numbered after the highest existing entry.
    """
    lines = template_text.splitlines()
    sans = _sans(lines)
    have = {(k, v) for k, _, v in sans}
    last = {kind: max((n for k, n, _ in sans if k == kind), default=0) for kind in ("DNS", "IP")}
    added = []
    for address in addresses:
        kind, value = _san(address)
        if (kind, value) in have:
            continue
        last[kind] += 1
        have.add((kind, value))
        added.append(f"{kind}.{last[kind]} = {value}")
    if not added:
        return template_text
    start, end = _alt_names(lines)
    marker = next((i for i in range(start + 1, end) if lines[i].strip() == "#MOREIPS"), None)
    if marker is None:
        marker = end
        while marker > start + 1 and not lines[marker - 1].strip():
            marker -= 1
    lines[marker:marker] = added
    return "\n".join(lines) + ("\n" if template_text.endswith("\n") else "")


# --- the cluster over WireGuard: kubelet's node IP, Calico's autodetection ----------------

_NODE_IP = re.compile(r"^\s*--node-ip(=|\s|$)")


def kubelet_args_with_node_ip(text: str, address: str) -> str:
    """The kubelet's args file (one flag a line) with exactly one `--node-ip=<address>`: it
    takes the place of the first `--node-ip` line (`=` or a space), later ones are dropped, and
    without one it goes at the end. Every other line stays as it was, in order."""
    wanted = f"--node-ip={address}"
    lines: list[str] = []
    placed = False
    for line in text.splitlines():
        if _NODE_IP.match(line):
            if not placed:
                lines.append(wanted)
                placed = True
            continue
        lines.append(line)
    if not placed:
        lines.append(wanted)
    return "\n".join(lines) + "\n"


def calico_env_command() -> str:
    """calico-node's environment as JSON (its one container): `[{"name": ..., "value": ...}]`."""
    return (
        "microk8s kubectl -n kube-system get daemonset calico-node "
        "-o jsonpath='{.spec.template.spec.containers[0].env}'"
    )


def calico_autodetection(env_json: str) -> str | None:
    """IP_AUTODETECTION_METHOD in calico-node's environment (`calico_env_command` output);
    None when it is not set (or set from a reference rather than a value)."""
    text = env_json.strip()
    if not text:
        return None
    try:
        env = json.loads(text)
    except ValueError:
        first = text.splitlines()[0]
        raise HubfleetError(f"cannot read calico-node's environment from: {first}") from None
    if not isinstance(env, list):
        raise HubfleetError("calico-node's environment is not a list")
    for item in env:
        if isinstance(item, dict) and item.get("name") == CALICO_AUTODETECTION:
            value = item.get("value")
            return str(value) if value is not None else None
    return None


def calico_set_env_command() -> str:
    """Make Calico take each node's InternalIP (the kubelet's --node-ip) as its address."""
    return (
        "microk8s kubectl -n kube-system set env daemonset/calico-node "
        f"{CALICO_AUTODETECTION}={CALICO_INTERNAL_IP}"
    )


# --- firewall -------------------------------------------------------------------------------


def ufw_commands() -> list[str]:
    """What the MicroK8s docs ask of an active ufw: pod traffic on cni0, and routed traffic."""
    return ["ufw allow in on cni0", "ufw allow out on cni0", "ufw default allow routed"]


def ufw_active(status_output: str) -> bool:
    """Whether `ufw status` says ufw is active."""
    return bool(re.search(r"^Status:\s*active\s*$", status_output, re.MULTILINE))


def ufw_missing(status_verbose_output: str) -> list[str]:
    """The `ufw_commands` not yet in effect per `ufw status verbose` ([] when ufw is inactive;
    plain `ufw status` lacks the Default line, so the routed policy would always look missing)."""
    text = status_verbose_output
    if not ufw_active(text):
        return []
    have = {
        "ufw allow in on cni0": re.search(r"on cni0\s+ALLOW( IN)?\s", text + "\n"),
        "ufw allow out on cni0": re.search(r"ALLOW OUT\s+\S.* on cni0\s*$", text, re.MULTILINE),
        "ufw default allow routed": re.search(r"^Default:.*\ballow \(routed\)", text, re.MULTILINE),
    }
    return [command for command in ufw_commands() if not have[command]]
