"""The MicroK8s bootstrap's steps, in runbook order, run by `hubfleet.hosts.bootstrap.bootstrap_member`.

Host steps (every host at once; a worker's join waits for the main node's ready):
preflight (+ GPUs), operators-key, firewall, wireguard, snap-install, ready, node-ip (with
WireGuard), addons (main), join (workers). Member steps: metallb, calico-vpn (with WireGuard),
verify, kubeconfig.

What should be comes from `hubfleet.microk8s.settings`, `hubfleet.microk8s.cluster`,
`hubfleet.microk8s.network` and `hubfleet.microk8s.wireguard` (pure); here it is checked against the
host (from the run's one-round-trip snapshot where possible) and changed only where it differs.
Join tokens are single-use: a failed join gets a fresh one for its retry.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hubfleet.errors import HubfleetError
from hubfleet.hosts.common_steps import ROOT_AUTHORIZED_KEYS, operators_key, preflight
from hubfleet.hosts.steps import Outcome, Step
from hubfleet.microk8s import cluster as microk8s_cluster
from hubfleet.microk8s import network as microk8s_network
from hubfleet.microk8s import settings as microk8s
from hubfleet.registry import roles

if TYPE_CHECKING:
    from hubfleet.hosts.member_run import HostContext, MemberRun
    from hubfleet.registry.members import Host, Member

WG_CONFIG = "/etc/wireguard/wg0.conf"
WG_UNIT = "wg-quick@wg0"
CSR_TEMPLATE = "/var/snap/microk8s/current/certs/csr.conf.template"
KUBELET_ARGS = microk8s_network.KUBELET_ARGS_PATH
READY_TIMEOUT_S = 300
JOIN_ATTEMPTS = 2


def _line(output: str, key: str) -> str | None:
    prefix = f"{key}="
    for line in output.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :]
    return None


def _decoded(output: str, key: str) -> str:
    value = _line(output, key)
    return base64.b64decode(value).decode() if value else ""


def snapshot(member: Member) -> Callable[[Host], tuple[list[str], str]]:
    """What the MicroK8s steps check on a host, gathered with its facts in one round trip."""
    is_main = _main_checker(member)

    def of(host: Host) -> tuple[list[str], str]:
        files = [ROOT_AUTHORIZED_KEYS, WG_CONFIG]
        extra = [
            "echo nvidia_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')",
            "echo nvidia_said=$(nvidia-smi -L 2>&1 | head -n 3 | base64 -w0)",
            "echo ufw=$(ufw status verbose 2>/dev/null | base64 -w0)",
            "echo snap=$(snap list microk8s 2>/dev/null | base64 -w0)",
            "echo refresh_timer=$(snap get system refresh.timer 2>/dev/null | base64 -w0)",
            f"echo wg_active=$(systemctl is-active {WG_UNIT} 2>/dev/null)",
            "echo addresses=$(ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\\n' ' ')",
        ]
        if is_main(host):
            files.append(CSR_TEMPLATE)
            extra.append(
                "if command -v microk8s >/dev/null; then "
                "echo status=$(microk8s status --format yaml 2>/dev/null | base64 -w0); "
                "echo nodes_json=$(microk8s kubectl get nodes -o json 2>/dev/null | base64 -w0); fi"
            )
        return files, "\n".join(extra)

    return of


def _main_checker(member: Member) -> Callable[[Host], bool]:
    main = roles.main_host(member)
    return lambda host: host == main


def _is_main(context: HostContext) -> bool:
    return context.host == roles.main_host(context.member)


# --- host steps ---------------------------------------------------------------------------


def preflight_with_gpus(context: HostContext, dry_run: bool) -> Outcome:
    """The common preflight, plus: a GPU member's workers list at least one GPU."""
    outcome = preflight(context, dry_run)
    if context.member.microk8s.get("gpu") and not _is_main(context):
        output = context.snapshot.output
        gpus = int(_line(output, "nvidia_gpus") or 0)
        if gpus < 1:
            said = _decoded(output, "nvidia_said").strip().splitlines()
            shown = said[0] if said else "nvidia-smi: command not found"
            raise HubfleetError(
                f"{context.session.label}: preflight failed: gpu is true but nvidia-smi lists "
                f"no GPU (it said: {shown}); install the NVIDIA driver first"
            )
        return Outcome.ok(f"{outcome.detail}, {gpus} GPU(s)")
    return outcome


def firewall(context: HostContext, dry_run: bool) -> Outcome:
    """When ufw is active: allow in/out on cni0 and routed traffic (MicroK8s docs)."""
    status = _decoded(context.snapshot.output, "ufw")
    if "Status: active" not in status:
        return Outcome.ok("ufw not active")
    missing = microk8s_network.ufw_missing(status)
    if not missing:
        return Outcome.ok("cni0 and routed traffic allowed")
    if not dry_run:
        context.session.run("; ".join(missing), what="opening ufw for cni0")
    return Outcome.changed("; ".join(missing), dry_run)


