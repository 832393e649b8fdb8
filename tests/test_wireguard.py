"""WireGuard as data (hubfleet.microk8s.wireguard): keys, VPN addresses, wg0.conf for server and clients."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.microk8s import wireguard
from hubfleet.registry.members import Member, member_from_record

# RFC 7748 section 6.1, Alice's X25519 key pair
RFC7748_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def member(wg: Mapping[str, Any] | None = None, hosts: list[Any] | None = None) -> Member:
    record: dict[str, Any] = {
        "stage": "prod",
        "provider": "microk8s",
        "domain": "gpu.lab.example.org",
        "hosts": hosts
        or [
            {
                "address": "192.168.1.10",
                "role": "main",
                "name": "main-node",
                "public_address": "203.0.113.10",
            },
            {"address": "172.16.5.20", "role": "worker", "name": "gpu-worker1"},
            {"address": "172.16.5.21", "role": "worker"},
        ],
        "microk8s": {"channel": "1.32/stable", "metallb": "192.168.1.200-192.168.1.210"},
    }
    if wg is not None:
        record["microk8s"]["wireguard"] = dict(wg)
    return member_from_record("gpu-lab", record)


# --- keys -------------------------------------------------------------------------------------


def test_public_key_matches_the_rfc7748_vector() -> None:
    assert wireguard.public_key(b64(RFC7748_PRIVATE)) == b64(RFC7748_PUBLIC)


def test_new_keypair_is_wireguard_base64_and_matches_cryptography() -> None:
    private, public = wireguard.new_keypair()
    assert len(private) == len(public) == 44 and private.endswith("=")
    raw = base64.b64decode(private, validate=True)
    assert len(raw) == 32
    derived = X25519PrivateKey.from_private_bytes(raw).public_key()
    assert public == b64(derived.public_bytes(Encoding.Raw, PublicFormat.Raw))
    assert wireguard.new_keypair()[0] != private


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools not installed")
def test_public_key_matches_wg_pubkey() -> None:
    private, public = wireguard.new_keypair()
    wg = subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True)
    assert wg.returncode == 0, wg.stderr
    assert wg.stdout.strip() == public
    made = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    theirs = subprocess.run(
        ["wg", "pubkey"], input=made, capture_output=True, text=True, check=True
    ).stdout
    assert wireguard.public_key(made) == theirs.strip()


def test_bad_keys_are_refused_without_quoting_them() -> None:
    for bad in ["not base64!", b64(b"short"), b64(bytes(33))]:
        with pytest.raises(HubfleetError, match="the private key is not a WireGuard key") as err:
            wireguard.public_key(bad)
        assert bad not in str(err.value)


def test_keypair_repr_hides_the_private_key() -> None:
    pair = wireguard.keypair(b64(RFC7748_PRIVATE))
    assert pair.public == b64(RFC7748_PUBLIC)
    assert b64(RFC7748_PRIVATE) not in repr(pair) and str(pair) == repr(pair)
    assert repr(pair) == f"KeyPair(private=<hidden>, public={b64(RFC7748_PUBLIC)!r})"


# --- settings and addresses -------------------------------------------------------------------


def test_settings_defaults_and_none() -> None:
    assert wireguard.settings(member()) is None
    assert wireguard.plan_addresses(member()) == {}
    found = wireguard.settings(member({"subnet": "10.8.0.0/24"}))
    assert found is not None
    assert (str(found.subnet), found.listen_port, found.server, found.endpoint) == (
        "10.8.0.0/24",
        51820,
        None,
        None,
    )


def test_plan_addresses_server_first_then_host_order() -> None:
    m = member({"subnet": "10.8.0.0/24"})
    assert wireguard.server_host(m).address == "192.168.1.10"
    assert wireguard.plan_addresses(m) == {
        "192.168.1.10": "10.8.0.1",
        "172.16.5.20": "10.8.0.2",
        "172.16.5.21": "10.8.0.3",
    }
    by_name = member({"subnet": "10.8.0.0/24", "server": "gpu-worker1"})
    assert wireguard.plan_addresses(by_name) == {
        "172.16.5.20": "10.8.0.1",
        "192.168.1.10": "10.8.0.2",
        "172.16.5.21": "10.8.0.3",
    }
    assert wireguard.cluster_address(by_name, by_name.hosts[2]) == "10.8.0.3"
    assert wireguard.cluster_address(member(), member().hosts[2]) == "172.16.5.21"


def test_unknown_server_and_a_small_subnet() -> None:
    with pytest.raises(ConfigError, match=r"wireguard.server: member gpu-lab has no host 'x'"):
        wireguard.server_host(member({"subnet": "10.8.0.0/24", "server": "x"}))
    with pytest.raises(ConfigError, match="has room for 2 hosts, not 3"):
        wireguard.plan_addresses(member({"subnet": "10.8.0.0/30"}))
    with pytest.raises(ConfigError, match=re.escape("must be a network such as 10.8.0.0/24")):
        wireguard.settings(member({"subnet": "10.8.0.1/24"}))


def test_endpoint() -> None:
    assert wireguard.endpoint(member({"subnet": "10.8.0.0/24"})) == "203.0.113.10:51820"
    given = member({"subnet": "10.8.0.0/24", "endpoint": "vpn.lab.example.org", "listen_port": 443})
    assert wireguard.endpoint(given) == "vpn.lab.example.org:443"
    v6 = member({"subnet": "10.8.0.0/24", "endpoint": "2001:db8::10"})
    assert wireguard.endpoint(v6) == "[2001:db8::10]:51820"


# --- wg0.conf ---------------------------------------------------------------------------------


def keys(m: Member) -> dict[str, tuple[str, str]]:
    return {h.address: wireguard.new_keypair() for h in m.hosts}


def test_server_config() -> None:
    m = member({"subnet": "10.8.0.0/24"})
    k = keys(m)
    text = wireguard.server_config(
        m, k["192.168.1.10"][0], {a: pair[1] for a, pair in k.items() if a != "192.168.1.10"}
    )
    assert text == (
        "# WireGuard server for main-node, written by hubfleet from\n"
        "# config/federation.yaml (member gpu-lab); edit the registry instead.\n"
        "[Interface]\n"
        f"PrivateKey = {k['192.168.1.10'][0]}\n"
        "Address = 10.8.0.1/24\n"
        "ListenPort = 51820\n"
        "PostUp = sysctl -q -w net.ipv4.ip_forward=1\n"
        "\n"
        "[Peer]\n"
        "# gpu-worker1 (172.16.5.20)\n"
        f"PublicKey = {k['172.16.5.20'][1]}\n"
        "AllowedIPs = 10.8.0.2/32\n"
        "\n"
        "[Peer]\n"
        "# 172.16.5.21 (172.16.5.21)\n"
        f"PublicKey = {k['172.16.5.21'][1]}\n"
        "AllowedIPs = 10.8.0.3/32\n"
    )
    with pytest.raises(HubfleetError, match=re.escape("no WireGuard public key for 172.16.5.21")):
        wireguard.server_config(m, k["192.168.1.10"][0], {"172.16.5.20": k["172.16.5.20"][1]})


def test_client_config() -> None:
    m = member({"subnet": "10.8.0.0/24", "listen_port": 51821})
    k = keys(m)
    worker = m.hosts[1]
    text = wireguard.client_config(m, worker, k[worker.address][0], k["192.168.1.10"][1])
    assert text == (
        "# WireGuard client for gpu-worker1, written by hubfleet from\n"
        "# config/federation.yaml (member gpu-lab); edit the registry instead.\n"
        "[Interface]\n"
        f"PrivateKey = {k[worker.address][0]}\n"
        "Address = 10.8.0.2/24\n"
        "\n"
        "[Peer]\n"
        "# server main-node (192.168.1.10)\n"
        f"PublicKey = {k['192.168.1.10'][1]}\n"
        "Endpoint = 203.0.113.10:51821\n"
        "AllowedIPs = 10.8.0.0/24\n"
        "PersistentKeepalive = 25\n"
    )
    with pytest.raises(HubfleetError, match="is the WireGuard server: use server_config"):
        wireguard.client_config(m, m.hosts[0], k["192.168.1.10"][0], k["192.168.1.10"][1])


def test_config_for_derives_public_keys_from_the_stored_private_ones() -> None:
    m = member({"subnet": "10.8.0.0/24"})
    k = keys(m)
    private = {a: pair[0] for a, pair in k.items()}
    server, worker = m.hosts[0], m.hosts[1]
    assert wireguard.config_for(m, server, private) == wireguard.server_config(
        m, private[server.address], {a: k[a][1] for a in ("172.16.5.20", "172.16.5.21")}
    )
    assert wireguard.config_for(m, worker, private) == wireguard.client_config(
        m, worker, private[worker.address], k[server.address][1]
    )
    del private["172.16.5.21"]
    with pytest.raises(
        HubfleetError, match=re.escape("no WireGuard private key for 172.16.5.21")
    ) as err:
        wireguard.config_for(m, server, private)
    assert all(key not in str(err.value) for key in private.values())


def test_a_bad_key_in_a_config_names_the_host_not_the_key() -> None:
    m = member({"subnet": "10.8.0.0/24"})
    with pytest.raises(
        HubfleetError, match=re.escape("the private key of 172.16.5.20 is not a WireGuard")
    ):
        wireguard.client_config(m, m.hosts[1], "oops", wireguard.new_keypair()[1])


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools not installed")
def test_wg_quick_strips_the_rendered_configs(tmp_path: Any) -> None:
    """`wg-quick strip` reads the configs and keeps only what `wg` itself takes (text only:
    no interface is made here)."""
    m = member({"subnet": "10.8.0.0/24"})
    private = {h.address: wireguard.new_keypair()[0] for h in m.hosts}
    for host in m.hosts:
        conf = tmp_path / "wg0.conf"
        conf.write_text(wireguard.config_for(m, host, private))
        conf.chmod(0o600)
        stripped = subprocess.run(
            ["wg-quick", "strip", str(conf)], capture_output=True, text=True, check=True
        ).stdout
        assert "Address" not in stripped and "PostUp" not in stripped
        assert f"PrivateKey = {private[host.address]}" in stripped


def test_ufw_commands_open_the_port_on_the_server_only() -> None:
    m = member({"subnet": "10.8.0.0/24", "listen_port": 51900})
    assert wireguard.ufw_commands(m, m.hosts[0]) == ["ufw allow 51900/udp"]
    assert wireguard.ufw_commands(m, m.hosts[1]) == []
