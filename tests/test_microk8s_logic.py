"""What a MicroK8s member should look like (hubfleet.microk8s.settings, microk8s_cluster,
microk8s_network): settings, addons, snap, status, joins, nodes, the API certificate's SANs
and ufw. Pure: no host is touched."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.kube.nodes import NodeStatus
from hubfleet.microk8s import cluster as microk8s_cluster
from hubfleet.microk8s import network as microk8s_network
from hubfleet.microk8s import settings as microk8s
from hubfleet.registry import roles
from hubfleet.registry.members import Member, member_from_record

TOKEN = "fd2bcf0daba9515b10a232ed60594c76/4fee84ba7f3f"

# MicroK8s's own microk8s-resources/certs/csr.conf.template
CSR_TEMPLATE = """\
[ req ]
default_bits = 2048
prompt = no
default_md = sha256
req_extensions = req_ext
distinguished_name = dn

[ dn ]
C = "US"
ST = "Isles of Blessed"
L = "Arkadia"
O = acme
OU = dev
CN = 127.0.0.1

[ req_ext ]
subjectAltName = @alt_names

[ alt_names ]
DNS.1 = kubernetes
DNS.2 = kubernetes.default
DNS.3 = kubernetes.default.svc
DNS.4 = kubernetes.default.svc.cluster
DNS.5 = kubernetes.default.svc.cluster.local
IP.1 = 127.0.0.1
IP.2 = 10.152.183.1
#MOREIPS

[ v3_ext ]
authorityKeyIdentifier=keyid,issuer:always
basicConstraints=CA:FALSE
keyUsage=keyEncipherment,dataEncipherment,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=@alt_names
"""

# `microk8s status --format yaml` as scripts/wrappers/status.py prints it
STATUS = """\
microk8s:
  running: True
high-availability:
  enabled: False
addons:
  - name: dns
    repository: core
    description: CoreDNS
    version: 1.10.1
    status: enabled
  - name: helm3
    repository: core
    description: Helm 3 - the package manager for Kubernetes
    version: 3.9.1
    status: enabled
  - name: nvidia
    repository: core
    description: NVIDIA hardware (GPU and network) support
    version: 23.6.2
    status: disabled