def wireguard(context: HostContext, dry_run: bool) -> Outcome:
    """wg0 from the registry: keys (sops-encrypted in the repo), config, wg-quick@wg0 up."""
    from hubfleet.microk8s import wireguard as wg
    from hubfleet.microk8s.wireguard_keys import member_keys

    keys = member_keys(context.run, dry_run)
    wanted = wg.config_for(context.member, context.host, keys)
    found = context.files([WG_CONFIG])[WG_CONFIG]
    active = _line(context.snapshot.output, "wg_active") == "active"
    if found == (wanted, 0o600) and active:
        return Outcome.ok(f"wg0 up as {wg.plan_addresses(context.member)[context.host.address]}")
    changes = []
    if found != (wanted, 0o600):
        changes.append(f"write {WG_CONFIG}")
    verb = "restart" if active else "enable --now"
    changes.append(f"systemctl {verb} {WG_UNIT}")
    if not dry_run:
        then = f"systemctl {verb} {WG_UNIT}"
        if found != (wanted, 0o600):
            context.session.write_file(WG_CONFIG, wanted, 0o600, then=then)
        else:
            context.session.run(then, what=f"starting {WG_UNIT}")
    return Outcome.changed("; ".join(changes), dry_run)


def snap_install(context: HostContext, dry_run: bool) -> Outcome:
    """MicroK8s from the pinned channel (refreshed, never downgraded), automatic refreshes
    held (or limited to the record's window)."""
    channel = microk8s.settings(context.member).channel
    state = microk8s.parse_snap_list(_decoded(context.snapshot.output, "snap"))
    decision = microk8s.snap_decision(state, channel)
    commands = [decision.command] if decision else []
    installed = state or microk8s.SnapState("", "", channel, held=False)
    timer = _decoded(context.snapshot.output, "refresh_timer").strip() or None
    commands += microk8s.refresh_commands(context.member, installed, timer)
    if not commands:
        kept = f"refreshes only {timer}" if timer and not installed.held else "refreshes held"
        return Outcome.ok(f"microk8s {installed.version} from {channel}, {kept}")
    if not dry_run:
        context.session.run(" && ".join(commands), what="installing microk8s")
    return Outcome.changed("; ".join(commands), dry_run)


def _has_wireguard(context: Any) -> bool:
    return bool(context.member.microk8s.get("wireguard"))


def _wait_ready(context: HostContext) -> None:
    timeout = int(context.options.ready_timeout_s)
    done = context.session.run(
        f"microk8s status --wait-ready --timeout {timeout} >/dev/null", check=False
    )
    if not done.ok:
        raise HubfleetError(f"{context.session.label}: microk8s not ready after {timeout}s")


def ready(context: HostContext, dry_run: bool) -> Outcome:
    """`microk8s status --wait-ready`: a timeout is a failure."""
    if dry_run and _decoded(context.snapshot.output, "snap") == "":
        return Outcome.changed("would wait for microk8s to be ready", True)
    _wait_ready(context)
    return Outcome.ok("microk8s is ready")


def node_ip(context: HostContext, dry_run: bool) -> Outcome:
    """With WireGuard: the kubelet advertises the host's VPN address (`--node-ip` in its args
    file), so node InternalIPs and the traffic that follows them go through wg0. The file is
    read as it is now: the start-of-run snapshot predates the snap's install."""
    from hubfleet.microk8s import wireguard as wg

    address = wg.plan_addresses(context.member)[context.host.address]
    found = context.session.read_files([KUBELET_ARGS])[KUBELET_ARGS]
    if found is None:
        if dry_run and _decoded(context.snapshot.output, "snap") == "":
            return Outcome.changed(f"would set --node-ip={address} in {KUBELET_ARGS}", True)
        raise HubfleetError(
            f"{context.session.label}: {KUBELET_ARGS} is missing; is the microk8s snap installed?"
        )
    wanted = microk8s_network.kubelet_args_with_node_ip(found, address)
    if found == wanted:
        return Outcome.ok(f"kubelet advertises {address}")
    if not dry_run:
        context.session.write_file(
            KUBELET_ARGS, wanted, 0o644, then=microk8s_network.KUBELITE_RESTART_COMMAND
        )
        _wait_ready(context)  # the steps after this one need the API server back
    return Outcome.changed(
        f"--node-ip={address} in {KUBELET_ARGS}; {microk8s_network.KUBELITE_RESTART_COMMAND}",
        dry_run,
    )


