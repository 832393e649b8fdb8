"""What a k3s host should look like, as data: files, install command, and readings of its state.

Pure: no I/O. From the member record and one of its hosts this renders the k3s `config.yaml`
(server or agent), the kubelet drop-in (maxPods and image GC from `hubfleet.sizing`), the
inotify sysctls, the traefik skip marker, and the install script invocation (download, pinned
version or channel, air-gapped, agent join). It also decides whether a host needs an install or
only a restart, and parses `k3s --version` and `k3s kubectl get nodes -o json`. The step runner
applies all of this over SSH; every option k3s should keep lives in the config file, since
install-script environment is forgotten when the script is run again without it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

import yaml

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.registry import Host, Member
from hubfleet.sizing import node_sizing

CONFIG_PATH = "/etc/rancher/k3s/config.yaml"
KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"
TOKEN_PATH = "/var/lib/rancher/k3s/server/token"
KUBELET_CONFIG_PATH = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/99-hubfleet.conf"
SYSCTL_PATH = "/etc/sysctl.d/90-hubfleet-inotify.conf"
TRAEFIK_SKIP_PATH = "/var/lib/rancher/k3s/server/manifests/traefik.yaml.skip"
BINARY_PATH = "/usr/local/bin/k3s"
AIRGAP_IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"
AIRGAP_INSTALL_SCRIPT_PATH = "/usr/local/bin/k3s-install.sh"

API_PORT = 6443
DEFAULT_CHANNEL = "stable"
INSTALL_URL = "https://get.k3s.io"

SERVER_ROLES = frozenset({"server", "main"})

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
    "token": "a join token is a secret; hubfleet passes it from the server, never in the registry",
    "agent-token": "a join token is a secret; it does not belong in the registry",
}


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostFile:
    """A file as it should be on a host."""

    path: str
    content: str
    mode: int = 0o644


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


@dataclass(frozen=True)
class NodeStatus:
    """One node as `k3s kubectl get nodes -o json` shows it."""

    name: str
    ready: bool
    version: str
    control_plane: bool = False
    schedulable: bool = True


# --- hosts and roles ------------------------------------------------------------------------


def is_server(host: Host) -> bool:
    return host.role in SERVER_ROLES


def first_server(member: Member) -> Host:
    """The server agents join: the member's first host with the server role."""
    for host in member.hosts:
        if is_server(host):
            return host
    raise ConfigError(f"member {member.name}: no host has role server; k3s needs one")


def service_name(host: Host) -> str:
    """The systemd unit the install script creates on this host."""
    return "k3s" if is_server(host) else "k3s-agent"


def address_with_port(address: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets."""
    if ":" in address and not address.startswith("["):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


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


def server_config(member: Member, host: Host) -> dict[str, Any]:
    """The k3s config of a server: TLS names, traefik off, node name, the member's options.

    `tls-san` holds the address clients use (kubeconfig) and the member's domain; the SSH
    address too when it differs, since agents join through it.
    """
    base: dict[str, Any] = {}
    if host.name:
        base["node-name"] = host.name
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


def k3s_config(member: Member, host: Host) -> dict[str, Any]:
    """The config of this host, by its role."""
    return server_config(member, host) if is_server(host) else agent_config(member, host)


def _header(member: Member, what: str) -> str:
    return (
        f"# {what}, written by hubfleet from config/federation.yaml (member {member.name}).\n"
        "# Edit the registry instead: changes here are overwritten on the next bootstrap.\n"
    )


def config_file(member: Member, host: Host) -> HostFile:
    """/etc/rancher/k3s/config.yaml for this host (0600: it may name files holding secrets)."""
    body = yaml.safe_dump(k3s_config(member, host), sort_keys=False, default_flow_style=False)
    return HostFile(CONFIG_PATH, _header(member, "k3s options") + body, 0o600)


# --- kubelet, sysctls, traefik --------------------------------------------------------------


def kubelet_config(member: Member, ram_gb: float) -> dict[str, Any]:
    """The KubeletConfiguration drop-in for a node with `ram_gb` of RAM (see hubfleet.sizing)."""
    sizing = node_sizing(ram_gb, member.k3s, member.sizing)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "maxPods": sizing.max_pods,
        "imageGCHighThresholdPercent": sizing.image_gc_high,
        "imageGCLowThresholdPercent": sizing.image_gc_low,
    }


def kubelet_file(member: Member, ram_gb: float) -> HostFile:
    """The kubelet drop-in; k3s reads kubelet.conf.d in name order, so 99- wins over its 00-."""
    body = yaml.safe_dump(kubelet_config(member, ram_gb), sort_keys=False)
    return HostFile(KUBELET_CONFIG_PATH, _header(member, "kubelet settings") + body)


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


# --- install ----------------------------------------------------------------------------------


def wanted_version(member: Member) -> str | None:
    """The pinned k3s version, or None when the member follows a channel."""
    version = member.k3s.get("version")
    return str(version) if version else None


def check_token(token: str) -> str:
    """The join token as read from the server's token file, checked and stripped."""
    value = token.strip()
    if not value.startswith("K10") or "::" not in value or "\n" in value:
        raise HubfleetError(f"{TOKEN_PATH} does not hold a k3s join token (K10<ca-hash>::...)")
    return value


def install_command(member: Member, host: Host, token: str | None = None) -> InstallCommand:
    """The install script invocation for this host.

    The member's first server installs plainly; agents (and further servers) join it, with
    K3S_URL and the server's token, which travels in `secret_env` only. A pinned `k3s.version`
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
                "server's token"
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


# --- readings ---------------------------------------------------------------------------------


def parse_version(output: str) -> str:
    """The version from `k3s --version` output (`k3s version v1.32.5+k3s1 (8e8f2a47)`)."""
    match = re.search(r"^k3s version (v\S+)", output, re.MULTILINE)
    if not match:
        first = (output.strip().splitlines() or ["no output"])[0]
        raise HubfleetError(f"cannot read the k3s version from: {first}")
    return match.group(1)


def parse_nodes(output: str) -> list[NodeStatus]:
    """The nodes in `k3s kubectl get nodes -o json` output."""
    try:
        data = json.loads(output)
    except ValueError as err:
        raise HubfleetError(f"k3s kubectl get nodes did not print JSON ({err})") from None
    nodes = []
    for item in data.get("items", []) if isinstance(data, dict) else []:
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        labels = meta.get("labels") or {}
        nodes.append(
            NodeStatus(
                name=str(meta.get("name", "")),
                ready=conditions.get("Ready") == "True",
                version=str(status.get("nodeInfo", {}).get("kubeletVersion", "")),
                control_plane=labels.get("node-role.kubernetes.io/control-plane") == "true",
                schedulable=not spec.get("unschedulable", False),
            )
        )
    return nodes
