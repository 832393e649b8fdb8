"""The k3s bootstrap's steps, in runbook order (run by hubfleet.k3s.bootstrap).

Host steps (every host at once, in one wave): preflight, operators-key, cluster-token (the first
server), sysctl, kubelet-config, k3s-config, dind-disk, k3s-install (server) or join (agents).
The member's cluster token is chosen up front (hubfleet.k3s.token), so an agent installs while
its server does and joins as soon as the server answers; the `ready` step waits for that.
Member steps (once, through the server): ready, kubeconfig, upgrade-plan.

What each file should hold comes from `hubfleet.k3s.config`, the install command from
`hubfleet.k3s.install` (both pure); here they are compared with the host and changed only where
they differ. k3s is installed, upgraded or restarted only when its version or its configuration
changed: a marker file on the host holds the checksum of the configuration k3s last started
with, so a run that failed between writing the config and restarting k3s still restarts it when
resumed.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from hubfleet.errors import HubfleetError
from hubfleet.hosts.common_steps import dind_disk, operators_key, preflight
from hubfleet.hosts.steps import Outcome, Step
from hubfleet.k3s import config as k3s
from hubfleet.k3s.config import HostFile
from hubfleet.k3s.install import (
    InstallDecision,
    install_command,
    needs_install,
    parse_version,
    wanted_version,
)
from hubfleet.k3s.token import cluster_token, cluster_token_step
from hubfleet.kube.nodes import parse_nodes
from hubfleet.registry import roles

if TYPE_CHECKING:
    from hubfleet.hosts.member_run import HostContext, MemberRun
    from hubfleet.kube.credentials import ClusterCredentials

CONFIG_MARKER = "/var/lib/rancher/k3s/hubfleet-config.sha256"
# the checksum of the k3s.yaml last stored in the repo: an unchanged one is not fetched again
KUBECONFIG_MARKER = "/var/lib/rancher/k3s/hubfleet-kubeconfig.sha256"
# first and longest wait between looks at the node list, and how the wait grows: fine-grained
# early (agents join within seconds of their server), every 2 s once it takes longer
READY_POLL_S = (0.05, 2.0)
READY_POLL_GROWTH = 1.3
CERT_WARN_DAYS = 30

KubeApi = Callable[["ClusterCredentials"], AbstractContextManager[Any]]


# --- files --------------------------------------------------------------------------------


def ensure_files(context: HostContext, files: Sequence[HostFile], dry_run: bool) -> list[str]:
    """Write the files whose content or mode differs; the paths that (would) change."""
    found = context.files([f.path for f in files])
    stale = [f for f in files if found[f.path] != (f.content, f.mode)]
    if stale and not dry_run:  # sent with the host's next command (its install, on a new host)
        context.session.write_files([(f.path, f.content, f.mode) for f in stale], later=True)
    return [f.path for f in stale]


def config_checksum(member: Any, host: Any, ram_gb: float) -> str:
    """What k3s reads at start: its config and the kubelet drop-in. The cluster token is left
    out: k3s keeps the token it first started with, so a restart would not change it, and a
    server adopted with its own token is not restarted for writing it down."""
    text = k3s.config_file(member, host).content + k3s.kubelet_file(member, ram_gb).content
    return hashlib.sha256(text.encode()).hexdigest()


def sysctl(context: HostContext, dry_run: bool) -> Outcome:
    """fs.inotify limits persisted in /etc/sysctl.d and applied now."""
    wanted = k3s.sysctl_file()
    probe = context.snapshot
    if wanted.path not in probe.files:
        keys = " ".join(k3s.INOTIFY_SYSCTLS)
        probe = context.session.probe([wanted.path], also=f"sysctl {keys}")
    live = k3s.parse_sysctl_values(probe.output)
    stale = [k for k, v in k3s.INOTIFY_SYSCTLS.items() if live.get(k) != v]
    persisted = probe.files[wanted.path] == (wanted.content, wanted.mode)
    summary = ", ".join(f"{k.rsplit('.', 1)[1]}={v}" for k, v in k3s.INOTIFY_SYSCTLS.items())
    if persisted and not stale:
        return Outcome.ok(summary)
    if not dry_run:
        apply = f"sysctl -p {wanted.path} >/dev/null"
        if persisted:
            context.session.later(apply, what="applying sysctls")
        else:
            context.session.write_file(
                wanted.path, wanted.content, wanted.mode, then=apply, later=True
            )
    done = ([f"wrote {wanted.path}"] if not persisted else []) + [f"applied {summary}"]
    return Outcome.changed("; ".join(done), dry_run)


def kubelet_config(context: HostContext, dry_run: bool) -> Outcome:
    """hubfleet's kubelet drop-in, sorting after every other (an operator's 99-kubelet.conf
    included, which it then wins over); its earlier name removed."""
    file = k3s.kubelet_file(context.member, context.facts.ram_gb)
    max_pods = k3s.kubelet_config(context.member, context.facts.ram_gb)["maxPods"]
    probe = context.snapshot
    if "kubelet_dropins=" not in probe.output:
        probe = context.session.probe([], also=k3s.KUBELET_DROPINS_PROBE)
    ours = file.path.rsplit("/", 1)[1]
    present = [n for n in k3s.kubelet_dropins(probe.output) if n != ours]
    old = [n for n in present if n in k3s.OLD_KUBELET_CONFIG_NAMES]
    overridden = [n for n in present if n < ours and n not in old and not n.startswith("00-k3s")]
    notes = [f"wins over {', '.join(overridden)}"] if overridden else []
    later = [n for n in present if n > ours]
    if later:  # they would win over hubfleet's: said, not removed (they are the operator's)
        notes.append(f"{', '.join(later)} sorts after it and overrides it")
    wrote = ensure_files(context, [file], dry_run)
    if old and not dry_run:
        paths = " ".join(f"{k3s.KUBELET_DROPIN_DIR}/{n}" for n in old)
        context.session.later(f"rm -f {paths}", what="removing hubfleet's earlier kubelet drop-in")
    detail = f"maxPods {max_pods}" + "".join(f"; {n}" for n in notes)
    if not wrote and not old:
        return Outcome.ok(detail)
    done = ([f"wrote {file.path}"] if wrote else []) + [f"removed {n}" for n in old]
    return Outcome.changed(f"{', '.join(done)} ({detail})", dry_run)


def k3s_config(context: HostContext, dry_run: bool) -> Outcome:
    """config.yaml (a server's with the cluster token) and, on servers, the traefik skip."""
    token = cluster_token(context.run, dry_run).value if roles.is_server(context.host) else None
    files = [k3s.config_file(context.member, context.host, token)]
    if roles.is_server(context.host):
        files.append(k3s.traefik_skip_file())
    changed = ensure_files(context, files, dry_run)
    if not changed:
        return Outcome.ok(", ".join(f.path for f in files))
    return Outcome.changed("wrote " + ", ".join(changed), dry_run)


# --- install and join ---------------------------------------------------------------------


def install_probe(host: Any) -> str:
    """Shell printing the installed k3s version and whether its service is active."""
    return (
        f"if [ -x {k3s.BINARY_PATH} ]; then {k3s.BINARY_PATH} --version; fi; "
        f"echo active=$(systemctl is-active {k3s.service_name(host)} 2>/dev/null)"
    )


def _installed(context: HostContext) -> tuple[str | None, str | None, bool]:
    """(installed version, checksum k3s last started with, service active): from the run's
    snapshot, or read (one round trip) when there is none."""
    probe = context.snapshot
    if CONFIG_MARKER not in probe.files:
        probe = context.session.probe([CONFIG_MARKER], also=install_probe(context.host))
    version = None
    active = False
    for line in probe.output.splitlines():
        if line.startswith("k3s version"):
            version = parse_version(line)
        elif line.startswith("active="):
            active = line.split("=", 1)[1].strip() == "active"
    marker = probe.files[CONFIG_MARKER]
    return version, marker[0].strip() if marker else None, active


def _install(
    context: HostContext, dry_run: bool, token: Callable[[], str] | None = None
) -> Outcome:
    member, host, session = context.member, context.host, context.session
    version, started_with, active = _installed(context)
    checksum = config_checksum(member, host, context.facts.ram_gb)
    decision = needs_install(version, wanted_version(member), started_with != checksum)
    service = k3s.service_name(host)
    if decision is None and active:
        return Outcome.ok(f"k3s {version} running ({service})")
    if decision is None:
        decision = InstallDecision("restart", f"{service} is not running")
    if dry_run:
        return Outcome.changed(f"would {decision.action}: {decision.reason}", True)
    marker = f"printf '%s\\n' {checksum} > {CONFIG_MARKER}"
    if decision.action == "restart":
        session.run(f"systemctl restart {service} && {marker}", what=f"restarting {service}")
        return Outcome.changed(decision.reason + f"; restarted {service}", False)
    command = install_command(member, host, token() if token else None)
    for upload in command.uploads:
        session.upload(context.repo.root / upload.source, upload.destination, upload.mode)
    output = session.run(
        # in a subshell: the join token it reads into its environment ends with it
        f"set -e; ( {command.command} ) >/dev/null; "
        f"mkdir -p {shlex.quote(CONFIG_MARKER.rsplit('/', 1)[0])}; {marker}; "
        f"{k3s.BINARY_PATH} --version | head -n1",
        stdin=command.stdin,
        what=f"installing k3s ({decision.action})",
    ).stdout
    installed = parse_version(output.strip().splitlines()[-1] if output.strip() else "")
    return Outcome.changed(f"{decision.reason}; now k3s {installed}", False)


def k3s_install(context: HostContext, dry_run: bool) -> Outcome:
    """Install (or upgrade, or restart after a config change) the member's first server."""
    return _install(context, dry_run)


def join(context: HostContext, dry_run: bool) -> Outcome:
    """An agent installs with the member's cluster token (on stdin only), at the same time as
    its server: like k3s-ansible, it need not wait, since k3s agents keep trying their server
    until it answers. The `ready` step waits (bounded) for it to have joined."""
    run = context.run
    return _install(context, dry_run, token=lambda: cluster_token(run, dry_run).value)


# --- member steps (through the server) ----------------------------------------------------


def expected_nodes(run: MemberRun) -> list[str]:
    """The nodes this run waits for: its hosts (with --host: that one and the server)."""
    hosts = run.shared.get("targets") or run.member.hosts
    return [h.name or run.facts[h.address].hostname for h in hosts]


def nodes_ready(run: MemberRun, dry_run: bool) -> Outcome:
    """Every host of the member is a Ready node; a timeout names the nodes that are not."""
    server = run.session_for(roles.first_server(run.member))
    wanted = expected_nodes(run)
    if dry_run and not any(run.facts[h.address].kubernetes for h in run.member.hosts):
        return Outcome.changed(f"would wait for {len(wanted)} node(s) to be Ready", True)
    deadline = time.monotonic() + run.options.ready_timeout_s
    snapshot = run.snapshots.get(roles.first_server(run.member).address)
    seen = _nodes_json(snapshot.output) if snapshot and not run.changed() else None
    pause = READY_POLL_S[0]
    # k3s.yaml is read with the nodes, so the kubeconfig step needs no command; while the repo
    # holds no kubeconfig for the member, its checksum is noted on the host here too (a note
    # read only once the repo holds one: a store that fails leaves it unread)
    first_store = not dry_run and not run.repo.member_kubeconfig(run.member.name).is_file()
    also = f"{k3s.BINARY_PATH} kubectl get nodes -o json"
    if first_store:
        also += (
            f"\nif [ -f {k3s.KUBECONFIG_PATH} ]; then set -- $(sha256sum {k3s.KUBECONFIG_PATH}); "
            f"printf '%s\\n' \"$1\" > {KUBECONFIG_MARKER}; set --; fi"
        )
    while True:
        if seen is None:
            found = server.probe([k3s.KUBECONFIG_PATH], also=also)
            seen = found.output
            run.shared["k3s.yaml"] = found.files[k3s.KUBECONFIG_PATH]
            run.shared["k3s.yaml noted"] = first_store
        answered = bool(seen)
        nodes = {n.name: n for n in parse_nodes(seen, "k3s kubectl get nodes")} if seen else {}
        seen = None  # after a first look, ask the server
        missing = [n for n in wanted if n not in nodes or not nodes[n].ready]
        if not missing:
            return Outcome.ok(f"{len(wanted)} node(s) Ready: {', '.join(wanted)}")
        if time.monotonic() >= deadline:
            raise HubfleetError(_not_ready(run, missing, nodes, answered))
        time.sleep(pause)
        pause = min(pause * READY_POLL_GROWTH, READY_POLL_S[1])


def _not_ready(run: MemberRun, missing: list[str], nodes: dict[str, Any], answered: bool) -> str:
    """One line for a `ready` timeout: the nodes not Ready and, when nodes never registered,
    the server their agents keep trying (or that it did not answer at all)."""
    timeout = f"{run.options.ready_timeout_s:.0f}s"
    url = k3s.server_url(roles.first_server(run.member).address)
    states = ", ".join(f"{n} ({'NotReady' if n in nodes else 'not registered'})" for n in missing)
    if not answered:
        return (
            f"member {run.member.name}: the server at {url} did not answer within {timeout} "
            f"(is k3s running there?); node(s) not Ready: {states}"
        )
    hint = (  # an agent keeps trying its server: it did not reach it in time
        f"; a node not registered has not reached the server at {url} "
        "(see journalctl -u k3s-agent on it)"
        if any(n not in nodes for n in missing)
        else ""
    )
    return f"member {run.member.name}: node(s) not Ready after {timeout}: {states}{hint}"


def kubeconfig(run: MemberRun, dry_run: bool) -> Outcome:
    """Fetch k3s.yaml, point it at the public address under the member's names, store it
    sops-encrypted; say how long its client certificate has left."""
    import datetime as dt

    from hubfleet.files.yamlfile import parse_bounded
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.secrets import sops

    host = roles.first_server(run.member)
    session = run.session_for(host)
    path = run.repo.member_kubeconfig(run.member.name)
    snapshot = run.snapshots.get(host.address)
    source_sum = _kubeconfig_sum(snapshot.output) if snapshot else None
    stored = snapshot.files.get(KUBECONFIG_MARKER) if snapshot else None
    if source_sum and stored and stored[0].strip() == source_sum and path.is_file():
        return Outcome.ok(f"{run.repo.relative(path)} up to date (k3s.yaml unchanged)")
    read_by_ready = run.shared.pop("k3s.yaml", None)  # (content, mode), read with the nodes
    noted = bool(read_by_ready) and run.shared.pop("k3s.yaml noted", False)
    if dry_run and read_by_ready is None:
        read_by_ready = session.probe([k3s.KUBECONFIG_PATH]).files[k3s.KUBECONFIG_PATH]
        if read_by_ready is None:
            into = run.repo.relative(run.repo.member_kubeconfig(run.member.name))
            return Outcome.changed(f"would fetch {k3s.KUBECONFIG_PATH} into {into}", True)
    source = read_by_ready[0] if read_by_ready else session.fetch(k3s.KUBECONFIG_PATH)
    fetched = parse_bounded(source, f"{host.address}:{k3s.KUBECONFIG_PATH}")
    rewritten = kc.rewrite(
        fetched, run.member.name, k3s.server_url(host.public), run.member.namespace
    )
    days = kc.client_cert_days_left(rewritten, dt.datetime.now(dt.UTC))
    note = f"client certificate expires in {days} days" if days is not None else ""
    if days is not None and days < CERT_WARN_DAYS:
        note = f"WARNING: {note}; restart k3s on {host.address} to renew, then rerun"
    current = sops.decrypt_yaml(run.repo, path) if path.is_file() else None
    remember = f"printf '%s\\n' {hashlib.sha256(source.encode()).hexdigest()} > {KUBECONFIG_MARKER}"
    if current == rewritten:
        if not dry_run:
            session.run(remember, what="noting the stored kubeconfig")
        return Outcome.ok(f"{run.repo.relative(path)} up to date; {note}".rstrip("; "))
    if not dry_run:
        sops.write_encrypted(run.repo, path, kc.as_yaml(rewritten))
        if not (noted and current is None):  # noted by `ready` when there was none to update
            session.run(remember, what="noting the stored kubeconfig")
    verb = "stored" if current is None else "updated"
    return Outcome.changed(f"{verb} {run.repo.relative(path)}; {note}".rstrip("; "), dry_run)


def _nodes_json(output: str) -> str | None:
    import base64

    for line in output.splitlines():
        if line.startswith("nodes_json=") and line[11:].strip():
            return base64.b64decode(line[11:]).decode()
    return None


def _kubeconfig_sum(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("kubeconfig_sha256="):
            return line.split("=", 1)[1].strip() or None
    return None


def upgrade_plan(run: MemberRun, dry_run: bool, kube_api: KubeApi) -> Outcome:
    """system-upgrade-controller Plans from the registry, applied through the Kubernetes API."""
    from hubfleet.cloud.credentials import member_credentials
    from hubfleet.k3s import upgrade_plan as plans

    rendered = plans.render_plans(run.member)
    if dry_run:
        return Outcome.changed(f"would apply {len(rendered)} plan(s)", True)
    creds = member_credentials(run.repo, run.member)
    with kube_api(creds) as api:
        outcomes = plans.apply_plans(api, rendered)
    changed = [o for o in outcomes if o.state != "ok"]
    detail = ", ".join(f"{o.name} {o.action}" for o in outcomes)
    return Outcome.changed(detail, False) if changed else Outcome.ok(detail)


# --- the step lists -----------------------------------------------------------------------


def _is_server(context: HostContext) -> bool:
    return context.host == roles.first_server(context.member)


HOST_STEPS = (
    Step("preflight", preflight),
    Step("operators-key", operators_key),
    Step("cluster-token", cluster_token_step, applies=_is_server),
    Step("sysctl", sysctl),
    Step("kubelet-config", kubelet_config),
    Step("k3s-config", k3s_config),
    Step("dind-disk", dind_disk, applies=lambda c: c.host.disk is not None),
    Step("k3s-install", k3s_install, applies=_is_server),
    Step("join", join, applies=lambda c: not _is_server(c)),
)

MEMBER_STEP_NAMES = ("ready", "kubeconfig", "upgrade-plan")
STEP_NAMES = tuple(s.name for s in HOST_STEPS) + MEMBER_STEP_NAMES
