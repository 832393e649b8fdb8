"""What a k3s host should look like, as data: its role, the files it gets, and its nodes as read.

Pure: no I/O. From the member record and one of its hosts this renders the k3s `config.yaml`
(server or agent), the kubelet drop-in (maxPods and image GC from `hubfleet.registry.sizing`), the
inotify sysctls and the traefik skip marker; it knows where k3s keeps its files, which hosts are
servers and the API server's URL, and parses `k3s kubectl get nodes -o json`. The install
command and whether a host needs it are in `hubfleet.k3s.install`. The step runner applies all
of this over SSH; every option k3s should keep lives in the config file, since install-script
environment is forgotten when the script is run again without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hubfleet.errors import ConfigError
from hubfleet.hosts.addresses import address_with_port
from hubfleet.registry.members import Host, Member
from hubfleet.registry.roles import is_server
from hubfleet.registry.sizing import node_sizing

CONFIG_PATH = "/etc/rancher/k3s/config.yaml"
KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"
TOKEN_PATH = "/var/lib/rancher/k3s/server/token"
# k3s reads the kubelet drop-ins in name order, later ones winning: k3s's own 00-k3s-defaults,
# then any an operator wrote (mybinder.org's hosts have 99-kubelet.conf, maxPods 300), so
# hubfleet's sorts after every 99- name. Its earlier name is taken over (removed).
KUBELET_DROPIN_DIR = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d"
KUBELET_CONFIG_PATH = f"{KUBELET_DROPIN_DIR}/999-hubfleet.conf"
OLD_KUBELET_CONFIG_NAMES = ("99-hubfleet.conf",)
KUBELET_DROPINS_PROBE = (  # the drop-ins' names, sorted, by the shell alone
    f'set --; for f in {KUBELET_DROPIN_DIR}/*; do [ -e "$f" ] && set -- "$@" "${{f##*/}}"; '
    'done; echo "kubelet_dropins=$*"; set --'
)
SYSCTL_PATH = "/etc/sysctl.d/90-hubfleet-inotify.conf"
TRAEFIK_SKIP_PATH = "/var/lib/rancher/k3s/server/manifests/traefik.yaml.skip"
BINARY_PATH = "/usr/local/bin/k3s"

API_PORT = 6443


# Written on every host, servers and agents: binder's many pods each watch files, and the
# default limits end in "failed to create fsnotify watcher: too many open files".
INOTIFY_SYSCTLS: Mapping[str, int] = {
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_user_watches": 524288,
}


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The flags `k3s agent` accepts (pkg/cli/cmds/agent.go), short aliases included. k3s drops
# unknown config-file keys for `k3s server` with a warning but not for `k3s agent`, which
# refuses to start on one ("flag provided but not defined"): an agent's config keeps only these.
AGENT_KEYS = _names(
    """
    debug v vmodule log l alsologtostderr
    token t token-file server s data-dir d
    node-name with-node-id node-label node-taint
    image-credential-provider-bin-dir image-credential-provider-config
    selinux lb-server-port protect-kernel-defaults
    container-runtime-endpoint default-runtime image-service-endpoint pause-image snapshotter
    private-registry disable-default-registry-endpoint airgap-extra-registry
    node-ip i bind-address node-external-ip node-internal-dns node-external-dns resolv-conf
    flannel-iface flannel-conf flannel-cni-conf kubelet-arg kube-proxy-arg
    enable-pprof rootless prefer-bundled-bin docker vpn-auth vpn-auth-file disable-apiserver-lb
    """
)

# Server-only options hubfleet sets or members commonly add; for reference and tests (the
# agent filter above is an allow-list, so a server-only key missing here is dropped all the same).
SERVER_ONLY_KEYS = _names(
    """
    tls-san disable cluster-init write-kubeconfig write-kubeconfig-mode
    cluster-cidr service-cidr cluster-dns cluster-domain flannel-backend
    disable-network-policy disable-cloud-controller disable-helm-controller
    kube-apiserver-arg kube-controller-manager-arg kube-scheduler-arg
    etcd-snapshot-schedule-cron secrets-encryption agent-token datastore-endpoint
    embedded-registry
    """
)

# Options the member-wide `k3s.config` may not set: they are per host or secret, and hubfleet
# derives them from the registry and the server's token.
MANAGED_KEYS: Mapping[str, str] = {
    "node-name": "it is per host: set `name` on the host instead",
    "server": "hubfleet joins agents to the member's first server itself",
    "token": "the cluster token is a secret: hubfleet keeps it encrypted in "
    "secrets/<member>-k3s.yaml and writes it into the server's config itself",
    "agent-token": "a join token is a secret; it does not belong in the registry",
}


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostFile:
    """A file as it should be on a host."""

    path: str
    content: str
    mode: int = 0o644


# --- hosts and roles ------------------------------------------------------------------------


def service_name(host: Host) -> str:
    """The systemd unit the install script creates on this host."""
    return "k3s" if is_server(host) else "k3s-agent"


def server_url(address: str, port: int = API_PORT) -> str:
    """The API server URL at `address`, e.g. https://203.0.113.7:6443."""
    return f"https://{address_with_port(address, port)}"


# --- config.yaml ----------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):  # k3s reads `disable: traefik` like `disable: [traefik]`
        return [item.strip() for item in value.split(",") if item.strip()]
    return [value]


