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
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.repo import DeployRepo

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
    "Harbor: the replication partner registry, if this member replicates",
    "Harbor projects, quotas and robot accounts (terraform/ harbor stack)",
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


@dataclass(frozen=True)
class StepState:
    step: str
    state: str  # done | failed | pending | skipped | would run
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
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise HubfleetError(
            f"{repo.relative(path)}: unreadable onboarding progress ({err})"
        ) from None
    return Progress(member, dict(data.get("done", {})), dict(data.get("failed", {})))


def save_progress(repo: DeployRepo, progress: Progress) -> None:
    path = progress_path(repo, progress.member)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".progress.")
    with os.fdopen(fd, "w") as out:
        json.dump(
            {"member": progress.member, "done": progress.done, "failed": progress.failed},
            out,
            indent=1,
        )
    os.replace(tmp, path)


def checklist(states: list[StepState]) -> str:
    marks = {"done": "[x]", "failed": "[!]", "would run": "[ ]", "pending": "[ ]", "skipped": "[-]"}
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
) -> list[StepState]:
    """Run the onboarding `actions` (step name -> callable returning a one-line detail) in
    order from the first unfinished step (or --from-step), recording progress after each.

    A failure is recorded, the remaining steps are shown as pending, and the error is raised
    (the checklist is on the error's `states`)."""
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
            states.append(StepState(step, "would run"))
            continue
        say(f"member {member}: {step} ...")
        mark = time.perf_counter()
        try:
            detail = actions[step]()
        except HubfleetError as err:
            failure = err
            progress.failed[step] = str(err)
            progress.done.pop(step, None)
            if not options.dry_run:
                save_progress(repo, progress)
            states.append(StepState(step, "failed", str(err), time.perf_counter() - mark))
            continue
        progress.done[step] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        progress.failed.pop(step, None)
        save_progress(repo, progress)
        states.append(StepState(step, "done", detail, time.perf_counter() - mark))
    if failure is not None:
        raise OnboardingFailed(
            f"{failure}; fix it and rerun member.onboard {member} to resume", states
        )
    return states


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


def _preflight(repo: DeployRepo, name: str, options: OnboardOptions) -> str:
    """The host can become a node: facts judged before anything is registered or changed."""
    from contextlib import ExitStack

    from hubfleet.bootstrap import (
        BootstrapOptions,
        MemberRun,
        gather_facts,
        load_connect_keys,
        open_sessions,
    )
    from hubfleet.hostfacts import preflight_problems
    from hubfleet.hostkeys import HostKeyDecision
    from hubfleet.registry import load_registry, member_from_record

    registry = load_registry(repo)
    if name in registry.members:
        member = registry.member(name)
        host = member.hosts[0] if member.hosts else None
    else:
        if not options.host or not options.domain:
            raise HubfleetError(f"member {name} is not registered yet: pass --host and --domain")
        role = "server" if options.provider == "k3s" else "main"
        record = {
            "stage": options.stage,
            "provider": options.provider,
            "domain": options.domain,
            "hosts": [
                {"address": options.host, "user": options.user, "port": options.port, "role": role}
            ],
        }
        member = member_from_record(name, record)
        host = member.hosts[0]
    if host is None:
        return f"member {name} has no hosts (provider {member.provider}): nothing to check"
    decision = HostKeyDecision(accept=options.accept_host_key)
    run = MemberRun(repo, member, BootstrapOptions(identity=options.identity, host_key=decision))
    keys, _ = load_connect_keys(repo, member, options.identity)
    with ExitStack() as stack:
        open_sessions(run, [host], keys, stack)
        gather_facts(run, [host])
    facts = run.facts[host.address]
    problems = preflight_problems(facts, k3s_running=bool(facts.kubernetes))
    if problems:
        raise HubfleetError(
            f"member {name}: host {host.address}: preflight failed: {'; '.join(problems)}"
        )
    return (
        f"{facts.os_name}, {facts.cpus} CPUs, {facts.ram_gb} GB RAM, {facts.disk_free_gb} GB free"
    )


def _member_new(repo: DeployRepo, name: str, options: OnboardOptions, say: Say) -> str:
    from hubfleet.hostkeys import HostKeyDecision
    from hubfleet.member_new import NewMember, NewMemberOptions, new_member
    from hubfleet.registry import load_registry

    if name in load_registry(repo).members:
        return f"member {name} is registered already"
    if not options.host or not options.domain:
        raise HubfleetError(f"member {name} is not registered yet: pass --host and --domain")
    request = NewMember(
        name,
        options.host,
        options.domain,
        options.provider,
        options.stage,
        options.user,
        options.port,
        options.chart,
    )
    new_member(
        repo,
        request,
        NewMemberOptions(
            identity=options.identity, host_key=HostKeyDecision(accept=options.accept_host_key)
        ),
        say=say,
    )
    return f"registered {name}, wrote config/{name}.yaml and secrets/config/{name}.yaml"


