"""The onboarding steps of `invoke member.onboard` (hubfleet.members.onboarding runs them in order).

Each step is a thin call into the module that owns the work (member_new, the k3s or MicroK8s
bootstrap, dns, s3_lifecycle, deploy, harbor) and returns one line for the checklist. Each also
has a dry run: read-only checks run as they are, steps with their own dry run (member.new,
bootstrap, s3 lifecycle, deploy) use it, and the rest say what they would do. A member not yet
registered (a dry run never registers it) gets what the step would do from the options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.members.onboarding import (
    OnboardHooks,
    OnboardOptions,
    Say,
    StepState,
    run_onboarding,
)
from hubfleet.registry.members import Member

Actions = dict[str, Callable[[], str]]


def preflight(repo: DeployRepo, name: str, options: OnboardOptions) -> str:
    """The host can become a node: facts judged before anything is registered or changed
    (read-only: the same in a dry run)."""
    from contextlib import ExitStack

    from hubfleet.hosts.bootstrap import gather_facts, open_sessions
    from hubfleet.hosts.facts import preflight_problems
    from hubfleet.hosts.hostkeys import HostKeyDecision
    from hubfleet.hosts.member_run import BootstrapOptions, MemberRun, load_connect_keys

    member = _registered_or_provisional(repo, name, options)
    host = member.hosts[0] if member.hosts else None
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


def member_new(
    repo: DeployRepo, name: str, options: OnboardOptions, say: Say, dry_run: bool = False
) -> str:
    """Register the member and write its values and secrets (member.new), unless registered."""
    from hubfleet.hosts.hostkeys import HostKeyDecision
    from hubfleet.members.new import NewMemberOptions, new_member
    from hubfleet.members.templates import NewMember
    from hubfleet.registry.members import load_registry

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
        email=options.email,
        issuer=options.issuer,
    )
    new_member(
        repo,
        request,
        NewMemberOptions(
            dry_run=dry_run,
            identity=options.identity,
            host_key=HostKeyDecision(accept=options.accept_host_key),
        ),
        say=say,
    )
    if dry_run:
        return f"would register {name} and write config/{name}.yaml, secrets/config/{name}.yaml"
    return f"registered {name}, wrote config/{name}.yaml and secrets/config/{name}.yaml"


def bootstrap(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    hooks: OnboardHooks,
    say: Say,
    dry_run: bool = False,
) -> str:
    """k3s or MicroK8s on the member's hosts (their own bootstrap, dry run included)."""
    from hubfleet.hosts.bootstrap import bootstrap_member
    from hubfleet.hosts.hostkeys import HostKeyDecision
    from hubfleet.hosts.member_run import BootstrapOptions
    from hubfleet.registry.members import load_registry

    registry = load_registry(repo)
    if dry_run and name not in registry.members:
        return (
            f"would bootstrap {options.host} with {options.provider}, every step (the member is "
            "not registered yet, so its steps cannot be asked one by one)"
        )
    member = registry.member(name)
    boot = BootstrapOptions(
        identity=options.identity,
        host_key=HostKeyDecision(accept=options.accept_host_key),
        ready_timeout_s=float(options.timeout_s),
        dry_run=dry_run,
        watcher=options.watcher,
    )
    if member.provider == "k3s":
        from hubfleet.k3s import bootstrap as k3s_bootstrap

        reports = k3s_bootstrap.bootstrap(repo, name, boot, say=say, kube_api=hooks.kube_api)
    elif member.provider == "microk8s":
        from hubfleet.microk8s import steps as microk8s_steps

        reports = bootstrap_member(repo, name, boot, microk8s_steps.flavour(), say=say)
    else:
        return f"provider {member.provider}: no hosts to bootstrap"
    changed = sum(1 for r in reports if r.state in ("changed", "would change"))
    return f"{len(reports)} steps, {changed} {'would change' if dry_run else 'changed'}"


def dns_check(
    repo: DeployRepo, name: str, options: OnboardOptions, environ: Mapping[str, str]
) -> str:
    """The domain and a wildcard under it resolve to the member's public address (read-only)."""
    from hubfleet.cloud import dns

    member = _registered_or_provisional(repo, name, options)
    resolver = dns.choose_resolver(options.resolver, environ)
    checks = dns.check(member, resolver)
    dns.require_ok(member, checks)
    return f"{member.domain} and *.{member.domain} resolve to {checks[0].expected}"


def s3_lifecycle(repo: DeployRepo, name: str, dry_run: bool = False) -> str:
    """The Harbor bucket's lifecycle rules, then a check of the bucket with the member's keys
    (the check writes a probe object, so a dry run only reads the rules)."""
    from hubfleet.cloud import s3, s3_check, s3_lifecycle
    from hubfleet.registry.members import load_registry

    registry = load_registry(repo)
    if name not in registry.members:
        return "would set the bucket's lifecycle rules if the new registry entry has an s3 block"
    member = registry.member(name)
    if not member.record.get("s3"):
        return "no s3 block in the registry: nothing to do"
    settings, _keys, client = s3.connect(repo, member)
    rules = s3_lifecycle.lifecycle_rules(repo, member)
    result = s3_lifecycle.apply_lifecycle(client, settings.bucket, rules, dry_run, member=name)
    if dry_run:
        return f"{result.outcome().detail}; the bucket check (a probe object) is not run"
    report = s3_check.check_bucket(client, settings.bucket, member=name)
    note = "".join(f"; warning: {w.detail}" for w in report.warnings)
    return f"{result.outcome().detail}; bucket checked{note}"


