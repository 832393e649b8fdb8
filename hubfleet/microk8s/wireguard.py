"""WireGuard between a microk8s member's hosts, as data: keys, VPN addresses and wg0.conf.

Pure but for making keys (X25519 from `cryptography`, in WireGuard's format: the raw 32-byte
key, standard base64). One host serves: the one `microk8s.wireguard.server` names, else the
main host; it gets the subnet's first address, the other hosts the next ones in registry
order. Clients send the whole subnet through the server, which forwards between them.

Keys are not kept here: the caller stores the private keys (sops-encrypted) and passes them in.
`KeyPair`'s repr hides the private half and no error message quotes a key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hubfleet.errors import ConfigError, HubfleetError, UnknownMemberError
from hubfleet.hosts.addresses import address_with_port
from hubfleet.registry.members import Host, Member

INTERFACE = "wg0"
CONFIG_PATH = "/etc/wireguard/wg0.conf"
CONFIG_MODE = 0o600
UNIT = "wg-quick@wg0"
DEFAULT_LISTEN_PORT = 51820
KEEPALIVE_SECONDS = 25  # clients behind NAT keep their mapping open
KEY_BYTES = 32


@dataclass(frozen=True)
class KeyPair:
    """A host's WireGuard keys, base64. The repr shows the public key only."""

    private: str
    public: str

    def __repr__(self) -> str:
        return f"KeyPair(private=<hidden>, public={self.public!r})"


@dataclass(frozen=True)
class Settings:
    """A member's `microk8s.wireguard` block with the defaults filled in."""

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    listen_port: int
    server: str | None
    endpoint: str | None


# --- keys -----------------------------------------------------------------------------------


