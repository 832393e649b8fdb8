"""Bootstrapping a self-hosted member's hosts over SSH, whatever the Kubernetes flavour.

The flow is the same for k3s and MicroK8s: open a session to every host (in parallel), gather
facts and run preflight on all of them before anything changes anywhere, then run the
flavour's host steps on the first (server/main) host, then on the other hosts in parallel,
then the member-level steps (wait for nodes, kubeconfig, upgrade plan) once. Each step
reports ok/changed/failed as it finishes; the whole run ends with a step table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.facts import GATHER_SCRIPT, HostFacts, parse_facts
from hubfleet.hosts.hostkeys import HostKeyDecision, PinnedHostKeys
from hubfleet.hosts.login import connect
from hubfleet.hosts.ssh import KNOWN_HOSTS, HostSession, Keys, Probe, private_key_from_text
from hubfleet.hosts.steps import (
    PrintedSteps,
    Step,
    StepFailed,
    StepReport,
    StepWatcher,
    run_steps,
)
from hubfleet.registry.members import Host, Member

MAX_PARALLEL_HOSTS = 16


@dataclass(frozen=True)
class BootstrapOptions:
    dry_run: bool = False
    from_step: str | None = None
    only_host: str | None = None  # --host: run the host steps on this host only
    force: bool = False  # e.g. dind-disk: reformat a disk that holds a filesystem
    identity: Path | None = None  # first contact, before the member's own key is authorised
    host_key: HostKeyDecision = field(default_factory=HostKeyDecision)
    connect_timeout_s: float = 10.0
    ready_timeout_s: float = 300.0
    # where to connect instead of a host's own address (tests, tunnels): address -> (addr, port)
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    # who is told as steps start and finish (a front's live display); None: lines via `say`
    watcher: StepWatcher | None = field(default=None, compare=False)


@dataclass
class HostContext:
    """What a host step sees: the member, this host, its session and facts, the run's options."""

    repo: DeployRepo
    member: Member
    host: Host
    session: HostSession
    facts: HostFacts
    options: BootstrapOptions
    run: MemberRun
    notes: dict[str, Any] = field(default_factory=dict)  # what earlier steps found out

    @property
    def label(self) -> str:
        return self.host.name or self.host.address

    @property
    def snapshot(self) -> Probe:
        """The host's files and states as gathered when the run began."""
        return self.run.snapshots.get(self.host.address) or Probe({}, "")

    def files(self, paths: Sequence[str]) -> dict[str, tuple[str, int] | None]:
        """Files as they are: from the snapshot when it has them all, else one round trip."""
        known = self.snapshot.files
        if all(p in known for p in paths):
            return {p: known[p] for p in paths}
        return self.session.probe(list(paths)).files


@dataclass
class MemberRun:
    """State shared by the hosts of one bootstrap run (sessions, facts, reports)."""

    repo: DeployRepo
    member: Member
    options: BootstrapOptions
    sessions: dict[str, HostSession] = field(default_factory=dict)
    facts: dict[str, HostFacts] = field(default_factory=dict)
    snapshots: dict[str, Probe] = field(default_factory=dict)  # files and states at the start
    reports: list[StepReport] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    say: Callable[[str], None] = print
    key_text: str | None = None  # the member's private key, in memory, once known
    shared: dict[str, Any] = field(default_factory=dict)  # found once, used by every host
    events: dict[str, threading.Event] = field(default_factory=dict)
    watcher: StepWatcher | None = None  # default: a line per finished step, through `say`

    def record(self, report: StepReport) -> None:
        with self.lock:
            self.reports.append(report)
        (self.watcher or PrintedSteps(self.say)).finished(report)

    def started(self, host: str, step: str) -> None:
        (self.watcher or PrintedSteps(self.say)).started(host, step)

    def changed(self) -> bool:
        """Whether any step of this run changed (or would change) something."""
        with self.lock:
            return any(r.state not in ("ok", "skipped") for r in self.reports)

    def event(self, name: str) -> threading.Event:
        """A named event hosts of this run wait on (e.g. the server's install being done)."""
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def done(self, host: Host) -> threading.Event:
        """Set once `host` has run its steps (successfully or not)."""
        return self.event(f"done:{host.address}")

    def failed(self, host: Host) -> bool:
        return bool(self.shared.get(f"failed:{host.address}"))

    def session_for(self, host: Host) -> HostSession:
        return self.sessions[host.address]

    def server(self) -> Host:
        return self.member.hosts[0]


def member_key_path(repo: DeployRepo, member: str) -> Path:
    return repo.secrets_dir / f"{member}.key"


def load_connect_keys(
    repo: DeployRepo, member: Member, identity: Path | None
) -> tuple[list[Any], str | None]:
    """The keys to log in with, in order: the member's own (decrypted in memory) once it
    exists, then the identity file the operator named for first contact (a new host does not
    accept the member's key until its operators-key step ran). Also the member key's text."""
    from hubfleet.secrets import sops

    keys: list[Any] = []
    key_text = None
    path = member_key_path(repo, member.name)
    if path.is_file():
        key_text = sops.decrypt(repo, path)
        keys.append(private_key_from_text(key_text, repo.relative(path)))
    if identity is not None:
        try:
            text = identity.read_text()
        except OSError as err:
            raise HubfleetError(f"--identity {identity}: cannot read ({err.strerror})") from None
        keys.append(private_key_from_text(text, str(identity)))
    if not keys:
        raise HubfleetError(
            f"member {member.name}: no operators' key yet ({repo.relative(path)} does not exist); "
            f"for the first run pass --identity PATH, a private key root on the hosts accepts"
        )
    return keys, key_text


class KeysInBackground:
    """load_connect_keys, run in a thread from the start: decrypting the member's key (a sops
    call) overlaps connecting, as a key is needed only once the key exchange is done. Called,
    it gives the keys (waiting for them), or raises what loading them raised."""

    def __init__(self, repo: DeployRepo, member: Member, identity: Path | None):
        if identity is None and not member_key_path(repo, member.name).is_file():
            load_connect_keys(repo, member, identity)  # raises: no key at all, said at once
        pool = ThreadPoolExecutor(max_workers=1)
        self._loaded = pool.submit(load_connect_keys, repo, member, identity)
        pool.shutdown(wait=False)

    def __call__(self) -> list[Any]:
        return self._loaded.result()[0]

    @property
    def text(self) -> str | None:
        """The member's private key, once loaded."""
        return self._loaded.result()[1]


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