def deploy(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    hooks: OnboardHooks,
    say: Say,
    environ: Mapping[str, str],
    dry_run: bool = False,
) -> str:
    """The member's chart (invoke deploy; its dry run renders and plans, contacting no cluster)."""
    from hubfleet.deploy.member import DeployOptions, deploy_member
    from hubfleet.helm import engine_from_env
    from hubfleet.registry.members import load_registry

    if dry_run and name not in load_registry(repo).members:
        return "would deploy the new member's chart (its values are written by member-new)"
    result = deploy_member(
        repo,
        name,
        engine_from_env(environ),
        DeployOptions(yes=True, timeout_s=options.timeout_s, dry_run=dry_run),
        say=say,
        environ=environ,
        credentials=hooks.credentials,
    )
    if dry_run:
        return "would upgrade or install the releases shown above"
    support = result.support
    also = f" (support release {support.outcome}, revision {support.revision})" if support else ""
    return f"{result.outcome}, revision {result.revision}{also}"


def harbor_secrets(
    repo: DeployRepo, name: str, hooks: OnboardHooks, say: Say, dry_run: bool = False
) -> str:
    """Pin the secrets Harbor generated on its first deploy (when the chart deploys Harbor)."""
    from hubfleet.cloud import harbor
    from hubfleet.helm.dependencies import declared_dependencies, enabled_dependencies
    from hubfleet.registry.members import load_registry
    from hubfleet.values.layers import member_values

    registry = load_registry(repo)
    if dry_run and name not in registry.members:
        return "would pin Harbor's generated secrets if the member's chart deploys Harbor"
    member = registry.member(name)
    declared = declared_dependencies(repo.root / member.chart)
    if "harbor" not in {d.get("name") for d in declared}:
        return f"the member's chart ({member.chart}) deploys no Harbor: nothing to pin"
    effective = member_values(repo, member).effective.values
    if "harbor" not in enabled_dependencies(declared, effective):
        return "Harbor is disabled in the member's values: nothing to pin"
    if dry_run:
        return "would read Harbor's generated secrets after the deploy and pin them"
    result = harbor.stabilize_secrets(repo, name, say=say, credentials=hooks.credentials)
    return str(result)


def health(repo: DeployRepo, name: str, say: Say, dry_run: bool = False) -> str:
    """Each public host as its users reach it (hub, binder, registry, Grafana), when the member
    asks for it: over https, with a certificate a browser accepts. Until DNS and the
    certificates are there, this step fails with what is missing, and a rerun resumes here."""
    from hubfleet.deploy.health import health_checks, run_health_checks
    from hubfleet.registry.members import load_registry
    from hubfleet.registry.support import support_of, support_release
    from hubfleet.values.layers import member_values

    registry = load_registry(repo)
    if dry_run and name not in registry.members:
        return "would check each public host if the new entry sets health_check"
    member = registry.member(name)
    if not member.health_check:
        return "health_check is off for this member in the registry: not checked over HTTP"
    support = support_release(member)
    support_values = member_values(repo, support).effective.values if support else None
    checks = health_checks(member_values(repo, member).effective.values, support_values)
    if not checks:
        return "no ingress hosts in the values: nothing to check over HTTP"
    if dry_run:
        return "would check " + ", ".join(f"{c.name} {c.url}" for c in checks)
    settings = support_of(member)
    trusted = settings is None or settings.issuer != "selfsigned"
    run_health_checks(name, checks, say=say, trusted=trusted)
    return ", ".join(f"{c.name} ok" for c in checks)


def _registered_or_provisional(repo: DeployRepo, name: str, options: OnboardOptions) -> Member:
    """The member from the registry, or, before member-new registered it, the record that
    member-new would write as far as preflight and DNS need it (host, role, domain)."""
    from hubfleet.registry.members import load_registry, member_from_record

    registry = load_registry(repo)
    if name in registry.members:
        return registry.member(name)
    if not options.host or not options.domain:
        raise HubfleetError(f"member {name} is not registered yet: pass --host and --domain")
    role = "server" if options.provider == "k3s" else "main"
    host = {"address": options.host, "user": options.user, "port": options.port, "role": role}
    record = {
        "stage": options.stage,
        "provider": options.provider,
        "domain": options.domain,
        "hosts": [host],
    }
    return member_from_record(name, record)


def steps(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    hooks: OnboardHooks,
    say: Say,
    env: Mapping[str, str],
    dry_run: bool,
) -> Actions:
    """Each step by name: for real, or its dry run (what it would do; an error: it would fail)."""
    return {
        "preflight": lambda: preflight(repo, name, options),
        "member-new": lambda: member_new(repo, name, options, say, dry_run),
        "bootstrap": lambda: bootstrap(repo, name, options, hooks, say, dry_run),
        "dns-check": lambda: dns_check(repo, name, options, env),
        "s3-lifecycle": lambda: s3_lifecycle(repo, name, dry_run),
        "deploy": lambda: deploy(repo, name, options, hooks, say, env, dry_run),
        "harbor-secrets": lambda: harbor_secrets(repo, name, hooks, say, dry_run),
        "deploy-again": (
            (lambda: "would deploy again when harbor-secrets pinned anything")
            if dry_run
            else (lambda: deploy(repo, name, options, hooks, say, env))
        ),
        "health": lambda: health(repo, name, say, dry_run),
    }


def onboard(
    repo: DeployRepo,
    name: str,
    options: OnboardOptions,
    say: Say = print,
    hooks: OnboardHooks | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[StepState]:
    """Bare VM to serving member, resumably (see the module docstring). With --dry-run each
    step says what it would do, from read-only checks and its own dry run
    (the steps here)."""
    hooks = hooks or OnboardHooks()
    env = dict(os.environ) if environ is None else environ
    actions = steps(repo, name, options, hooks, say, env, dry_run=False)
    previews = steps(repo, name, options, hooks, say, env, dry_run=True)
    return run_onboarding(repo, name, options, actions, say, previews)