def addons(context: HostContext, dry_run: bool) -> Outcome:
    """The member's addons on the main node, in dependency order; enabled ones left alone."""
    status_text = _decoded(context.snapshot.output, "status")
    if context.run.changed() or not status_text:
        status_text = context.session.run(
            "microk8s status --format yaml", check=not dry_run, what="reading addons"
        ).stdout
    _, enabled = microk8s_cluster.parse_status(status_text)
    missing = microk8s.missing_addons(context.member, enabled)
    if not missing:
        return Outcome.ok(f"enabled: {', '.join(microk8s.wanted_addons(context.member))}")
    if not dry_run:
        script = " && ".join(microk8s.enable_command(a) for a in missing)
        context.session.run(script, what=f"enabling {', '.join(missing)}")
    return Outcome.changed("enable " + ", ".join(missing), dry_run)


def _node_names(text: str) -> set[str]:
    return {n.name for n in microk8s_cluster.parse_nodes(text)} if text else set()


def join(context: HostContext, dry_run: bool) -> Outcome:
    """A worker joins the main node with a fresh single-use token (a new one for a retry)."""
    run = context.run
    main_host = roles.main_host(context.member)
    name = context.host.name or context.facts.hostname
    known = run.snapshots.get(main_host.address)
    if known and name in _node_names(_decoded(known.output, "nodes_json")):
        return Outcome.ok(f"{name} is a node of the cluster")
    # the main node must be up (and on its VPN address): its addons may go on meanwhile
    steps = ["ready", "node-ip"] if _has_wireguard(context) else ["ready"]
    if not run.wait_for_steps(main_host, steps, context.options.ready_timeout_s + 900):
        raise HubfleetError(f"{context.session.label}: not joined: the main node's steps failed")
    if dry_run:
        return Outcome.changed(f"would join {main_host.address} as a worker", True)
    main = run.session_for(main_host)
    address = microk8s_cluster.join_address(context.member, main_host)
    ttl = int(context.member.microk8s.get("token_ttl", 120))
    last = ""
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        with run.lock:  # one token at a time from the main node
            ticket = microk8s_cluster.parse_add_node(
                main.run(microk8s_cluster.add_node_command(ttl), what="making a join token").stdout
            )
        url = microk8s_cluster.join_url(ticket, address)
        joined = context.session.run(
            "IFS= read -r url; " + microk8s_cluster.join_command('"$url"', worker=True),
            stdin=url + "\n",
            check=False,
        )
        if joined.ok:
            return Outcome.changed(f"joined {address} as a worker (attempt {attempt})", False)
        last = (joined.stderr.strip() or joined.stdout.strip() or "no output").splitlines()[-1]
    raise HubfleetError(
        f"{context.session.label}: join failed {JOIN_ATTEMPTS} times, last: {last}; rerun to retry"
    )


# --- member steps (through the main node) -------------------------------------------------


def metallb(run: MemberRun, dry_run: bool) -> Outcome:
    """MetalLB after all joins, always with the registry's range (without one it prompts)."""
    main = run.session_for(roles.main_host(run.member))
    argument = microk8s.metallb_argument(run.member)
    status = main.run("microk8s status --format yaml", check=not dry_run, what="reading addons")
    _, enabled = microk8s_cluster.parse_status(status.stdout)
    if "metallb" in enabled:
        return Outcome.ok(f"metallb enabled ({argument.split(':', 1)[1]})")
    if not dry_run:
        main.run(microk8s.enable_command(argument), what="enabling metallb")
    return Outcome.changed(f"enable {argument}", dry_run)


def calico_vpn(run: MemberRun, dry_run: bool) -> Outcome:
    """With WireGuard: Calico takes each node's InternalIP (its VPN address, see node-ip) as
    the node's address, instead of the first interface it finds."""
    main = run.session_for(roles.main_host(run.member))
    wanted = f"{microk8s_network.CALICO_AUTODETECTION}={microk8s_network.CALICO_INTERNAL_IP}"
    found = main.run(
        microk8s_network.calico_env_command(),
        check=not dry_run,
        what="reading calico-node's environment",
    )
    if not found.ok:  # a dry run before MicroK8s is installed
        return Outcome.changed(f"would set {wanted} on calico-node", True)
    current = microk8s_network.calico_autodetection(found.stdout)
    if current == microk8s_network.CALICO_INTERNAL_IP:
        return Outcome.ok(f"calico-node has {wanted}")
    if not dry_run:
        main.run(
            microk8s_network.calico_set_env_command(), what="setting calico-node's environment"
        )
    return Outcome.changed(f"calico-node: {wanted} (was {current or 'unset'})", dry_run)


