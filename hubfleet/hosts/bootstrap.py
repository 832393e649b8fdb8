"""Bootstrapping a self-hosted member's hosts over SSH, whatever the Kubernetes flavour.

The flow is the same for k3s and MicroK8s: open a session to every host (in parallel), gather
facts and run preflight on all of them before anything changes anywhere, then run the
flavour's host steps on the first (server/main) host, then on the other hosts in parallel,
then the member-level steps (wait for nodes, kubeconfig, upgrade plan) once. Each step
reports ok/changed/failed as it finishes; the whole run ends with a step table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.common_steps import prepare_operators_key
from hubfleet.hosts.facts import GATHER_SCRIPT, HostFacts, parse_facts
from hubfleet.hosts.hostkeys import PinnedHostKeys
from hubfleet.hosts.login import connect
from hubfleet.hosts.member_run import (
    BootstrapOptions,
    HostContext,
    KeysInBackground,
    MemberRun,
)
from hubfleet.hosts.ssh import KNOWN_HOSTS, HostSession, Keys, Probe
from hubfleet.hosts.steps import (
    Step,
    StepFailed,
    StepReport,
    run_steps,
)
from hubfleet.registry.members import Host, Member

MAX_PARALLEL_HOSTS = 16


def open_sessions(
    run: MemberRun,
    hosts: Sequence[Host],
    keys: Keys,
    stack: ExitStack,
    must_reach: Sequence[Host] | None = None,
) -> dict[str, HubfleetError]:
    """Connect to every host in parallel, trying `keys` in order.

    A host in `must_reach` (default: all) that fails raises the first such failure; the
    others that fail are returned (address -> error) so the run can go on without them."""
    pinned = PinnedHostKeys(run.repo.root / KNOWN_HOSTS)

    def one(host: Host) -> HostSession:
        address, port = run.options.routes.get(host.address, (host.address, host.port))
        return connect(
            run.member.name,
            host,
            keys,
            pinned,
            run.options.host_key,
            timeout_s=run.options.connect_timeout_s,
            address=address,
            port=port,
        )

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts) or 1)) as pool:
        futures = [(host, pool.submit(one, host)) for host in hosts]
        errors: dict[str, HubfleetError] = {}
        for host, future in futures:
            try:
                session = future.result()
            except HubfleetError as err:
                errors[host.address] = err
                continue
            run.sessions[host.address] = session
            stack.callback(session.close)
    if errors and callable(keys):
        keys()  # a key that could not be loaded is the one thing to say
    required = {h.address for h in (hosts if must_reach is None else must_reach)}
    fatal = [err for address, err in errors.items() if address in required]
    if fatal:
        more = f" (and {len(errors) - 1} more host(s))" if len(errors) > 1 else ""
        raise HubfleetError(f"{fatal[0]}{more}")
    return errors


Snapshot = Callable[[Host], tuple[list[str], str]]


def gather_facts(run: MemberRun, hosts: Sequence[Host], snapshot: Snapshot | None = None) -> None:
    """One round trip per host (all hosts at once): its facts, and a snapshot of the files
    and states the flavour's steps check (`snapshot(host) -> (paths, shell)`), so that a step
    with nothing to do costs no round trip of its own."""

    def one(host: Host) -> tuple[str, HostFacts, Probe]:
        paths, extra = snapshot(host) if snapshot else ([], "")
        probe = run.session_for(host).probe(paths, also=f"{GATHER_SCRIPT}\n{extra}")
        return host.address, parse_facts(probe.output), probe

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts) or 1)) as pool:
        for address, facts, probe in pool.map(one, hosts):
            run.facts[address] = facts
            run.snapshots[address] = probe


def run_host(
    run: MemberRun, host: Host, steps: Sequence[Step], from_step: str | None = None
) -> None:
    """Run `steps` on one host; when it ends, either way, `done(host)` is set for the hosts
    waiting on it (and `failed(host)` recorded when it failed)."""
    session = run.session_for(host)
    context = HostContext(
        run.repo, run.member, host, session, run.facts[host.address], run.options, run
    )
    try:
        run_steps(
            steps,
            context,
            context.label,
            dry_run=run.options.dry_run,
            from_step=from_step,
            on_report=run.record,
            count_commands=lambda: session.commands,
            on_start=run.started,
            queued=session,
        )
    except BaseException:
        run.shared[f"failed:{host.address}"] = True
        raise
    finally:
        run.done(host).set()


def run_hosts_in_parallel(
    run: MemberRun, hosts: Sequence[Host], steps: Sequence[Step], from_step: str | None = None
) -> None:
    """Run `steps` on each host at once; every host runs to its end, then the first failure
    (in host order) is raised naming the host, with how many others failed."""
    if not hosts:
        return
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts))) as pool:
        futures = [pool.submit(run_host, run, host, steps, from_step) for host in hosts]
        failures = []
        for future in futures:
            try:
                future.result()
            except StepFailed as err:
                failures.append(err)
    if failures:
        more = f" (and {len(failures) - 1} more host(s) failed)" if len(failures) > 1 else ""
        raise StepFailed(f"{failures[0]}{more}", [r for f in failures for r in f.reports])


def connect_member(
    repo: DeployRepo,
    member_name: str,
    provider: str,
    options: BootstrapOptions,
    hosts_of: Callable[[Member], list[Host]],
    say: Callable[[str], None] = print,
) -> tuple[Member, MemberRun, ExitStack]:
    """Sessions to some of a member's hosts, for runs narrower than a bootstrap (kubeconfig
    refresh, uninstall, GPU report). The caller closes the returned stack (`with stack:`)."""
    from hubfleet.registry.members import load_registry

    member = load_registry(repo).member(member_name)
    if member.provider != provider:
        raise HubfleetError(f"member {member.name} has provider {member.provider}, not {provider}")
    keys = KeysInBackground(repo, member, options.identity)
    run = MemberRun(repo, member, options, say=say, watcher=options.watcher)
    stack = ExitStack()
    try:
        open_sessions(run, hosts_of(member), keys, stack)
        run.key_text = keys.text
    except BaseException:
        stack.close()
        raise
    return member, run, stack


# --- the whole run, for any flavour -------------------------------------------------------


@dataclass(frozen=True)
class Flavour:
    """What differs between k3s and MicroK8s bootstraps; the flow is the same."""

    provider: str
    host_steps: Sequence[Step]  # the first is preflight
    member_step_names: Sequence[str]
    member_steps: Callable[[Member, BootstrapOptions, Any], list[Step]]
    first_host: Callable[[Member], Host]  # the server / main node the others need
    snapshot: Callable[[Member], Snapshot]
    # work started before connecting, for steps that will need it (MemberRun.start_ahead)
    prepare: Callable[[MemberRun], None] = lambda run: None

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.host_steps] + list(self.member_step_names)


def phase_start(from_step: str | None, names: Sequence[str], later: Sequence[str]) -> str | None:
    """--from-step as seen by one phase: its own step, all of it, or none of it."""
    if from_step is None or from_step in names:
        return from_step
    if from_step in later:
        return "\0never"  # the phase is before the wanted step: skip it whole
    return None  # the phase is after the wanted step: run it all


def bootstrap_member(
    repo: DeployRepo,
    member_name: str,
    options: BootstrapOptions,
    flavour: Flavour,
    say: Callable[[str], None] = print,
    kube_api: Any = None,
    commands: dict[str, int] | None = None,
) -> list[StepReport]:
    """Connect to the member's hosts, gather facts and snapshots (one round trip a host),
    preflight every host before anything changes, run every host's steps at once (a step
    that needs the first host waits for it with `run.done(first)`), then the member steps."""
    from hubfleet.hosts.steps import check_step_names
    from hubfleet.registry.members import load_registry

    member = load_registry(repo).member(member_name)
    if member.provider != flavour.provider:
        raise HubfleetError(
            f"member {member.name} has provider {member.provider}, not {flavour.provider}"
        )
    check_step_names(flavour.host_steps, options.from_step, flavour.step_names)
    first = flavour.first_host(member)
    targets = [member.host(options.only_host)] if options.only_host else list(member.hosts)
    connect_to = list(dict.fromkeys([first, *targets]))  # the others need the first host
    keys = KeysInBackground(repo, member, options.identity)
    run = MemberRun(repo, member, options, say=say, watcher=options.watcher)
    prepare_operators_key(run)
    flavour.prepare(run)
    host_names = [s.name for s in flavour.host_steps]
    with ExitStack() as stack:
        say(f"member {member.name}: connecting to {len(connect_to)} host(s)")
        unreachable = open_sessions(run, connect_to, keys, stack, must_reach=[first])
        run.key_text = keys.text
        for address, err in unreachable.items():  # the others go on; this one is named
            run.record(StepReport("connect", address, "failed", str(err), 0.0, 0))
        connect_to = [h for h in connect_to if h.address not in unreachable]
        targets = [h for h in targets if h.address not in unreachable]
        run.shared["targets"] = connect_to  # the hosts this run sets up and waits for
        gather_facts(run, connect_to, flavour.snapshot(member))
        start = phase_start(options.from_step, host_names, flavour.member_step_names)
        run_hosts_in_parallel(run, targets, flavour.host_steps[:1], start)
        for host in targets:  # `done` now means: done with the steps below
            run.done(host).clear()
        if first not in targets:
            run.done(first).set()  # --host names another host: the first is set up already
        later = None if start == "preflight" else start
        run_hosts_in_parallel(run, targets, flavour.host_steps[1:], later)
        run_steps(
            flavour.member_steps(member, options, kube_api),
            run,
            f"member {member.name}",
            dry_run=options.dry_run,
            from_step=phase_start(options.from_step, flavour.member_step_names, []),
            on_report=run.record,
            count_commands=lambda: sum(s.commands for s in run.sessions.values()),
            on_start=run.started,
        )
        if commands is not None:
            commands.update({a: s.commands for a, s in run.sessions.items()})
    if unreachable:
        first_error = next(iter(unreachable.values()))
        more = f" (and {len(unreachable) - 1} more)" if len(unreachable) > 1 else ""
        raise StepFailed(
            f"{first_error}{more}; the other hosts are done, rerun to finish it", run.reports
        )
    return run.reports
