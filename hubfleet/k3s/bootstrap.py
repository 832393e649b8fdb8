"""Running the k3s steps on a member's hosts: connect to all, gather facts and a snapshot of
what the steps check (one round trip a host), preflight every host before anything changes,
then every host's steps at once, in one wave (the cluster token is chosen up front, so agents
install while the server does and join when it answers), then the member steps (ready, which
waits for every node, kubeconfig, upgrade-plan). Also refreshing the kubeconfig alone, and uninstalling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hubfleet.hosts.bootstrap import Flavour, bootstrap_member
from hubfleet.hosts.steps import Outcome, Step, StepReport
from hubfleet.k3s import config as k3s
from hubfleet.k3s.steps import (
    CONFIG_MARKER,
    HOST_STEPS,
    KUBECONFIG_MARKER,
    MEMBER_STEP_NAMES,
    KubeApi,
    install_probe,
    kubeconfig,
    nodes_ready,
    upgrade_plan,
)
from hubfleet.k3s.token import prepare_token
from hubfleet.registry import roles

if TYPE_CHECKING:
    from contextlib import ExitStack

    from hubfleet.hosts.member_run import HostContext, MemberRun
    from hubfleet.registry.members import Member


def snapshot(member: Any) -> Callable[[Any], tuple[list[str], str]]:
    """What the k3s steps check on a host, gathered with its facts in one round trip."""
    from hubfleet.hosts.common_steps import ROOT_AUTHORIZED_KEYS

    def of(host: Any) -> tuple[list[str], str]:
        files = [k3s.sysctl_file().path, k3s.CONFIG_PATH, k3s.KUBELET_CONFIG_PATH]
        files += [CONFIG_MARKER, ROOT_AUTHORIZED_KEYS]
        extra = [
            f"sysctl {' '.join(k3s.INOTIFY_SYSCTLS)} 2>/dev/null",
            install_probe(host),
            k3s.KUBELET_DROPINS_PROBE,
        ]
        if roles.is_server(host):
            files += [k3s.TRAEFIK_SKIP_PATH, KUBECONFIG_MARKER, k3s.TOKEN_PATH]
            extra.append(
                f"set -- $(sha256sum {k3s.KUBECONFIG_PATH} 2>/dev/null); "
                'echo "kubeconfig_sha256=${1-}"; set --'
            )
            extra.append(
                f"if [ -x {k3s.BINARY_PATH} ]; then echo nodes_json=$({k3s.BINARY_PATH} kubectl "
                "get nodes -o json 2>/dev/null | base64 -w0); fi"
            )
        return files, "\n".join(extra)

    return of


def member_steps(member: Any, options: Any, kube_api: Any) -> list[Step]:
    """The steps run once per member: all three, or only `ready` when --host names an agent."""
    ready = Step("ready", nodes_ready)
    server = roles.first_server(member)
    if options.only_host and options.only_host not in (server.address, server.name):
        return [ready]
    if kube_api is None:
        from hubfleet.kube.client import member_api

        kube_api = member_api
    api = kube_api
    return [
        ready,
        Step("kubeconfig", kubeconfig),
        Step(
            "upgrade-plan",
            lambda run, dry_run: upgrade_plan(run, dry_run, api),
            applies=lambda run: bool(run.member.k3s.get("upgrade")),
        ),
    ]


def flavour() -> Flavour:
    return Flavour(
        provider="k3s",
        host_steps=HOST_STEPS,
        member_step_names=MEMBER_STEP_NAMES,
        member_steps=member_steps,
        first_host=roles.first_server,
        snapshot=snapshot,
        prepare=prepare_token,
    )


def bootstrap(
    repo: Any,
    member_name: str,
    options: Any,
    say: Callable[[str], None] = print,
    kube_api: KubeApi | None = None,
    commands: dict[str, int] | None = None,
) -> list[StepReport]:
    """Bring a k3s member's hosts to the registry's state; returns every step report.

    `commands`, when given, is filled with the number of SSH commands sent to each host
    (the fact gathering included)."""
    return bootstrap_member(repo, member_name, options, flavour(), say, kube_api, commands)


def _connect_only(
    repo: Any,
    member_name: str,
    options: Any,
    hosts_of: Callable[[Any], list[Any]],
    say: Callable[[str], None],
) -> tuple[Member, MemberRun, ExitStack]:
    from hubfleet.hosts.bootstrap import connect_member

    return connect_member(repo, member_name, "k3s", options, hosts_of, say)


def refresh_kubeconfig(
    repo: Any, member_name: str, options: Any, say: Callable[[str], None] = print
) -> list[StepReport]:
    """Fetch the server's kubeconfig again (e.g. after k3s renewed its certificate)."""
    from hubfleet.hosts.steps import run_steps

    member, run, stack = _connect_only(
        repo, member_name, options, lambda m: [roles.first_server(m)], say
    )
    with stack:
        run_steps(
            [Step("kubeconfig", kubeconfig)],
            run,
            f"member {member.name}",
            dry_run=options.dry_run,
            on_report=run.record,
        )
    return run.reports


def renew_certificates(
    repo: Any, member_name: str, options: Any, say: Callable[[str], None] = print
) -> list[StepReport]:
    """Restart k3s on the member's first server, then fetch its kubeconfig again: k3s renews
    its certificates that have 90 days or fewer left when it starts (REFERENCE.md), and a
    copy of the admin kubeconfig taken before keeps the old one. The API server is away for the
    restart; the workloads keep running."""
    from hubfleet.hosts.steps import run_steps

    member, run, stack = _connect_only(
        repo, member_name, options, lambda m: [roles.first_server(m)], say
    )

    def restart(run: MemberRun, dry_run: bool) -> Outcome:
        host = roles.first_server(run.member)
        unit = k3s.service_name(host)
        if dry_run:
            return Outcome.changed(f"would restart {unit} on {host.address}", True)
        run.session_for(host).run(f"systemctl restart {unit}", what=f"restarting {unit}")
        return Outcome.changed(f"restarted {unit} on {host.address}", False)

    with stack:
        run_steps(
            [Step("restart", restart), Step("kubeconfig", kubeconfig)],
            run,
            f"member {member.name}",
            dry_run=options.dry_run,
            on_report=run.record,
        )
    return run.reports


def uninstall(
    repo: Any, member_name: str, options: Any, say: Callable[[str], None] = print
) -> list[StepReport]:
    """Run k3s's own uninstall scripts: agents first, then the server."""
    from hubfleet.hosts.bootstrap import run_hosts_in_parallel

    member, run, stack = _connect_only(repo, member_name, options, lambda m: list(m.hosts), say)

    def remove(context: HostContext, dry_run: bool) -> Outcome:
        script = k3s.BINARY_PATH.rsplit("/", 1)[0] + (
            "/k3s-uninstall.sh" if roles.is_server(context.host) else "/k3s-agent-uninstall.sh"
        )
        present = context.session.run(f"test -x {script}", check=False).ok
        if not present:
            return Outcome.ok("k3s is not installed")
        if not dry_run:
            context.session.run(
                f"{script} >/dev/null 2>&1; rm -f {CONFIG_MARKER}", what="uninstalling k3s"
            )
        return Outcome.changed(f"ran {script}", dry_run)

    with stack:
        from hubfleet.hosts.bootstrap import gather_facts

        gather_facts(run, list(member.hosts))
        server = roles.first_server(member)
        run_hosts_in_parallel(
            run, [h for h in member.hosts if h != server], [Step("uninstall", remove)]
        )
        run_hosts_in_parallel(run, [server], [Step("uninstall", remove)])
    return run.reports
