"""What one bootstrap run of a member shares: its options, the context each host step sees,
the keys it logs in with (decrypted while connecting), and work started ahead of the step that
needs it (a sops call off the critical path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.facts import HostFacts
from hubfleet.hosts.hostkeys import HostKeyDecision
from hubfleet.hosts.ssh import HostSession, Probe, private_key_from_text
from hubfleet.hosts.steps import PrintedSteps, StepReport, StepWatcher
from hubfleet.registry.members import Host, Member


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
    ahead: dict[str, Future[Any]] = field(default_factory=dict)  # see start_ahead
    ahead_lock: threading.Lock = field(default_factory=threading.Lock)

    def start_ahead(self, name: str, work: Callable[[], Any]) -> None:
        """Start `work` now, in the background, for the step that will need its result (a
        sops call, say, done while the hosts are being connected to). See `taken`."""
        pool = ThreadPoolExecutor(max_workers=1)
        with self.ahead_lock:
            self.ahead[name] = pool.submit(work)
        pool.shutdown(wait=False)

    def taken(self, name: str) -> Any:
        """What `start_ahead(name, ...)` computed, waiting for it (raising what it raised);
        once: None when it was not started or was taken already."""
        with self.ahead_lock:
            future = self.ahead.pop(name, None)
        return None if future is None else future.result()

    def record(self, report: StepReport) -> None:
        with self.lock:
            self.reports.append(report)
        if report.state in ("ok", "changed", "would change"):  # its changes are on the host
            self.event(f"step:{report.host}:{report.step}").set()
        (self.watcher or PrintedSteps(self.say)).finished(report)

    def step_done(self, host: Host, step: str) -> threading.Event:
        """Set once `step` succeeded on `host` (its queued changes included)."""
        return self.event(f"step:{host.name or host.address}:{step}")

    def wait_for_steps(self, host: Host, steps: Sequence[str], timeout_s: float) -> bool:
        """Wait until `steps` succeeded on `host`, or it ended its steps without them (True
        unless it failed first: steps skipped by --from-step do not hold anyone up). A host
        that takes longer than `timeout_s` is one line naming it."""
        needed = [self.step_done(host, step) for step in steps]
        deadline = time.monotonic() + timeout_s
        while not all(event.is_set() for event in needed):
            if self.done(host).wait(0.05):
                break
            if time.monotonic() >= deadline:
                raise HubfleetError(
                    f"member {self.member.name}: gave up waiting for host {host.address}'s "
                    f"{', '.join(steps)} after {timeout_s:.0f}s"
                )
        return all(event.is_set() for event in needed) or not self.failed(host)

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
