"""member.* tasks: add a member to the federation, take one out (more to come: onboard, status).

Thin: each parses its flags and calls hubfleet.member_new or hubfleet.member_remove. No task
prints a secret value.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from hubfleet.cli import run_front

DEBUG_HELP = "show the traceback of a failure"


def _prompt(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def _host_key_prompt() -> Callable[[str], bool] | None:
    return _prompt if sys.stdin.isatty() else None


@task(
    help={
        "name": "the new member's name (a DNS label; also its namespace and release)",
        "host": "the host's address (its public IP or DNS name), reached over SSH",
        "domain": "the member's domain: BinderHub there, hub/registry/grafana below it",
        "provider": "k3s (default) or microk8s",
        "stage": "staging (default) or prod",
        "user": "SSH login on the host (default root; others use sudo -n)",
        "port": "SSH port (default 22)",
        "accept_host_key": "trust the host's SSH key with this SHA256 fingerprint (SHA256:...)",
        "identity": "private key the host accepts (until secrets/NAME.key exists)",
        "dry_run": "show what would be written (secrets masked); write nothing",
        "timeout": "seconds to wait for the host's SSH port (default 10)",
        "debug": DEBUG_HELP,
    }
)
def new(
    c: Context,
    name: str,
    host: str,
    domain: str,
    provider: str = "k3s",
    stage: str = "staging",
    user: str = "root",
    port: int = 22,
    accept_host_key: str | None = None,
    identity: str | None = None,
    dry_run: bool = False,
    timeout: int = 10,
    debug: bool = False,
) -> None:
    """Add a member: registry entry, config/NAME.yaml and encrypted secrets/config/NAME.yaml.

    Connects to the host for its CPUs, RAM and disk and sizes the member from them (launch
    quota, dind resources, image cleaner, maxPods; see hubfleet.sizing). Writes everything or
    nothing; refuses a name that exists.
    """

    def body() -> None:
        from hubfleet.errors import HubfleetError
        from hubfleet.hostkeys import HostKeyDecision
        from hubfleet.member_new import NewMember, NewMemberOptions, new_member
        from hubfleet.repo import find_repo

        if provider not in ("k3s", "microk8s"):
            raise HubfleetError(f"--provider {provider!r}: use k3s or microk8s")
        if stage not in ("staging", "prod"):
            raise HubfleetError(f"--stage {stage!r}: use staging or prod")
        request = NewMember(name, host, domain, provider, stage, user, int(port))
        options = NewMemberOptions(
            dry_run=dry_run,
            identity=Path(identity) if identity else None,
            host_key=HostKeyDecision(accept=accept_host_key, prompt=_host_key_prompt()),
            connect_timeout_s=float(timeout),
        )
        new_member(find_repo(), request, options)

    run_front(body, debug)


@task(
    help={
        "name": "the member to remove",
        "purge": "also delete its config, secrets, kubeconfig, SSH key and WireGuard keys",
        "yes": "do not ask for confirmation (needed without a terminal)",
        "debug": DEBUG_HELP,
    }
)
def remove(
    c: Context, name: str, purge: bool = False, yes: bool = False, debug: bool = False
) -> None:
    """Take a member out of config/federation.yaml (the rest of the file unchanged).

    With --purge also delete config/NAME.yaml, secrets/config/NAME.yaml,
    secrets/NAME-kubeconfig.yaml, secrets/NAME.key(.pub) and secrets/NAME-wireguard.yaml.
    Nothing in the cluster is touched. Asks first, unless --yes.
    """

    def body() -> None:
        from hubfleet.errors import HubfleetError
        from hubfleet.member_remove import remove_member
        from hubfleet.repo import find_repo

        def confirm(question: str) -> bool:
            if yes:
                return True
            if not sys.stdin.isatty():
                raise HubfleetError(
                    f"member {name}: no terminal to confirm on; rerun with --yes to remove it"
                )
            return _prompt(question)

        remove_member(find_repo(), name, purge, confirm)

    run_front(body, debug)


@task(
    help={
        "name": "the member to onboard (a new name, or one onboarding was started for)",
        "host": "the bare VM's address (for a member not registered yet)",
        "domain": "the member's domain (for a member not registered yet)",
        "provider": "k3s (default) or microk8s",
        "stage": "staging (default) or prod",
        "user": "SSH user on the host (root by default; others use sudo)",
        "port": "SSH port (22)",
        "identity": "a private key the host accepts, for the first contact",
        "accept_host_key": "trust the host's unknown SSH key if it has this fingerprint",
        "from_step": "start at this step instead of the first unfinished one",
        "dry_run": (
            "ask each step what it would do (preflight and DNS are checked, bootstrap, the S3 "
            "lifecycle and deploy run their own dry runs); change and record nothing"
        ),
        "resolver": "DNS resolver IP[:PORT] for dns-check (default HUBFLEET_DNS_RESOLVER, then the system's)",
        "timeout": "seconds to wait for nodes and rollouts (default 300)",
        "debug": "show the traceback of a failure",
    }
)
def onboard(
    c: Context,
    name: str,
    host: str | None = None,
    domain: str | None = None,
    provider: str = "k3s",
    stage: str = "staging",
    user: str = "root",
    port: int = 22,
    identity: str | None = None,
    accept_host_key: str | None = None,
    from_step: str | None = None,
    dry_run: bool = False,
    resolver: str | None = None,
    timeout: int = 300,
    debug: bool = False,
) -> None:
    """A bare VM to a serving member, resumably: preflight, member-new, bootstrap, dns-check,
    s3-lifecycle, deploy, harbor-secrets, deploy-again, health. A rerun resumes at the first
    unfinished step; the end lists what is left by hand."""

    def go() -> None:
        from pathlib import Path

        from hubfleet.onboarding import MANUAL, OnboardingFailed, OnboardOptions, checklist
        from hubfleet.onboarding import onboard as run
        from hubfleet.repo import find_repo

        options = OnboardOptions(
            host=host,
            domain=domain,
            provider=provider,
            stage=stage,
            user=user,
            port=port,
            identity=Path(identity) if identity else None,
            accept_host_key=accept_host_key,
            from_step=from_step,
            dry_run=dry_run,
            resolver=resolver,
            timeout_s=timeout,
        )
        try:
            states = run(find_repo(), name, options)
        except OnboardingFailed as err:
            print(checklist(err.states))
            raise
        print(checklist(states))
        print("left by hand:")
        for item in MANUAL:
            print(f"  - {item.replace('NAME', name)}")

    run_front(go, debug)


@task(
    help={"member": "only this member (default: all)", "debug": "show the traceback of a failure"},
    optional=["member"],
)
def status(c: Context, member: str | None = None, debug: bool = False) -> None:
    """A table of the federation: stage, provider, nodes Ready, version, release revision and
    when, kubeconfig certificate days left, onboarding steps left."""

    def go() -> None:
        import os

        from hubfleet.helm import engine_from_env
        from hubfleet.member_status import federation_status, status_table
        from hubfleet.repo import find_repo

        print(status_table(federation_status(find_repo(), engine_from_env(os.environ), member)))

    run_front(go, debug)