def _combined(first: Iterable[Any], second: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in [*first, *second]:
        if item not in out:
            out.append(item)
    return out


def merge_options(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """k3s options with `extra` laid over `base`: lists are combined without duplicates
    (a member adds to `disable` or `tls-san`, it cannot drop hubfleet's entries); other
    values from `extra` win."""
    merged = dict(base)
    for key, value in extra.items():
        if key in merged and (isinstance(merged[key], list) or isinstance(value, list)):
            merged[key] = _combined(_as_list(merged[key]), _as_list(value))
        else:
            merged[key] = value
    return merged


def _member_options(member: Member) -> dict[str, Any]:
    extra = member.k3s.get("config") or {}
    for key in extra:
        reason = MANAGED_KEYS.get(str(key).rstrip("+"))
        if reason:
            raise ConfigError(f"member {member.name}: k3s.config.{key} is not allowed: {reason}")
    return {str(k): v for k, v in extra.items()}


def server_config(member: Member, host: Host, token: str | None = None) -> dict[str, Any]:
    """The k3s config of a server: TLS names, traefik off, node name, the member's options,
    and the member's cluster token when given (see hubfleet.k3s.token).

    `tls-san` holds the address clients use (kubeconfig) and the member's domain; the SSH
    address too when it differs, since agents join through it.
    """
    base: dict[str, Any] = {}
    if host.name:
        base["node-name"] = host.name
    if token is not None:
        base["token"] = token
    base["tls-san"] = _combined([host.public, member.domain], [host.address])
    base["disable"] = ["traefik"]  # the chart brings its own ingress controller
    return merge_options(base, _member_options(member))


def split_agent_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The options `k3s agent` accepts, and the names of those it would refuse."""
    kept = {k: v for k, v in options.items() if k.rstrip("+") in AGENT_KEYS}
    return kept, [k for k in options if k not in kept]


def agent_config(member: Member, host: Host) -> dict[str, Any]:
    """The k3s config of an agent: its node name and the agent-valid member options."""
    base: dict[str, Any] = {"node-name": host.name} if host.name else {}
    kept, _dropped = split_agent_options(merge_options(base, _member_options(member)))
    return kept


def k3s_config(member: Member, host: Host, token: str | None = None) -> dict[str, Any]:
    """The config of this host, by its role (the token goes to servers only: agents get it
    from the install script's environment)."""
    return server_config(member, host, token) if is_server(host) else agent_config(member, host)


def _header(member: Member, what: str) -> str:
    return (
        f"# {what}, written by hubfleet from config/federation.yaml (member {member.name}).\n"
        "# Edit the registry instead: changes here are overwritten on the next bootstrap.\n"
    )


def config_file(member: Member, host: Host, token: str | None = None) -> HostFile:
    """/etc/rancher/k3s/config.yaml for this host (0600: a server's holds the cluster token)."""
    body = yaml.safe_dump(
        k3s_config(member, host, token), sort_keys=False, default_flow_style=False
    )
    return HostFile(CONFIG_PATH, _header(member, "k3s options") + body, 0o600)


# --- kubelet, sysctls, traefik --------------------------------------------------------------


def kubelet_config(member: Member, ram_gb: float) -> dict[str, Any]:
    """The KubeletConfiguration drop-in for a node with `ram_gb` of RAM (see hubfleet.registry.sizing)."""
    sizing = node_sizing(ram_gb, member.k3s, member.sizing)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "maxPods": sizing.max_pods,
        "imageGCHighThresholdPercent": sizing.image_gc_high,
        "imageGCLowThresholdPercent": sizing.image_gc_low,
    }


def kubelet_file(member: Member, ram_gb: float) -> HostFile:
    """The kubelet drop-in; k3s reads kubelet.conf.d in name order, so 999- wins over its 00-
    and over an operator's 99-."""
    body = yaml.safe_dump(kubelet_config(member, ram_gb), sort_keys=False)
    return HostFile(KUBELET_CONFIG_PATH, _header(member, "kubelet settings") + body)


def kubelet_dropins(probe_output: str) -> list[str]:
    """The drop-in names KUBELET_DROPINS_PROBE listed (empty when the folder is missing)."""
    for line in probe_output.splitlines():
        if line.startswith("kubelet_dropins="):
            return line.removeprefix("kubelet_dropins=").split()
    return []


def sysctl_file() -> HostFile:
    """The inotify limits as a sysctl.d drop-in (applied with `sysctl --system`)."""
    lines = "".join(f"{key} = {value}\n" for key, value in INOTIFY_SYSCTLS.items())
    comment = "# inotify limits for binder's many pods, written by hubfleet\n"
    return HostFile(SYSCTL_PATH, comment + lines)


def parse_sysctl_values(output: str) -> dict[str, int]:
    """`sysctl fs.inotify.max_user_instances fs.inotify.max_user_watches` output, as numbers."""
    values: dict[str, int] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip().isdigit():
            values[key.strip()] = int(value.strip())
    return values


def traefik_skip_file() -> HostFile:
    """The empty marker that keeps k3s from (re)deploying its bundled traefik (servers only)."""
    return HostFile(TRAEFIK_SKIP_PATH, "")


def host_files(member: Member, host: Host, ram_gb: float) -> list[HostFile]:
    """Every file a k3s host gets, in the order they should be written (before the install)."""
    files = [sysctl_file(), config_file(member, host), kubelet_file(member, ram_gb)]
    if is_server(host):
        files.append(traefik_skip_file())
    return files


# --- readings ---------------------------------------------------------------------------------
