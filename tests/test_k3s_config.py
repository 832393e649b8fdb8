"""What a k3s host should look like (hubfleet.k3s.config, hubfleet.k3s.install): config, kubelet
drop-in, sysctls, install command, install decisions and readings of k3s output. Pure: no host
is touched."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.k3s import config as k3s
from hubfleet.k3s import install as k3s_install
from hubfleet.kube import nodes
from hubfleet.registry import roles
from hubfleet.registry.members import Member, member_from_record

TOKEN = "K10c4a8ab4e2e0c06d5e2e8a6a0f9d1e0f3a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5::server:5f1e9d3c7b2a"


def member(k3s_settings: Mapping[str, Any] | None = None, hosts: list[Any] | None = None) -> Member:
    record: dict[str, Any] = {
        "stage": "prod",
        "provider": "k3s",
        "domain": "hetzner.mybinder.example.org",
        "hosts": hosts
        or [
            {"address": "10.0.0.1", "public_address": "203.0.113.7", "name": "hz-1"},
            {"address": "10.0.0.2", "role": "agent", "name": "hz-2"},
            {"address": "10.0.0.3", "role": "agent"},
        ],
    }
    if k3s_settings is not None:
        record["k3s"] = dict(k3s_settings)
    return member_from_record("hetzner", record)


def body(file: k3s.HostFile) -> Any:
    return yaml.safe_load(file.content)


# --- config.yaml ------------------------------------------------------------------------------


def test_server_config_defaults() -> None:
    m = member()
    server = m.hosts[0]
    assert k3s.server_config(m, server) == {
        "node-name": "hz-1",
        "tls-san": ["203.0.113.7", "hetzner.mybinder.example.org", "10.0.0.1"],
        "disable": ["traefik"],
    }
    file = k3s.config_file(m, server)
    assert file.path == "/etc/rancher/k3s/config.yaml"
    assert file.mode == 0o600
    assert body(file) == k3s.server_config(m, server)
    assert file.content.startswith("# k3s options, written by hubfleet")


def test_server_config_without_public_address_or_name() -> None:
    m = member(hosts=[{"address": "198.51.100.4"}])
    assert k3s.server_config(m, m.hosts[0]) == {
        "tls-san": ["198.51.100.4", "hetzner.mybinder.example.org"],
        "disable": ["traefik"],
    }


def test_member_options_merge_into_the_server_config() -> None:
    m = member(
        {
            "config": {
                "disable": ["servicelb", "traefik"],
                "tls-san": ["k3s.hetzner.example.org"],
                "node-label": ["mybinder.org/pool=user"],
                "cluster-init": True,
                "kubelet-arg": ["max-open-files=1000000"],
            }
        }
    )
    assert k3s.server_config(m, m.hosts[0]) == {
        "node-name": "hz-1",
        "tls-san": [
            "203.0.113.7",
            "hetzner.mybinder.example.org",
            "10.0.0.1",
            "k3s.hetzner.example.org",
        ],
        "disable": ["traefik", "servicelb"],  # combined, no duplicates, ours first
        "node-label": ["mybinder.org/pool=user"],
        "cluster-init": True,
        "kubelet-arg": ["max-open-files=1000000"],
    }


def test_a_string_adds_to_a_list_and_a_scalar_replaces() -> None:
    merged = k3s.merge_options(
        {"disable": ["traefik"], "write-kubeconfig-mode": "0600"},
        {"disable": "servicelb,local-storage", "write-kubeconfig-mode": "0640"},
    )
    assert merged == {
        "disable": ["traefik", "servicelb", "local-storage"],
        "write-kubeconfig-mode": "0640",
    }


@pytest.mark.parametrize("key", ["node-name", "token", "agent-token", "server", "token+"])
def test_member_wide_options_may_not_set_per_host_or_secret_ones(key: str) -> None:
    m = member({"config": {key: "x"}})
    with pytest.raises(ConfigError, match=f"k3s.config.{key.replace('+', '[+]')} is not allowed"):
        k3s.server_config(m, m.hosts[0])


def test_agent_config_keeps_only_agent_options() -> None:
    m = member(
        {
            "config": {
                "disable": ["servicelb"],
                "tls-san": ["extra.example.org"],
                "cluster-init": True,
                "write-kubeconfig-mode": "0644",
                "node-label": ["pool=user"],
                "kubelet-arg": ["max-open-files=1000000"],
                "node-ip": "10.0.0.9",
                "with-node-id": True,
            }
        }
    )
    named, unnamed = m.hosts[1], m.hosts[2]
    expected = {
        "node-label": ["pool=user"],
        "kubelet-arg": ["max-open-files=1000000"],
        "node-ip": "10.0.0.9",
        "with-node-id": True,
    }
    assert k3s.agent_config(m, named) == {"node-name": "hz-2", **expected}
    assert k3s.agent_config(m, unnamed) == expected
    assert body(k3s.config_file(m, named)) == k3s.agent_config(m, named)
    for key in ("tls-san", "disable", "cluster-init", "write-kubeconfig-mode"):
        assert key in k3s.SERVER_ONLY_KEYS
        assert key not in k3s.AGENT_KEYS


def test_split_agent_options_names_what_it_drops() -> None:
    kept, dropped = k3s.split_agent_options(
        {"tls-san": ["a"], "node-label+": ["x=y"], "disable": "traefik", "node-taint": ["t"]}
    )
    assert kept == {"node-label+": ["x=y"], "node-taint": ["t"]}
    assert dropped == ["tls-san", "disable"]


def test_no_server_host_is_a_config_error() -> None:
    m = member(hosts=[{"address": "10.0.0.2", "role": "agent"}])
    with pytest.raises(ConfigError, match="no host has role server"):
        roles.first_server(m)


# --- kubelet, sysctls, traefik --------------------------------------------------------------


@pytest.mark.parametrize(("ram_gb", "max_pods"), [(4, 30), (8, 30), (16, 30), (64, 112)])
def test_kubelet_config_by_ram(ram_gb: float, max_pods: int) -> None:
    m = member()
    file = k3s.kubelet_file(m, ram_gb)
    assert file.path == "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/999-hubfleet.conf"
    assert body(file) == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "maxPods": max_pods,
        "imageGCHighThresholdPercent": 40,
        "imageGCLowThresholdPercent": 20,
    }


def test_kubelet_config_takes_the_member_override() -> None:
    assert k3s.kubelet_config(member({"max_pods": 300}), 64)["maxPods"] == 300
    assert k3s.kubelet_config(member({"max_pods": 300}), 4)["maxPods"] == 300


def test_sysctl_file() -> None:
    file = k3s.sysctl_file()
    assert file.path.startswith("/etc/sysctl.d/") and file.path.endswith(".conf")
    lines = [line for line in file.content.splitlines() if not line.startswith("#")]
    assert lines == [
        "fs.inotify.max_user_instances = 8192",
        "fs.inotify.max_user_watches = 524288",
    ]
    output = "fs.inotify.max_user_instances = 128\nfs.inotify.max_user_watches = 524288\n"
    assert k3s.parse_sysctl_values(output) == {
        "fs.inotify.max_user_instances": 128,
        "fs.inotify.max_user_watches": 524288,
    }


def test_host_files_by_role() -> None:
    m = member()
    server_paths = [f.path for f in k3s.host_files(m, m.hosts[0], 64)]
    agent_paths = [f.path for f in k3s.host_files(m, m.hosts[1], 64)]
    assert server_paths == [
        k3s.SYSCTL_PATH,
        "/etc/rancher/k3s/config.yaml",
        k3s.KUBELET_CONFIG_PATH,
        "/var/lib/rancher/k3s/server/manifests/traefik.yaml.skip",
    ]
    assert agent_paths == server_paths[:3]
    assert k3s.traefik_skip_file().content == ""


# --- install ----------------------------------------------------------------------------------


def test_install_server_from_the_stable_channel_by_default() -> None:
    m = member()
    cmd = k3s_install.install_command(m, m.hosts[0])
    assert dict(cmd.env) == {"INSTALL_K3S_EXEC": "server", "INSTALL_K3S_CHANNEL": "stable"}
    assert cmd.secret_env == {}
    assert cmd.uploads == ()
    assert cmd.script == (
        "INSTALL_K3S_EXEC=server INSTALL_K3S_CHANNEL=stable "
        "bash -o pipefail -c 'curl -sfL https://get.k3s.io | sh -s -'"
    )
    assert cmd.command == cmd.script
    assert cmd.stdin == ""


def test_install_pinned_version_and_named_channel() -> None:
    pinned = member({"version": "v1.32.5+k3s1"})
    cmd = k3s_install.install_command(pinned, pinned.hosts[0])
    assert dict(cmd.env) == {"INSTALL_K3S_EXEC": "server", "INSTALL_K3S_VERSION": "v1.32.5+k3s1"}
    assert "INSTALL_K3S_VERSION=v1.32.5+k3s1 bash -o pipefail -c" in cmd.script
    assert k3s_install.wanted_version(pinned) == "v1.32.5+k3s1"
    channel = member({"channel": "v1.31"})
    assert (
        k3s_install.install_command(channel, channel.hosts[0]).env["INSTALL_K3S_CHANNEL"] == "v1.31"
    )
    assert k3s_install.wanted_version(channel) is None


def test_install_agent_joins_with_the_token_off_the_command_line() -> None:
    m = member({"version": "v1.32.5+k3s1"})
    cmd = k3s_install.install_command(m, m.hosts[1], token=f"{TOKEN}\n")
    assert dict(cmd.env) == {
        "INSTALL_K3S_EXEC": "agent",
        "K3S_URL": "https://10.0.0.1:6443",
        "INSTALL_K3S_VERSION": "v1.32.5+k3s1",
    }
    assert dict(cmd.secret_env) == {"K3S_TOKEN": TOKEN}
    assert TOKEN not in cmd.script
    assert TOKEN not in cmd.command
    assert TOKEN not in repr(cmd)
    assert cmd.stdin == f"{TOKEN}\n"
    assert cmd.command.startswith("IFS= read -r K3S_TOKEN; export K3S_TOKEN; ")
    assert cmd.command.endswith(cmd.script)
    assert shlex.split(cmd.script)[-2:] == ["-c", "curl -sfL https://get.k3s.io | sh -s -"]


def test_agent_without_token_or_with_a_bad_one() -> None:
    m = member()
    with pytest.raises(HubfleetError, match="needs the member's cluster token"):
        k3s_install.install_command(m, m.hosts[1])
    for bad in ("short", "two words but long enough", "a\nsecond-line-of-the-token"):
        with pytest.raises(HubfleetError, match="not a usable k3s join token"):
            k3s_install.install_command(m, m.hosts[1], token=bad)
    # k3s takes any string as a token: a plain secret (as hubfleet generates) is fine
    plain = "0123456789abcdef" * 4
    assert k3s_install.install_command(m, m.hosts[1], token=plain).stdin == plain + "\n"


def test_second_server_joins_the_first() -> None:
    m = member(hosts=[{"address": "fd00::1"}, {"address": "fd00::2"}])
    cmd = k3s_install.install_command(m, m.hosts[1], token=TOKEN)
    assert cmd.env["INSTALL_K3S_EXEC"] == "server"
    assert cmd.env["K3S_URL"] == "https://[fd00::1]:6443"


def test_install_air_gapped() -> None:
    m = member(
        {
            "version": "v1.32.5+k3s1",
            "airgap": {
                "binary": "airgap/k3s",
                "images": "airgap/k3s-airgap-images-amd64.tar.zst",
                "install_script": "airgap/install.sh",
            },
        }
    )
    server = k3s_install.install_command(m, m.hosts[0])
    assert dict(server.env) == {"INSTALL_K3S_EXEC": "server", "INSTALL_K3S_SKIP_DOWNLOAD": "true"}
    assert server.uploads == (
        k3s_install.Upload("airgap/k3s", "/usr/local/bin/k3s", 0o755),
        k3s_install.Upload(
            "airgap/k3s-airgap-images-amd64.tar.zst",
            "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
            0o644,
        ),
        k3s_install.Upload("airgap/install.sh", k3s_install.AIRGAP_INSTALL_SCRIPT_PATH, 0o755),
    )
    assert server.script == (
        f"INSTALL_K3S_EXEC=server INSTALL_K3S_SKIP_DOWNLOAD=true sh {k3s_install.AIRGAP_INSTALL_SCRIPT_PATH}"
    )
    assert "curl" not in server.script
    agent = k3s_install.install_command(m, m.hosts[2], token=TOKEN)
    assert agent.env["K3S_URL"] == "https://10.0.0.1:6443"
    assert agent.env["INSTALL_K3S_SKIP_DOWNLOAD"] == "true"
    assert TOKEN not in agent.command
    no_images = member({"airgap": {"binary": "k3s", "install_script": "install.sh"}})
    assert [
        u.destination for u in k3s_install.install_command(no_images, no_images.hosts[0]).uploads
    ] == [
        "/usr/local/bin/k3s",
        k3s_install.AIRGAP_INSTALL_SCRIPT_PATH,
    ]


# --- decisions --------------------------------------------------------------------------------


def test_needs_install_decisions() -> None:
    v = "v1.32.5+k3s1"
    assert k3s_install.needs_install(None, v, False) == k3s_install.InstallDecision(
        "install", f"k3s is not installed; installing {v}"
    )
    assert k3s_install.needs_install(None, None, True) == k3s_install.InstallDecision(
        "install", "k3s is not installed; installing the channel's current release"
    )
    assert k3s_install.needs_install(v, v, False) is None
    assert k3s_install.needs_install(v, v, True) == k3s_install.InstallDecision(
        "restart", "k3s configuration changed"
    )
    upgrade = k3s_install.needs_install("v1.31.9+k3s1", v, True)
    assert upgrade is not None and upgrade.action == "upgrade"  # an install restarts anyway
    assert k3s_install.needs_install("v1.32.5-rc1+k3s1", v, False).action == "upgrade"  # type: ignore[union-attr]
    # following a channel: a present k3s is kept (the upgrade controller keeps it current)
    assert k3s_install.needs_install("v1.30.1+k3s1", None, False) is None
    assert k3s_install.needs_install("v1.30.1+k3s1", None, True).action == "restart"  # type: ignore[union-attr]


def test_needs_install_refuses_a_downgrade() -> None:
    with pytest.raises(ConfigError, match=r"cannot be downgraded: pin v1\.33\.1\+k3s1 or later"):
        k3s_install.needs_install("v1.33.1+k3s1", "v1.32.5+k3s1", False)
    with pytest.raises(ConfigError, match="downgraded"):
        k3s_install.needs_install("v1.32.5+k3s2", "v1.32.5+k3s1", False)


def test_version_key_orders_releases() -> None:
    ordered = ["v1.31.9+k3s1", "v1.32.5-rc1+k3s1", "v1.32.5+k3s1", "v1.32.5+k3s2", "v1.32.10+k3s1"]
    assert sorted(ordered, key=k3s_install.version_key) == ordered
    with pytest.raises(HubfleetError, match="not a k3s version"):
        k3s_install.version_key("1.32")


# --- readings ---------------------------------------------------------------------------------


def test_parse_version() -> None:
    output = "k3s version v1.32.5+k3s1 (8e8f2a47)\ngo version go1.23.8\n"
    assert k3s_install.parse_version(output) == "v1.32.5+k3s1"
    assert k3s_install.parse_version("k3s version v1.33.0-rc2+k3s1 (abc)\n") == "v1.33.0-rc2+k3s1"
    with pytest.raises(
        HubfleetError, match="cannot read the k3s version from: sh: 1: k3s: not found"
    ):
        k3s_install.parse_version("sh: 1: k3s: not found\n")


def _node(
    name: str, ready: str, version: str, control_plane: bool, unschedulable: bool = False
) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": "k3s",
    }
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {"k3s.io/node-args": '["server"]'},
            "labels": labels,
            "name": name,
            "resourceVersion": "1234",
            "uid": "0b0c3f4e-5d7a-4c2e-9a44-2f6e5c1d8b11",
        },
        "spec": {"podCIDR": "10.42.0.0/24", "providerID": f"k3s://{name}"},
        "status": {
            "conditions": [
                {
                    "type": "MemoryPressure",
                    "status": "False",
                    "reason": "KubeletHasSufficientMemory",
                },
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
                {"type": "Ready", "status": ready, "reason": "KubeletReady"},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://2.0.5-k3s1",
                "kubeProxyVersion": version,
                "kubeletVersion": version,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.2 LTS",
            },
        },
    }
    if unschedulable:
        node["spec"]["unschedulable"] = True
        node["spec"]["taints"] = [
            {"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable"}
        ]
    return node


def test_parse_nodes() -> None:
    output = json.dumps(
        {
            "apiVersion": "v1",
            "items": [
                _node("hz-1", "True", "v1.32.5+k3s1", control_plane=True),
                _node("hz-2", "Unknown", "v1.32.5+k3s1", control_plane=False),
                _node("hz-3", "True", "v1.31.9+k3s1", control_plane=False, unschedulable=True),
            ],
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        },
        indent=4,
    )
    assert nodes.parse_nodes(output) == [
        nodes.NodeStatus("hz-1", True, "v1.32.5+k3s1", control_plane=True, schedulable=True),
        nodes.NodeStatus("hz-2", False, "v1.32.5+k3s1", control_plane=False, schedulable=True),
        nodes.NodeStatus("hz-3", True, "v1.31.9+k3s1", control_plane=False, schedulable=False),
    ]
    assert nodes.parse_nodes('{"apiVersion": "v1", "items": [], "kind": "List"}') == []
    with pytest.raises(HubfleetError, match="did not print JSON"):
        nodes.parse_nodes("The connection to the server 127.0.0.1:6443 was refused")


def test_service_names_and_urls() -> None:
    m = member()
    assert [k3s.service_name(h) for h in m.hosts] == ["k3s", "k3s-agent", "k3s-agent"]
    assert k3s.server_url("203.0.113.7") == "https://203.0.113.7:6443"
    assert k3s.server_url("2001:db8::7") == "https://[2001:db8::7]:6443"
    assert k3s_install.check_token(f"  {TOKEN}\n") == TOKEN