"""


def member(settings: Mapping[str, Any] | None = None, hosts: list[Any] | None = None) -> Member:
    record: dict[str, Any] = {
        "stage": "prod",
        "provider": "microk8s",
        "domain": "gpu.lab.example.org",
        "hosts": hosts
        or [
            {"address": "192.168.1.10", "role": "main", "name": "main-node"},
            {"address": "192.168.1.11", "role": "worker", "name": "gpu-worker1"},
            {"address": "192.168.1.12", "role": "worker"},
        ],
        "microk8s": {"channel": "1.32/stable", "metallb": "192.168.1.200-192.168.1.210"},
    }
    record["microk8s"].update(settings or {})
    return member_from_record("gpu-lab", record)


# --- settings and hosts -----------------------------------------------------------------------


def test_settings_defaults() -> None:
    assert microk8s.settings(member()) == microk8s.Settings(
        channel="1.32/stable",
        addons=("dns", "helm3", "hostpath-storage", "community", "dashboard"),
        metallb="192.168.1.200-192.168.1.210",
        gpu=False,
        refresh_hold="forever",
        refresh_window=None,
        token_ttl=120,
    )
    windowed = microk8s.settings(member({"refresh_window": "sat,02:00-04:00"}))
    assert (windowed.refresh_hold, windowed.refresh_window) == (None, "sat,02:00-04:00")


def test_settings_of_a_member_without_the_block() -> None:
    m = member_from_record(
        "x", {"stage": "prod", "provider": "microk8s", "domain": "x.example.org", "hosts": []}
    )
    with pytest.raises(ConfigError, match="member x: no microk8s settings"):
        microk8s.settings(m)


def test_main_host_and_workers() -> None:
    m = member()
    assert roles.main_host(m).name == "main-node"
    assert [h.address for h in roles.workers(m)] == ["192.168.1.11", "192.168.1.12"]
    two = member(hosts=[{"address": "a", "role": "main"}, {"address": "b", "role": "main"}])
    with pytest.raises(ConfigError, match="exactly one host with role main, not 2"):
        roles.main_host(two)


# --- addons -----------------------------------------------------------------------------------


def test_wanted_addons_default_and_with_gpu() -> None:
    assert microk8s.wanted_addons(member()) == [
        "dns",
        "helm3",
        "hostpath-storage",
        "community",
        "dashboard",
    ]
    assert microk8s.wanted_addons(member({"gpu": True}))[-1] == "nvidia"


def test_dependencies_come_first_and_are_added() -> None:
    m = member({"addons": ["nvidia", "dashboard", "helm3"], "gpu": True})
    assert microk8s.wanted_addons(m) == ["dns", "helm3", "nvidia", "dashboard"]
    with_args = member({"addons": ["core/dns:1.1.1.1", "nvidia"]})
    assert microk8s.wanted_addons(with_args) == ["core/dns:1.1.1.1", "helm3", "nvidia"]


def test_metallb_is_not_an_addon_of_the_list() -> None:
    with pytest.raises(ConfigError, match=re.escape("remove metallb from microk8s.addons")):
        microk8s.wanted_addons(member({"addons": ["dns", "metallb:10.0.0.1-10.0.0.2"]}))


def test_missing_addons_leaves_enabled_ones_alone() -> None:
    m = member({"gpu": True})
    assert microk8s.missing_addons(m, {"dns", "helm3", "community"}) == [
        "hostpath-storage",
        "dashboard",
        "nvidia",
    ]


def test_enable_commands() -> None:
    assert microk8s.enable_command("hostpath-storage") == "microk8s enable hostpath-storage"
    assert microk8s.metallb_argument(member()) == "metallb:192.168.1.200-192.168.1.210"
    assert (
        microk8s.enable_command(microk8s.metallb_argument(member()))
        == "microk8s enable metallb:192.168.1.200-192.168.1.210"
    )
    with pytest.raises(HubfleetError, match="metallb needs its address range"):
        microk8s.enable_command("metallb")


@pytest.mark.parametrize("pool", ["10.64.140.0/28", "10.0.0.1-10.0.0.9,10.1.0.0/30"])
def test_metallb_pools_as_cidr_or_several(pool: str) -> None:
    assert microk8s.metallb_argument(member({"metallb": pool})) == f"metallb:{pool}"


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ("192.168.1.210-192.168.1.200", "ends before it starts"),
        ("192.168.1.300-192.168.1.310", "is not A.B.C.D-E.F.G.H or a CIDR"),
        ("192.168.1.1", "is not A.B.C.D-E.F.G.H or a CIDR"),
    ],
)
def test_bad_metallb_pools(pool: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        microk8s.metallb_argument(member({"metallb": pool}))


# --- snap -------------------------------------------------------------------------------------

SNAP_LIST = """\
Name      Version   Rev   Tracking     Publisher   Notes
microk8s  v1.32.3   7964  1.32/stable  canonical✓  classic,held
"""


def test_snap_commands() -> None:
    assert (
        microk8s.snap_install_command("1.32/stable")
        == "snap install microk8s --classic --channel=1.32/stable"
    )
    assert (
        microk8s.snap_refresh_command("1.33/stable")
        == "snap refresh microk8s --channel=1.33/stable"
    )
    assert microk8s.refresh_hold_command() == "snap refresh --hold=forever microk8s"
    assert microk8s.refresh_hold_command("720h") == "snap refresh --hold=720h microk8s"
    assert (
        microk8s.refresh_window_command("sat,02:00-04:00")
        == "snap set system refresh.timer=sat,02:00-04:00"
    )


def test_parse_snap_list() -> None:
    assert microk8s.parse_snap_list(SNAP_LIST) == microk8s.SnapState(
        "v1.32.3", "7964", "1.32/stable", True
    )
    unheld = SNAP_LIST.replace("classic,held", "classic")
    assert microk8s.parse_snap_list(unheld) == microk8s.SnapState(
        "v1.32.3", "7964", "1.32/stable", False
    )
    assert microk8s.parse_snap_list("error: no matching snaps installed\n") is None


def test_snap_decision() -> None:
    state = microk8s.parse_snap_list(SNAP_LIST)
    fresh = microk8s.snap_decision(None, "1.32/stable")
    assert fresh is not None and fresh.action == "install"
    assert fresh.command == "snap install microk8s --classic --channel=1.32/stable"
    assert microk8s.snap_decision(state, "1.32/stable") is None
    up = microk8s.snap_decision(state, "1.33/stable")
    assert up is not None and (up.action, up.command) == (
        "refresh",
        "snap refresh microk8s --channel=1.33/stable",
    )
    with pytest.raises(
        ConfigError, match=re.escape("cannot be downgraded: pin 1.32/stable or later")
    ):
        microk8s.snap_decision(state, "1.31/stable")
    with pytest.raises(
        ConfigError, match=re.escape("one minor version at a time: pin 1.33/stable first")
    ):
        microk8s.snap_decision(state, "1.34/stable")


def test_refresh_commands_settle() -> None:
    held = microk8s.SnapState("v1.32.3", "7964", "1.32/stable", True)
    free = microk8s.SnapState("v1.32.3", "7964", "1.32/stable", False)
    assert microk8s.refresh_commands(member(), free) == ["snap refresh --hold=forever microk8s"]
    assert microk8s.refresh_commands(member(), held) == []
    timed = member({"refresh_hold": "720h"})
    assert microk8s.refresh_commands(timed, free) == ["snap refresh --hold=720h microk8s"]
    window = member({"refresh_window": "sat,02:00-04:00"})
    assert microk8s.refresh_commands(window, held) == [
        "snap refresh --unhold microk8s",
        "snap set system refresh.timer=sat,02:00-04:00",
    ]
    # the window already set: nothing to do, so a rerun changes nothing
    settled = microk8s.refresh_commands(window, free, "sat,02:00-04:00")
    assert settled == []
    assert microk8s.refresh_commands(window, free, "fri,23:00-01:00") == [
        "snap set system refresh.timer=sat,02:00-04:00"
    ]


# --- status -----------------------------------------------------------------------------------


def test_parse_status() -> None:
    running, enabled = microk8s_cluster.parse_status(STATUS)
    assert running is True
    assert enabled == {"dns", "helm3"}


def test_parse_status_not_running() -> None:
    stopped = (
        "microk8s:\n  running: False\nhigh-availability:\n  enabled: False\n"
        "  message: microk8s is not running. Use microk8s inspect for a deeper inspection.\n"
    )
    assert microk8s_cluster.parse_status(stopped) == (False, frozenset())
    plain = "microk8s is not running. Use microk8s inspect for a deeper inspection.\n"
    assert microk8s_cluster.parse_status(plain) == microk8s_cluster.Status(False, frozenset())


def test_parse_status_on_a_worker_and_garbage() -> None:
    worker = (
        "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the master node.\n"
    )
    assert microk8s_cluster.joined_as_worker(worker)
    assert not microk8s_cluster.joined_as_worker(STATUS)
    with pytest.raises(HubfleetError, match="joined worker"):
        microk8s_cluster.parse_status(worker)
    with pytest.raises(HubfleetError, match="cannot read microk8s status from: Traceback"):
        microk8s_cluster.parse_status("Traceback (most recent call last):\n  boom\n")


# --- joins ------------------------------------------------------------------------------------

ADD_NODE = json.dumps(
    {
        "token": TOKEN,
        "urls": [
            f"192.168.1.10:25000/{TOKEN}",
            f"10.8.0.1:25000/{TOKEN}",
            f"172.17.0.1:25000/{TOKEN}",
        ],
    }
)


def test_add_node_command() -> None:
    assert microk8s_cluster.add_node_command(90) == "microk8s add-node --format json --token-ttl 90"


def test_parse_add_node_and_its_repr_hides_the_token() -> None:
    ticket = microk8s_cluster.parse_add_node(ADD_NODE)
    assert ticket.token == TOKEN
    assert ticket.addresses == ("192.168.1.10", "10.8.0.1", "172.17.0.1")
    assert TOKEN not in repr(ticket) and "fd2bcf0d" not in repr(ticket)
    assert "<hidden>" in repr(ticket)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"Traceback {TOKEN}", "did not print JSON"),
        ('{"token": "", "urls": []}', "printed no token and URLs"),
        (json.dumps({"token": TOKEN, "urls": ["10.0.0.1:25000/other/token"]}), "without its token"),
        (json.dumps({"token": TOKEN, "urls": [f"10.0.0.1;rm:25000/{TOKEN}"]}), "unexpected"),
    ],
)
def test_bad_add_node_output_never_quotes_the_token(text: str, message: str) -> None:
    with pytest.raises(HubfleetError, match=message) as raised:
        microk8s_cluster.parse_add_node(text)
    assert TOKEN not in str(raised.value)


def test_join_url_prefers_the_given_address() -> None:
    ticket = microk8s_cluster.parse_add_node(ADD_NODE)
    assert microk8s_cluster.join_url(ticket, "10.8.0.1") == f"10.8.0.1:25000/{TOKEN}"
    assert microk8s_cluster.join_url(ticket, "192.168.1.10") == f"192.168.1.10:25000/{TOKEN}"
    # an address the main node does not list (a DNS name, a forwarded port): same token and port
    assert (
        microk8s_cluster.join_url(ticket, "main.lab.example.org")
        == f"main.lab.example.org:25000/{TOKEN}"
    )
    assert microk8s_cluster.join_url(ticket, "2001:db8::1") == f"[2001:db8::1]:25000/{TOKEN}"


def test_join_address_is_the_vpn_address_with_wireguard() -> None:
    assert microk8s_cluster.join_address(member()) == "192.168.1.10"
    vpn = member({"wireguard": {"subnet": "10.8.0.0/24"}})
    assert microk8s_cluster.join_address(vpn) == "10.8.0.1"


def test_join_command_and_redaction() -> None:
    ticket = microk8s_cluster.parse_add_node(ADD_NODE)
    url = microk8s_cluster.join_url(ticket, "10.8.0.1")
    command = microk8s_cluster.join_command(url)
    assert command == f"microk8s join 10.8.0.1:25000/{TOKEN} --worker"
    assert (
        microk8s_cluster.join_command(url, worker=False) == f"microk8s join 10.8.0.1:25000/{TOKEN}"
    )
    assert microk8s_cluster.join_command('"$url"') == 'microk8s join "$url" --worker'
    assert (
        microk8s_cluster.redact(command, ticket) == "microk8s join 10.8.0.1:25000/<token> --worker"
    )


def test_parse_join_output() -> None:
    ok = "Contacting cluster at 10.8.0.1\n\nSuccessfully joined the cluster.\n"
    assert microk8s_cluster.parse_join_output(ok) == microk8s_cluster.JoinResult(
        True, False, "Successfully joined the cluster."
    )
    refused = "Contacting cluster at 10.8.0.1\nConnection failed. Invalid token (500).\n"
    assert microk8s_cluster.parse_join_output(refused) == microk8s_cluster.JoinResult(
        False, True, "Connection failed. Invalid token (500)."
    )
    unreachable = "Please ensure the master node is reachable. [Errno 113] No route to host\n"
    result = microk8s_cluster.parse_join_output(unreachable)
    assert (result.joined, result.token_rejected) == (False, False)
    assert result.message.startswith("Please ensure the master node is reachable")


# --- nodes and GPUs ---------------------------------------------------------------------------


def node(name: str, ready: bool, gpus: str | None = None) -> dict[str, Any]:
    allocatable = {"cpu": "16", "memory": "65536Ki"} | ({"nvidia.com/gpu": gpus} if gpus else {})
    return {
        "metadata": {"name": name, "labels": {"node.kubernetes.io/microk8s-worker": "x"}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": "v1.32.13"},
            "allocatable": allocatable,
        },
    }


def test_parse_nodes_gpus_and_verify() -> None:
    m = member()
    text = json.dumps({"items": [node("main-node", True, "1"), node("gpu-worker1", False, "2")]})
    nodes = microk8s_cluster.parse_nodes(text)
    assert nodes == [
        NodeStatus("main-node", True, "v1.32.13"),
        NodeStatus("gpu-worker1", False, "v1.32.13"),
    ]
    assert microk8s_cluster.gpu_allocatable(text) == {"main-node": 1, "gpu-worker1": 2}
    assert microk8s_cluster.verify_problems(m, nodes) == [
        "node gpu-worker1 is not Ready",
        "2 nodes in the cluster, 3 hosts in the record",
    ]
    three = [NodeStatus(n, True, "v1.32.13") for n in ("a", "b", "c")]
    assert microk8s_cluster.verify_problems(m, three) == []
    with pytest.raises(HubfleetError, match="microk8s kubectl get nodes did not print JSON"):
        microk8s_cluster.parse_nodes("The connection to the server 127.0.0.1:16443 was refused")


def test_parse_gpus() -> None:
    out = "0, NVIDIA GeForce RTX 3090, 550.54.14\n1, NVIDIA RTX A6000, 550.54.14\n"
    assert microk8s_cluster.parse_gpus(out) == [
        microk8s_cluster.Gpu(0, "NVIDIA GeForce RTX 3090", "550.54.14"),
        microk8s_cluster.Gpu(1, "NVIDIA RTX A6000", "550.54.14"),
    ]
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    assert microk8s_cluster.parse_gpus(failed) == []


# --- API server -------------------------------------------------------------------------------


def test_api_address_and_url() -> None:
    assert microk8s_network.api_url("203.0.113.10") == "https://203.0.113.10:16443"
    assert microk8s_network.api_url("2001:db8::5") == "https://[2001:db8::5]:16443"
    assert microk8s_network.api_address(member()) == "192.168.1.10"
    assert (
        microk8s_network.api_address(member({"wireguard": {"subnet": "10.8.0.0/24"}})) == "10.8.0.1"
    )
    public = member(
        {"wireguard": {"subnet": "10.8.0.0/24"}},
        hosts=[{"address": "192.168.1.10", "role": "main", "public_address": "203.0.113.10"}],
    )
    assert microk8s_network.api_address(public) == "203.0.113.10"
    assert microk8s_network.refresh_certs_command() == "microk8s refresh-certs --cert server.crt"


def test_needs_san() -> None:
    assert not microk8s_network.needs_san(CSR_TEMPLATE, "127.0.0.1")
    assert not microk8s_network.needs_san(CSR_TEMPLATE, "kubernetes.default")
    assert microk8s_network.needs_san(CSR_TEMPLATE, "203.0.113.10")
    assert microk8s_network.needs_san(CSR_TEMPLATE, "k8s.lab.example.org")
    # 127.0.0.1 under [ dn ] (CN) is not a SAN; only [ alt_names ] counts
    assert microk8s_network.needs_san(CSR_TEMPLATE.replace("IP.1 = 127.0.0.1\n", ""), "127.0.0.1")


def test_csr_template_with_sans_adds_before_the_marker_once() -> None:
    added = microk8s_network.csr_template_with_sans(
        CSR_TEMPLATE, ["203.0.113.10", "k8s.lab.example.org", "10.152.183.1", "203.0.113.10"]
    )
    assert added == CSR_TEMPLATE.replace(
        "IP.2 = 10.152.183.1\n#MOREIPS\n",
        "IP.2 = 10.152.183.1\nIP.3 = 203.0.113.10\nDNS.6 = k8s.lab.example.org\n#MOREIPS\n",
    )
    assert (
        microk8s_network.csr_template_with_sans(added, ["203.0.113.10", "k8s.lab.example.org"])
        == added
    )
    assert not microk8s_network.needs_san(added, "203.0.113.10")


def test_csr_template_without_marker_appends_to_the_section() -> None:
    no_marker = CSR_TEMPLATE.replace("#MOREIPS\n", "")
    added = microk8s_network.csr_template_with_sans(no_marker, ["10.8.0.1"])
    assert "IP.2 = 10.152.183.1\nIP.3 = 10.8.0.1\n\n[ v3_ext ]" in added
    with pytest.raises(HubfleetError, match=r"no \[ alt_names \] section"):
        microk8s_network.csr_template_with_sans("[ req ]\n", ["10.8.0.1"])


# --- ufw --------------------------------------------------------------------------------------

UFW_BEFORE = """\
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
"""

UFW_AFTER = """\
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), allow (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
Anywhere on cni0           ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
Anywhere (v6) on cni0      ALLOW IN    Anywhere (v6)

Anywhere                   ALLOW OUT   Anywhere on cni0
Anywhere (v6)              ALLOW OUT   Anywhere (v6) on cni0
"""


def test_ufw() -> None:
    assert microk8s_network.ufw_commands() == [
        "ufw allow in on cni0",
        "ufw allow out on cni0",
        "ufw default allow routed",
    ]
    assert microk8s_network.ufw_active(UFW_BEFORE)
    assert microk8s_network.ufw_missing(UFW_BEFORE) == microk8s_network.ufw_commands()
    assert microk8s_network.ufw_missing(UFW_AFTER) == []
    assert microk8s_network.ufw_missing("Status: inactive\n") == []
    only_in = UFW_AFTER.split("\nAnywhere                   ALLOW OUT")[0]
    assert microk8s_network.ufw_missing(only_in) == ["ufw allow out on cni0"]
    plain = UFW_AFTER.replace("ALLOW IN ", "ALLOW    ")  # `ufw status`, not verbose
    assert "ufw allow in on cni0" not in microk8s_network.ufw_missing(plain)


# --- the cluster over WireGuard -------------------------------------------------------------

KUBELET_ARGS = """\
--kubeconfig=${SNAP_DATA}/credentials/kubelet.config
--cert-dir=${SNAP_DATA}/certs
--client-ca-file=${SNAP_DATA}/certs/ca.crt
--node-labels="microk8s.io/cluster=true"
--container-runtime-endpoint=${SNAP_COMMON}/run/containerd.sock
"""


def test_node_ip_is_added_at_the_end() -> None:
    out = microk8s_network.kubelet_args_with_node_ip(KUBELET_ARGS, "10.77.0.2")
    assert out == KUBELET_ARGS + "--node-ip=10.77.0.2\n"
    # a file without its last newline still ends in one, its last line kept whole
    assert microk8s_network.kubelet_args_with_node_ip(KUBELET_ARGS.rstrip("\n"), "10.77.0.2") == out
    assert microk8s_network.kubelet_args_with_node_ip("", "10.77.0.2") == "--node-ip=10.77.0.2\n"


@pytest.mark.parametrize(
    "old", ["--node-ip=192.168.1.11", "--node-ip 192.168.1.11", "  --node-ip=10.77.0.9"]
)
def test_node_ip_replaces_the_existing_line_in_place(old: str) -> None:
    lines = KUBELET_ARGS.splitlines()
    text = "\n".join([*lines[:2], old, *lines[2:]]) + "\n"
    out = microk8s_network.kubelet_args_with_node_ip(text, "10.77.0.2")
    assert out.splitlines() == [*lines[:2], "--node-ip=10.77.0.2", *lines[2:]]


def test_node_ip_once_however_often_it_was_there() -> None:
    text = "--node-ip=1.1.1.1\n# kept\n\n--cert-dir=/c\n--node-ip 2.2.2.2\n"
    out = microk8s_network.kubelet_args_with_node_ip(text, "10.77.0.3")
    assert out == "--node-ip=10.77.0.3\n# kept\n\n--cert-dir=/c\n"
    # --node-ips (another flag, if there were one) and --node-labels are not --node-ip
    other = "--node-ips=x\n--node-labels=a\n"
    assert (
        microk8s_network.kubelet_args_with_node_ip(other, "10.0.0.1")
        == other + "--node-ip=10.0.0.1\n"
    )


def test_node_ip_already_right_is_unchanged() -> None:
    text = microk8s_network.kubelet_args_with_node_ip(KUBELET_ARGS, "10.77.0.2")
    assert microk8s_network.kubelet_args_with_node_ip(text, "10.77.0.2") == text


def test_calico_autodetection_from_the_env_json() -> None:
    env: list[dict[str, Any]] = [
        {"name": "DATASTORE_TYPE", "value": "kubernetes"},
        {"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP_AUTODETECTION_METHOD", "value": "first-found"},
    ]
    text = json.dumps(env, separators=(",", ":"))
    assert microk8s_network.calico_autodetection(text) == "first-found"
    env[2]["value"] = "kubernetes-internal-ip"
    assert (
        microk8s_network.calico_autodetection(json.dumps(env))
        == microk8s_network.CALICO_INTERNAL_IP
    )
    assert microk8s_network.calico_autodetection(json.dumps(env[:2])) is None
    assert microk8s_network.calico_autodetection("") is None  # a container without env
    with pytest.raises(HubfleetError, match="cannot read calico-node's environment from: Error"):
        microk8s_network.calico_autodetection('Error from server (NotFound): daemonsets.apps "x"\n')


def test_calico_commands() -> None:
    assert microk8s_network.calico_env_command() == (
        "microk8s kubectl -n kube-system get daemonset calico-node "
        "-o jsonpath='{.spec.template.spec.containers[0].env}'"
    )
    assert microk8s_network.calico_set_env_command() == (
        "microk8s kubectl -n kube-system set env daemonset/calico-node "
        "IP_AUTODETECTION_METHOD=kubernetes-internal-ip"
    )
