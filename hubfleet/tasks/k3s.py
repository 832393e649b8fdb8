"""k3s.* tasks: bootstrap a k3s member's hosts over SSH, join one, refresh its kubeconfig,
uninstall. Thin: flags in, hubfleet.k3s.bootstrap out."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from hubfleet.cli import run_front, terminal_prompt
from hubfleet.tasks.conventions import DEBUG_HELP, task

SSH_HELP = {
    "member": "the k3s member, as named in config/federation.yaml",
    "accept_host_key": "trust a host's unknown SSH key if it has this fingerprint (SHA256:...)",
    "identity": "private key root accepts, for the first run (before secrets/MEMBER.key exists)",
    "debug": DEBUG_HELP,
}


def _options(**kw: object) -> object:

    from hubfleet.hosts.hostkeys import HostKeyDecision
    from hubfleet.hosts.member_run import BootstrapOptions

    accept = kw.pop("accept_host_key", None)
    identity = kw.pop("identity", None)
    prompt = terminal_prompt() if accept is None else None
    return BootstrapOptions(
        host_key=HostKeyDecision(accept=accept, prompt=prompt),  # type: ignore[arg-type]
        identity=Path(identity) if identity else None,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _run(action: str, member: str, **kw: object) -> None:
    from hubfleet.console import Console
    from hubfleet.files.repo import find_repo
    from hubfleet.k3s import bootstrap as k3s_bootstrap

    repo = find_repo()
    run = {
        "bootstrap": k3s_bootstrap.bootstrap,
        "kubeconfig": k3s_bootstrap.refresh_kubeconfig,
        "uninstall": k3s_bootstrap.uninstall,
    }[action]
    Console().show_steps(
        f"k3s {action}: member {member}",
        lambda progress: run(repo, member, _options(watcher=progress, **kw), say=progress.say),
    )


@task(
    help={
        **SSH_HELP,
        "host": "run the host steps on this host only (address or name)",
        "dry_run": "check every step and show what it would change; change nothing",
        "from_step": "skip the steps before this one (see the step names in the table)",
        "force": "let dind-disk wipe a disk that already holds a filesystem",
        "timeout": "seconds to wait for the nodes to be Ready (default 300)",
    }
)
def bootstrap(
    c: Context,
    member: str,
    host: str | None = None,
    dry_run: bool = False,
    from_step: str | None = None,
    accept_host_key: str | None = None,
    identity: str | None = None,
    force: bool = False,
    timeout: int = 300,
    debug: bool = False,
) -> None:
    """Bring a k3s member's hosts from bare VMs to a Ready cluster, step by step.

    Steps, on every host at once: preflight, operators-key, cluster-token (the server: chosen
    once, kept in secrets/MEMBER-k3s.yaml), sysctl, kubelet-config, k3s-config, dind-disk,
    k3s-install (server) / join (agents, alongside the server), then ready, kubeconfig,
    upgrade-plan. Each checks first and changes only what differs; run it again to resume
    after a failure.
    """
    run_front(
        lambda: _run(
            "bootstrap",
            member,
            only_host=host,
            dry_run=dry_run,
            from_step=from_step,
            accept_host_key=accept_host_key,
            identity=identity,
            force=force,
            ready_timeout_s=float(timeout),
        ),
        debug,
    )


@task(
    help={
        **SSH_HELP,
        "host": "the agent host to join (address or name)",
        "dry_run": "show, change nothing",
    }
)
def join(
    c: Context,
    member: str,
    host: str,
    dry_run: bool = False,
    accept_host_key: str | None = None,
    identity: str | None = None,
    debug: bool = False,
) -> None:
    """Join one (new) agent host to a k3s member: its host steps, then wait for it to be Ready."""
    run_front(
        lambda: _run(
            "bootstrap",
            member,
            only_host=host,
            dry_run=dry_run,
            accept_host_key=accept_host_key,
            identity=identity,
        ),
        debug,
    )


@task(help={**SSH_HELP, "dry_run": "show whether it changed; store nothing"})
def kubeconfig(
    c: Context,
    member: str,
    dry_run: bool = False,
    accept_host_key: str | None = None,
    identity: str | None = None,
    debug: bool = False,
) -> None:
    """Fetch the server's kubeconfig again into secrets/MEMBER-kubeconfig.yaml, encrypted."""
    run_front(
        lambda: _run(
            "kubeconfig",
            member,
            dry_run=dry_run,
            accept_host_key=accept_host_key,
            identity=identity,
        ),
        debug,
    )


@task(help={**SSH_HELP, "yes": "really uninstall (required)"})
def uninstall(
    c: Context,
    member: str,
    yes: bool = False,
    accept_host_key: str | None = None,
    identity: str | None = None,
    debug: bool = False,
) -> None:
    """Remove k3s from every host of a member (agents first). Needs --yes."""

    def go() -> None:
        from hubfleet.errors import HubfleetError

        if not yes:
            raise HubfleetError(
                f"member {member}: uninstalling k3s deletes the cluster and its data; rerun with --yes"
            )
        _run("uninstall", member, accept_host_key=accept_host_key, identity=identity)

    run_front(go, debug)


def fetch_kubeconfigs(
    members: list[str], accept_host_key: str | None, identity: str | None
) -> None:
    """scripts/fetch_k3s_kubeconfig.py: refresh several members' kubeconfigs, one after another."""
    for member in members:
        _run("kubeconfig", member, accept_host_key=accept_host_key, identity=identity)