def _bootstrap(
    repo: DeployRepo, name: str, options: OnboardOptions, hooks: OnboardHooks, say: Say
) -> str:
    from hubfleet.bootstrap import BootstrapOptions, bootstrap_member
    from hubfleet.hostkeys import HostKeyDecision
    from hubfleet.registry import load_registry

    member = load_registry(repo).member(name)
    boot = BootstrapOptions(
        identity=options.identity,
        host_key=HostKeyDecision(accept=options.accept_host_key),
        ready_timeout_s=float(options.timeout_s),
    )
    if member.provider == "k3s":
        from hubfleet import k3s_bootstrap

        reports = k3s_bootstrap.bootstrap(repo, name, boot, say=say, kube_api=hooks.kube_api)
    elif member.provider == "microk8s":
        from hubfleet import microk8s_steps

        reports = bootstrap_member(repo, name, boot, microk8s_steps.flavour(), say=say)
    else:
        return f"provider {member.provider}: no hosts to bootstrap"
    changed = sum(1 for r in reports if r.state == "changed")
    return f"{len(reports)} steps, {changed} changed"


def _dns_check(
    repo: DeployRepo, name: str, options: OnboardOptions, environ: Mapping[str, str]
) -> str:
    from hubfleet import dns
    from hubfleet.registry import load_registry

    member = load_registry(repo).member(name)
    resolver = dns.choose_resolver(options.resolver, environ)
    checks = dns.check(member, resolver)
    dns.require_ok(member, checks)
    return f"{member.domain} and *.{member.domain} resolve to {checks[0].expected}"


def _s3(repo: DeployRepo, name: str) -> str:
    from hubfleet import s3, s3_check, s3_lifecycle
    from hubfleet.registry import load_registry

    member = load_registry(repo).member(name)
    if not member.record.get("s3"):
        return "no s3 block in the registry: nothing to do"
    settings, _keys, client = s3.connect(repo, member)
    result = s3_lifecycle.apply_lifecycle(
        client, settings.bucket, s3_lifecycle.lifecycle_rules(repo, member), member=name
    )
    report = s3_check.check_bucket(client, settings.bucket, member=name)
    note = "".join(f"; warning: {w.detail}" for w in report.warnings)
    return f"{result.outcome().detail}; bucket checked{note}"


def _deploy(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    hooks: OnboardHooks,
    say: Say,
    environ: Mapping[str, str],
) -> str:
    from hubfleet.deploy import DeployOptions, deploy_member
    from hubfleet.helm import engine_from_env

    result = deploy_member(
        repo,
        name,
        engine_from_env(environ),
        DeployOptions(yes=True, timeout_s=options.timeout_s),
        say=say,
        environ=environ,
        credentials=hooks.credentials,
    )
    return f"{result.outcome}, revision {result.revision}"


def _harbor(repo: DeployRepo, name: str, hooks: OnboardHooks, say: Say) -> str:
    from hubfleet import harbor
    from hubfleet.layers import member_values
    from hubfleet.registry import load_registry
    from hubfleet.yamlfile import load_mapping

    member = load_registry(repo).member(name)
    chart = repo.root / member.chart / "Chart.yaml"
    dependencies = load_mapping(chart, repo.relative(chart)).data.get("dependencies") or []
    if "harbor" not in {d.get("name") for d in dependencies if isinstance(d, Mapping)}:
        return f"the member's chart ({member.chart}) deploys no Harbor: nothing to pin"
    section = member_values(repo, member).effective.values.get("harbor")
    if isinstance(section, Mapping) and section.get("enabled") is False:
        return "Harbor is disabled in the member's values: nothing to pin"
    result = harbor.stabilize_secrets(repo, name, say=say, credentials=hooks.credentials)
    return str(result)


def _health(repo: DeployRepo, name: str, say: Say) -> str:
    from hubfleet.health import health_checks, run_health_checks
    from hubfleet.layers import member_values
    from hubfleet.registry import load_registry

    member = load_registry(repo).member(name)
    if not member.health_check:
        return "health_check is off for this member in the registry: not checked over HTTP"
    checks = health_checks(member_values(repo, member).effective.values)
    if not checks:
        return "no ingress hosts in the values: nothing to check over HTTP"
    run_health_checks(name, checks, say=say)
    return ", ".join(f"{c.name} ok" for c in checks)


def onboard(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    say: Say = print,
    hooks: OnboardHooks | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[StepState]:
    """Bare VM to serving member, resumably (see the module docstring)."""
    hooks = hooks or OnboardHooks()
    env = dict(os.environ) if environ is None else environ
    actions: dict[str, Callable[[], str]] = {
        "preflight": lambda: _preflight(repo, name, options),
        "member-new": lambda: _member_new(repo, name, options, say),
        "bootstrap": lambda: _bootstrap(repo, name, options, hooks, say),
        "dns-check": lambda: _dns_check(repo, name, options, env),
        "s3-lifecycle": lambda: _s3(repo, name),
        "deploy": lambda: _deploy(repo, name, options, hooks, say, env),
        "harbor-secrets": lambda: _harbor(repo, name, hooks, say),
        "deploy-again": lambda: _deploy(repo, name, options, hooks, say, env),
        "health": lambda: _health(repo, name, say),
    }
    return run_onboarding(repo, name, options, actions, say)
