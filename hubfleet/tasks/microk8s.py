"""microk8s.*, wireguard.* and gpu.* tasks: self-hosted MicroK8s members over SSH.
Thin: flags in, hubfleet.hosts.bootstrap / hubfleet.microk8s.steps / hubfleet.microk8s.partial out."""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import task
from hubfleet.tasks.k3s import SSH_HELP, _options


def _bootstrap(member: str, flavour: str = "bootstrap", **kw: object) -> None:
    """A MicroK8s run with live step progress and the step table: the whole bootstrap (or a
    worker's, with only_host), or WireGuard only."""
    from hubfleet.console import Console
    from hubfleet.files.repo import find_repo
    from hubfleet.hosts.bootstrap import bootstrap_member
    from hubfleet.microk8s import partial, steps

    chosen = steps.flavour() if flavour == "bootstrap" else partial.wireguard_flavour()
    repo = find_repo()
    Console().show_steps(
        f"microk8s {flavour}: member {member}",
        lambda progress: bootstrap_member(
            repo,
            member,
            _options(watcher=progress, **kw),  # type: ignore[arg-type]
            chosen,
            say=progress.say,
        ),
    )


@task(
    help={
        **SSH_HELP,
        "member": "the microk8s member, as named in config/federation.yaml",
        "dry_run": "check every step and show what it would change; change nothing",
        "from_step": "skip the steps before this one",
        "timeout": "seconds to wait for MicroK8s and the nodes to be ready (default 300)",
    }
)
def bootstrap(
    c: Context,
    member: str,
    dry_run: bool = False,
    from_step: str | None = None,
    accept_host_key: str | None = None,
    identity: str | None = None,
    timeout: int = 300,
    debug: bool = False,
) -> None:
    """Bring a MicroK8s member's hosts from bare VMs to a verified cluster, step by step.

    Main node and workers, optionally over WireGuard: preflight, operators-key, firewall, wireguard, snap-install, ready, node-ip,
    addons, join, then metallb, calico-vpn, verify, kubeconfig (wireguard, node-ip and
    calico-vpn only with a wireguard block: nodes advertise their VPN addresses and Calico
    uses them). Rerun to resume; a second run changes nothing."""
    run_front(
        lambda: _bootstrap(
            member,
            dry_run=dry_run,
            from_step=from_step,
            accept_host_key=accept_host_key,
            identity=identity,
            ready_timeout_s=float(timeout),
        ),
        debug,
    )


@task(
    help={
        **SSH_HELP,
        "host": "the worker to (re)join (address or name)",
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
    """Join one worker to a MicroK8s member with a fresh token, then verify the nodes."""
    run_front(
        lambda: _bootstrap(
            member,
            only_host=host,
            dry_run=dry_run,
            accept_host_key=accept_host_key,
            identity=identity,
        ),
        debug,
    )


@task(help=SSH_HELP)
def wireguard_setup(
    c: Context,
    member: str,
    accept_host_key: str | None = None,
    identity: str | None = None,
    debug: bool = False,
) -> None:
    """Set up WireGuard (wg0) on a MicroK8s member's hosts, and nothing else.

    Keys (sops-encrypted in the repo), configs, wg-quick@wg0 enabled and up."""

    run_front(
        lambda: _bootstrap(member, "wireguard", accept_host_key=accept_host_key, identity=identity),
        debug,
    )


@task(help=SSH_HELP)
def gpu_check(
    c: Context,
    member: str,
    accept_host_key: str | None = None,
    identity: str | None = None,
    debug: bool = False,
) -> None:
    """Show a MicroK8s member's GPUs, node by node.

    Per node: the driver, the GPUs nvidia-smi lists, and the allocatable nvidia.com/gpu
    Kubernetes sees (once the cluster is up)."""

    def go() -> None:
        from hubfleet.console import Console
        from hubfleet.files.repo import find_repo
        from hubfleet.microk8s import partial as microk8s_runs

        console = Console()
        options = _options(accept_host_key=accept_host_key, identity=identity)
        with console.waiting(f"member {member}: asking every node for its GPUs"):
            rows = microk8s_runs.gpu_report(find_repo(), member, options)
        console.table(("node", "driver", "GPUs", "allocatable nvidia.com/gpu"), rows)

    run_front(go, debug)