def _raw(key: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise HubfleetError(f"{what} is not a WireGuard key (32 bytes in base64)")
    return raw


def check_key(key: str, what: str = "the key") -> str:
    """The key, stripped, when it is 32 bytes in base64; an error names `what`, never the key."""
    _raw(key, what)
    return key.strip()


def public_key(private_b64: str) -> str:
    """The public key of a private key, as `wg pubkey` prints it."""
    private = X25519PrivateKey.from_private_bytes(_raw(private_b64, "the private key"))
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def new_keypair() -> tuple[str, str]:
    """A fresh (private, public) pair in WireGuard's base64, as `wg genkey | wg pubkey` makes."""
    private = X25519PrivateKey.generate().private_bytes_raw()
    private_b64 = base64.b64encode(private).decode()
    return private_b64, public_key(private_b64)


def keypair(private_b64: str) -> KeyPair:
    """A stored private key with its public key."""
    return KeyPair(check_key(private_b64, "the private key"), public_key(private_b64))


# --- settings and addresses -----------------------------------------------------------------


def settings(member: Member) -> Settings | None:
    """The member's WireGuard settings, or None when its hosts are not joined by WireGuard."""
    raw = member.microk8s.get("wireguard")
    if not raw:
        return None
    try:
        subnet = ipaddress.ip_network(str(raw["subnet"]), strict=True)
    except (KeyError, ValueError):
        raise ConfigError(
            f"member {member.name}: microk8s.wireguard.subnet must be a network such as 10.8.0.0/24"
        ) from None
    return Settings(
        subnet=subnet,
        listen_port=int(raw.get("listen_port", DEFAULT_LISTEN_PORT)),
        server=str(raw["server"]) if raw.get("server") else None,
        endpoint=str(raw["endpoint"]) if raw.get("endpoint") else None,
    )


def _settings(member: Member) -> Settings:
    found = settings(member)
    if found is None:
        raise ConfigError(f"member {member.name}: no microk8s.wireguard settings")
    return found


def server_host(member: Member) -> Host:
    """The host that serves the VPN: the one `wireguard.server` names, else the main host."""
    chosen = _settings(member).server
    if chosen is None:
        mains = [h for h in member.hosts if h.role == "main"]
        if len(mains) != 1:
            raise ConfigError(
                f"member {member.name}: set microk8s.wireguard.server (no single main host)"
            )
        return mains[0]
    try:
        return member.host(chosen)
    except UnknownMemberError as err:
        raise ConfigError(f"microk8s.wireguard.server: {err}") from None


def is_server(member: Member, host: Host) -> bool:
    return host == server_host(member)


def plan_addresses(member: Member) -> dict[str, str]:
    """Each host's VPN address by host address: the server first (.1), then the others in
    registry order (.2, .3, ...). Empty when the member has no WireGuard."""
    found = settings(member)
    if found is None:
        return {}
    server = server_host(member)
    ordered = [server, *(h for h in member.hosts if h != server)]
    usable = list(found.subnet.hosts())
    if len(usable) < len(ordered):
        raise ConfigError(
            f"member {member.name}: microk8s.wireguard.subnet {found.subnet} has room for "
            f"{len(usable)} hosts, not {len(ordered)}"
        )
    return {host.address: str(usable[i]) for i, host in enumerate(ordered)}


def cluster_address(member: Member, host: Host) -> str:
    """The address the cluster uses for this host: its VPN address, else its address."""
    return plan_addresses(member).get(host.address, host.address)


def endpoint(member: Member) -> str:
    """Where clients reach the server: `endpoint`, else its public address, else its
    address; with the listen port."""
    found = _settings(member)
    server = server_host(member)
    return address_with_port(found.endpoint or server.public, found.listen_port)


# --- wg0.conf -------------------------------------------------------------------------------


def _header(member: Member, host: Host, role: str) -> list[str]:
    return [
        f"# WireGuard {role} for {host.name or host.address}, written by hubfleet from",
        f"# config/federation.yaml (member {member.name}); edit the registry instead.",
    ]


def server_config(member: Member, private_key: str, client_public_keys: Mapping[str, str]) -> str:
    """wg0.conf of the server: its address and port, and one peer (/32) per client.

    `client_public_keys` maps each client host's address to its public key. The server also
    forwards between clients (PostUp turns IPv4 forwarding on).
    """
    found = _settings(member)
    server = server_host(member)
    addresses = plan_addresses(member)
    lines = [
        *_header(member, server, "server"),
        "[Interface]",
        f"PrivateKey = {check_key(private_key, f'the private key of {server.address}')}",
        f"Address = {addresses[server.address]}/{found.subnet.prefixlen}",
        f"ListenPort = {found.listen_port}",
        "PostUp = sysctl -q -w net.ipv4.ip_forward=1",
    ]
    for host in member.hosts:
        if host == server:
            continue
        key = client_public_keys.get(host.address)
        if key is None:
            raise HubfleetError(f"member {member.name}: no WireGuard public key for {host.address}")
        single = 32 if found.subnet.version == 4 else 128
        lines += [
            "",
            "[Peer]",
            f"# {host.name or host.address} ({host.address})",
            f"PublicKey = {check_key(key, f'the public key of {host.address}')}",
            f"AllowedIPs = {addresses[host.address]}/{single}",
        ]
    return "\n".join(lines) + "\n"


def client_config(member: Member, host: Host, private_key: str, server_public_key: str) -> str:
    """wg0.conf of a client: its address, and the server as its one peer for the whole subnet,
    at the server's public endpoint, kept alive through NAT."""
    found = _settings(member)
    server = server_host(member)
    if host == server:
        raise HubfleetError(f"{host.address} is the WireGuard server: use server_config")
    addresses = plan_addresses(member)
    lines = [
        *_header(member, host, "client"),
        "[Interface]",
        f"PrivateKey = {check_key(private_key, f'the private key of {host.address}')}",
        f"Address = {addresses[host.address]}/{found.subnet.prefixlen}",
        "",
        "[Peer]",
        f"# server {server.name or server.address} ({server.address})",
        f"PublicKey = {check_key(server_public_key, 'the server public key')}",
        f"Endpoint = {endpoint(member)}",
        f"AllowedIPs = {found.subnet}",
        f"PersistentKeepalive = {KEEPALIVE_SECONDS}",
    ]
    return "\n".join(lines) + "\n"


def config_for(member: Member, host: Host, private_keys: Mapping[str, str]) -> str:
    """wg0.conf of `host`, from every host's private key (by host address)."""

    def private(h: Host) -> str:
        key = private_keys.get(h.address)
        if key is None:
            raise HubfleetError(f"member {member.name}: no WireGuard private key for {h.address}")
        return key

    server = server_host(member)
    if host == server:
        clients = {h.address: public_key(private(h)) for h in member.hosts if h != server}
        return server_config(member, private(host), clients)
    return client_config(member, host, private(host), public_key(private(server)))


def ufw_commands(member: Member, host: Host) -> list[str]:
    """With ufw active: the server lets the WireGuard port in (clients only dial out)."""
    if not is_server(member, host):
        return []
    return [f"ufw allow {_settings(member).listen_port}/udp"]