def verify(run: MemberRun, dry_run: bool) -> Outcome:
    """Every host is a Ready node and there are exactly as many nodes as hosts."""
    main = run.session_for(roles.main_host(run.member))
    # all of the record's hosts; a run that could not reach some checks the others
    wanted = len(run.shared.get("targets") or run.member.hosts)
    deadline = time.monotonic() + run.options.ready_timeout_s
    pause = 0.25
    while True:
        found = main.run("microk8s kubectl get nodes -o json", check=False, what="listing nodes")
        nodes = microk8s_cluster.parse_nodes(found.stdout) if found.ok else []
        ready = [n.name for n in nodes if n.ready]
        if len(ready) == wanted == len(nodes) or (
            wanted < len(run.member.hosts) and len(ready) >= wanted
        ):
            return Outcome.ok(f"{wanted} node(s) Ready: {', '.join(sorted(ready))}")
        if dry_run:
            return Outcome.changed(f"{len(ready)} of {wanted} node(s) Ready now", True)
        if time.monotonic() >= deadline:
            not_ready = sorted(n.name for n in nodes if not n.ready)
            raise HubfleetError(
                f"member {run.member.name}: {len(ready)} of {wanted} node(s) Ready after "
                f"{run.options.ready_timeout_s:.0f}s (nodes: {len(nodes)}; not Ready: "
                f"{', '.join(not_ready) or 'none'})"
            )
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def kubeconfig(run: MemberRun, dry_run: bool) -> Outcome:
    """`microk8s config` rewritten for the member (server on the public or VPN address, port
    16443), stored sops-encrypted; the address is added to the API certificate first when the
    node does not have it on an interface."""
    from hubfleet.files.yamlfile import parse_bounded
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.secrets import sops

    main_host = roles.main_host(run.member)
    main = run.session_for(main_host)
    address = microk8s_network.api_address(run.member, main_host)
    snapshot = run.snapshots.get(main_host.address)
    local = set((_line(snapshot.output, "addresses") or "").split()) if snapshot else set()
    notes = []
    if address not in local:
        template = main.read_files([CSR_TEMPLATE])[CSR_TEMPLATE] or ""
        if microk8s_network.needs_san(template, address):
            notes.append(f"added {address} to the API certificate")
            if not dry_run:
                main.write_file(
                    CSR_TEMPLATE,
                    microk8s_network.csr_template_with_sans(template, [address]),
                    0o644,
                    then=microk8s_network.refresh_certs_command(),
                )
    path = run.repo.member_kubeconfig(run.member.name)
    if dry_run and not notes and not path.is_file():
        return Outcome.changed(f"would store {run.repo.relative(path)}", True)
    config = main.run("microk8s config", what="reading the kubeconfig").stdout
    fetched = parse_bounded(config, f"{main_host.address}: microk8s config")
    rewritten = kc.rewrite(
        fetched, run.member.name, microk8s_network.api_url(address), run.member.namespace
    )
    current = sops.decrypt_yaml(run.repo, path) if path.is_file() else None
    if current == rewritten and not notes:
        return Outcome.ok(f"{run.repo.relative(path)} up to date")
    if not dry_run:
        sops.write_encrypted(run.repo, path, kc.as_yaml(rewritten))
    notes.append(("stored " if current is None else "updated ") + run.repo.relative(path))
    return Outcome.changed("; ".join(notes), dry_run)


# --- the step lists -----------------------------------------------------------------------

HOST_STEPS = (
    Step("preflight", preflight_with_gpus),
    Step("operators-key", operators_key),
    Step("firewall", firewall),
    Step("wireguard", wireguard, applies=_has_wireguard),
    Step("snap-install", snap_install),
    Step("ready", ready),
    Step("node-ip", node_ip, applies=_has_wireguard),
    Step("addons", addons, applies=_is_main),
    Step("join", join, applies=lambda c: not _is_main(c)),
)
MEMBER_STEP_NAMES = ("metallb", "calico-vpn", "verify", "kubeconfig")


def member_steps(member: Member, options: Any, kube_api: Any) -> list[Step]:
    main = roles.main_host(member)
    if options.only_host and options.only_host not in (main.address, main.name):
        return [Step("verify", verify)]
    return [
        Step("metallb", metallb),
        Step("calico-vpn", calico_vpn, applies=_has_wireguard),
        Step("verify", verify),
        Step("kubeconfig", kubeconfig),
    ]


def flavour() -> Any:
    from hubfleet.hosts.bootstrap import Flavour

    return Flavour(
        provider="microk8s",
        host_steps=HOST_STEPS,
        member_step_names=MEMBER_STEP_NAMES,
        member_steps=member_steps,
        first_host=roles.main_host,
        snapshot=snapshot,
    )
