"""`invoke member.onboard`: a bare VM to a serving federation member, one resumable command.

The runbook in order: preflight -> member-new (unless registered) -> bootstrap (k3s or
MicroK8s, which fetches the kubeconfig and applies the upgrade plan) -> dns-check ->
s3-lifecycle -> deploy -> harbor-secrets -> deploy-again -> health.

Progress is recorded per member in `.hubfleet/onboarding/<member>.json` (done steps and when);
a rerun resumes at the first step not done, `--from-step` starts elsewhere. Every step is
itself idempotent, so redoing one is safe. The run ends with a checklist and what is left by
hand (DNS records without a provider API, the registry's replication partner, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.atomic import write_atomically
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import read_text
from hubfleet.hosts.steps import StepReport, StepWatcher

STEPS = (
    "preflight",
    "member-new",
    "bootstrap",
    "dns-check",
    "s3-lifecycle",
    "deploy",
    "harbor-secrets",
    "deploy-again",
    "health",
)

MANUAL = (
    "DNS: an A record for the domain and one for *.domain to the public address "
    "(hubfleet has no DNS provider API configured)",
    "Harbor's bucket and its keys, before the deploy: set s3 (endpoint, bucket, vendor) in the "
    "registry, then invoke tofu.apply NAME s3 --save-outputs (Hetzner: keys from its console)",
    "Harbor's projects, quotas, robot accounts, retention and GC once it serves: "
    "invoke tofu.apply NAME harbor --save-outputs (replication: tofu.harbor.replication_url)",
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class OnboardOptions:
    host: str | None = None
    domain: str | None = None
    provider: str = "k3s"
    stage: str = "staging"
    user: str = "root"
    port: int = 22
    identity: Path | None = None
    accept_host_key: str | None = None
    from_step: str | None = None
    dry_run: bool = False
    resolver: str | None = None
    timeout_s: int = 300
    chart: str | None = None  # for member-new; default the umbrella chart
    email: str | None = None  # for member-new: the ACME contact (support.email)
    issuer: str | None = None  # for member-new: the ClusterIssuer (support.issuer)
    # who is told as steps start and finish (a front's live display); None: lines via `say`
    watcher: StepWatcher | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StepState:
    step: str
    state: str  # done | failed | pending | skipped | would run | would fail
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Progress:
    """What is done, persisted so that a rerun resumes."""

    member: str
    done: dict[str, str] = field(default_factory=dict)  # step -> ISO time it finished
    failed: dict[str, str] = field(default_factory=dict)  # step -> one-line reason

    def first_pending(self) -> str | None:
        return next((s for s in STEPS if s not in self.done), None)


def progress_path(repo: DeployRepo, member: str) -> Path:
    return repo.root / ".hubfleet" / "onboarding" / f"{member}.json"


def load_progress(repo: DeployRepo, member: str) -> Progress:
    path = progress_path(repo, member)
    if not path.is_file():
        return Progress(member)
    shown = repo.relative(path)
    try:
        data = parse_json(read_text(path, shown), shown)
    except ConfigError as err:
        raise HubfleetError(
            f"unreadable onboarding progress: {err}; delete it to start over"
        ) from None
    if not isinstance(data, dict):
        raise HubfleetError(f"{shown}: not onboarding progress; delete it to start over")
    return Progress(member, dict(data.get("done", {})), dict(data.get("failed", {})))


def save_progress(repo: DeployRepo, progress: Progress) -> None:
    path = progress_path(repo, progress.member)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"member": progress.member, "done": progress.done, "failed": progress.failed}
    write_atomically(path, json.dumps(record, indent=1))


def checklist(states: list[StepState]) -> str:
    marks = {
        "done": "[x]",
        "failed": "[!]",
        "would run": "[ ]",
        "would fail": "[!]",
        "pending": "[ ]",
        "skipped": "[-]",
    }
    lines = []
    for s in states:
        took = f" ({s.seconds:.1f}s)" if s.seconds else ""
        detail = f"  {s.detail}" if s.detail else ""
        lines.append(f"  {marks.get(s.state, '[?]')} {s.step:<15} {s.state}{took}{detail}")
    return "\n".join(lines)


def run_onboarding(
    repo: DeployRepo,
    member: str,
    options: OnboardOptions,
    actions: Mapping[str, Callable[[], str]],
    say: Say = print,
    previews: Mapping[str, Callable[[], str]] | None = None,
) -> list[StepState]:
    """Run the onboarding `actions` (step name -> callable returning a one-line detail) in
    order from the first unfinished step (or --from-step), recording progress after each.

    A failure is recorded, the remaining steps are shown as pending, and the error is raised
    (the checklist is on the error's `states`). A dry run records nothing: it calls each step's
    preview instead (what it would do; an error there means the step would fail), goes on to
    the next steps, and raises at the end if any would fail."""
    if options.from_step is not None and options.from_step not in STEPS:
        raise HubfleetError(
            f"no onboarding step {options.from_step!r}; the steps are: {', '.join(STEPS)}"
        )
    progress = load_progress(repo, member)
    start = options.from_step or progress.first_pending()
    states: list[StepState] = []
    failure: HubfleetError | None = None
    started = False  # with every step done and no --from-step, nothing runs
    for step in STEPS:
        started = started or step == start
        if not started:
            states.append(StepState(step, "done" if step in progress.done else "skipped"))
            continue
        if failure is not None:
            states.append(StepState(step, "pending"))
            continue
        if options.dry_run:
            states.append(_preview(step, (previews or {}).get(step), member, say))
            continue
        say(f"member {member}: {step} ...")
        if options.watcher:
            options.watcher.started(f"member {member}", step)
        mark = time.perf_counter()
        try:
            detail = actions[step]()
        except HubfleetError as err:
            failure = err
            progress.failed[step] = str(err)
            progress.done.pop(step, None)
            save_progress(repo, progress)
            states.append(StepState(step, "failed", str(err), time.perf_counter() - mark))
        else:
            progress.done[step] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            progress.failed.pop(step, None)
            save_progress(repo, progress)
            states.append(StepState(step, "done", detail, time.perf_counter() - mark))
        if options.watcher:
            last = states[-1]
            options.watcher.finished(
                StepReport(step, f"member {member}", last.state, last.detail, last.seconds, 0)
            )
    if failure is not None:
        raise OnboardingFailed(
            f"{failure}; fix it and rerun member.onboard {member} to resume", states
        )
    failing = [s for s in states if s.state == "would fail"]
    if failing:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise OnboardingFailed(
            f"dry run: member {member}: {failing[0].step} would fail: {failing[0].detail}{more}; "
            "nothing was changed",
            states,
        )
    return states


def _preview(step: str, preview: Callable[[], str] | None, member: str, say: Say) -> StepState:
    """A step's dry run: what it would do, or why it would fail."""
    if preview is None:
        return StepState(step, "would run")
    say(f"member {member}: {step} (dry run) ...")
    mark = time.perf_counter()
    try:
        detail = preview()
    except HubfleetError as err:
        return StepState(step, "would fail", str(err), time.perf_counter() - mark)
    return StepState(step, "would run", detail, time.perf_counter() - mark)


class OnboardingFailed(HubfleetError):
    def __init__(self, message: str, states: list[StepState]):
        super().__init__(message)
        self.states = states


def steps_left(repo: DeployRepo, member: str) -> list[str]:
    """For member.status: the onboarding steps not done yet ([] when none was ever started)."""
    if not progress_path(repo, member).is_file():
        return []
    progress = load_progress(repo, member)
    return [s for s in STEPS if s not in progress.done]


# --- the actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class OnboardHooks:
    """What tests replace: the cluster deploys and Harbor reads go to (instead of the
    member's own decrypted kubeconfig), and the Kubernetes client factory for upgrade plans."""

    credentials: Any = None  # ClusterCredentials
    kube_api: Any = None
