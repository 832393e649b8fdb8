"""How a MicroK8s cluster is reached and wired, as data: API server, node IPs, Calico, ufw.

Pure: no I/O. This decides the address and URL clients use for the API server and the extra
SANs its certificate needs (editing csr.conf.template); with WireGuard, the kubelet's
`--node-ip` (in its args file) and Calico's address autodetection (read from calico-node's
environment); and the ufw rules MicroK8s needs (read from `ufw status verbose`). The member's
settings and main node are in hubfleet.microk8s.settings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.jsonfile import parse_json
from hubfleet.hosts.addresses import address_with_port
from hubfleet.microk8s import wireguard
from hubfleet.registry.members import Host, Member
from hubfleet.registry.roles import main_host

API_PORT = 16443
CSR_TEMPLATE_PATH = "/var/snap/microk8s/current/certs/csr.conf.template"
KUBELET_ARGS_PATH = "/var/snap/microk8s/current/args/kubelet"
KUBELITE_RESTART_COMMAND = "snap restart microk8s.daemon-kubelite"
CALICO_AUTODETECTION = "IP_AUTODETECTION_METHOD"
CALICO_INTERNAL_IP = "kubernetes-internal-ip"


# --- API server address and certificate -----------------------------------------------------


def api_url(address: str) -> str:
    """The kubeconfig server URL at `address`: https://<address>:16443."""
    return f"https://{address_with_port(address, API_PORT)}"


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
        env = parse_json(text, "calico-node's environment")
    except ConfigError:
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
