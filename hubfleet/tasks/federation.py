"""federation.* tasks: rotation (drain, readmit, prime). Thin: flags in, hubfleet calls out."""

from __future__ import annotations

import sys

from invoke.context import Context

from hubfleet.cli import ask, run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task

ROTATION_HELP = {
    "member": "the member, as named in config/federation.yaml",
    "dry_run": "show the registry edit and what would be deployed; change nothing",
    "yes": "do not ask for confirmation (also implied when CI is set)",
    "deploy": "deploy the releases the edit changes (--no-deploy: only edit the registry)",
    "timeout": "seconds to wait for each deploy's workloads (default 300)",
    "debug": DEBUG_HELP,
}


def _rotate(
    action: str,
    member: str,
    dry_run: bool,
    yes: bool,
    deploy: bool,
    timeout: int,
    force: bool = False,
) -> None:
    import os

    from hubfleet.errors import HubfleetError
    from hubfleet.files.repo import find_repo
    from hubfleet.helm import engine_from_env
    from hubfleet.members.rotate import RotateOptions, rotate

    def confirm(question: str) -> bool:
        if not sys.stdin.isatty():
            raise HubfleetError(f"member {member}: no terminal to confirm on; rerun with --yes")
        return ask(question)

    options = RotateOptions(dry_run=dry_run, yes=yes, force=force, deploy=deploy, timeout_s=timeout)
    rotate(
        find_repo(),
        action,
        member,
        options,
        engine_from_env(os.environ),
        confirm=confirm,
        environ=os.environ,
    )


@task(help=ROTATION_HELP)
def drain(
    c: Context,
    member: str,
    dry_run: bool = False,
    yes: bool = False,
    deploy: bool = True,
    timeout: int = 300,
    debug: bool = False,
) -> None:
    """Take a member out of rotation: weight 0 and launch quota 0 (what it had kept for readmit).

    Edits config/federation.yaml (only those lines), then deploys the redirector's member and
    the drained one. The prime cannot be drained: make another member prime first."""
    run_front(lambda: _rotate("drain", member, dry_run, yes, deploy, timeout), debug)


@task(help=ROTATION_HELP)
def readmit(
    c: Context,
    member: str,
    dry_run: bool = False,
    yes: bool = False,
    deploy: bool = True,
    timeout: int = 300,
    debug: bool = False,
) -> None:
    """Put a drained member back in rotation with the weight and quota it had."""
    run_front(lambda: _rotate("readmit", member, dry_run, yes, deploy, timeout), debug)


@task(help={**ROTATION_HELP, "force": "make it prime even when its health URL does not answer"})
def prime(
    c: Context,
    member: str,
    dry_run: bool = False,
    yes: bool = False,
    deploy: bool = True,
    timeout: int = 300,
    force: bool = False,
    debug: bool = False,
) -> None:
    """Make a member the prime: the one all traffic falls back to.

    It must be in rotation and answer its health URL (unless --force). The redirector's
    member is deployed with the new host list."""
    run_front(lambda: _rotate("prime", member, dry_run, yes, deploy, timeout, force), debug)


@task(
    help={
        "json": "print the rows as JSON (every field, for scripts) instead of the table",
        "timeout": "seconds each probe may take (default 5)",
        "clusters": "ask each member's cluster too (nodes Ready, release); --no-clusters: only "
        "what users see",
        "debug": DEBUG_HELP,
    }
)
def status(
    c: Context, json: bool = False, timeout: int = 5, clusters: bool = True, debug: bool = False
) -> None:
    """Show the rotation as users see it: health, versions skew, certificates, per member.

    Every member in the federation block is probed at once: its health URL, its versions URL
    (compared with the prime's: a member whose versions differ gets no traffic), the days left
    on its HTTPS certificate and on its kubeconfig's client certificate; and its cluster (nodes
    Ready, its release), when its credentials are here. Exits 1 when anything needs attention,
    with the reason per row."""

    def go() -> None:
        import json as json_module
        import os

        from hubfleet.console import Console
        from hubfleet.errors import HubfleetError
        from hubfleet.files.repo import find_repo
        from hubfleet.helm import engine_from_env
        from hubfleet.members.federation_status import COLUMNS, federation_status

        console = Console()
        repo = find_repo()
        engine = engine_from_env(os.environ) if clusters else None
        if json:
            rows = federation_status(repo, timeout_s=float(timeout), engine=engine)
            print(json_module.dumps([row.as_json() for row in rows], indent=1))
        else:
            with console.waiting("probing every member"):
                rows = federation_status(repo, timeout_s=float(timeout), engine=engine)
            console.table(COLUMNS, [row.cells() for row in rows])
        needing = [row for row in rows if row.attention]
        if needing:
            names = ", ".join(row.member for row in needing)
            raise HubfleetError(
                f"{len(needing)} member(s) need attention ({names}); the first: "
                f"member {needing[0].member}: {needing[0].attention[0]}"
            )

    run_front(go, debug)


@task(
    name="refresh-credentials",
    help={
        "days": "refresh what ends within this many days (default 30)",
        "restart": "restart k3s on a member's server when even a fresh copy ends that soon "
        "(k3s renews certificates within 90 days of their end when it starts)",
        "dry_run": "say what would be done; change nothing",
        "identity": "a private key the hosts accept (until secrets/NAME.key exists)",
        "accept_host_key": "trust a host's unknown SSH key if it has this fingerprint",
        "debug": DEBUG_HELP,
    },
)
def refresh_credentials(
    c: Context,
    days: int = 30,
    restart: bool = False,
    dry_run: bool = False,
    identity: str | None = None,
    accept_host_key: str | None = None,
    debug: bool = False,
) -> None:
    """Fetch again every stored kubeconfig whose client certificate ends within --days.

    k3s members: k3s.yaml fetched again, and with --restart k3s restarted first when even
    that copy ends soon. Others are named with what to do by hand. Exits 1 when a certificate
    still ends within --days."""

    def go() -> None:
        from pathlib import Path

        from hubfleet.cli import terminal_prompt
        from hubfleet.errors import HubfleetError
        from hubfleet.files.repo import find_repo
        from hubfleet.hosts.hostkeys import HostKeyDecision
        from hubfleet.hosts.member_run import BootstrapOptions
        from hubfleet.members.refresh import refresh_credentials as run

        prompt = terminal_prompt() if accept_host_key is None else None
        options = BootstrapOptions(
            dry_run=dry_run,
            identity=Path(identity) if identity else None,
            host_key=HostKeyDecision(accept=accept_host_key, prompt=prompt),
        )
        rows = run(find_repo(), days, restart, options, say=lambda _: None)
        for row in rows:
            print(row.line())
        short = [r for r in rows if r.after is not None and r.after < days and not dry_run]
        if short:
            names = ", ".join(r.member for r in short)
            raise HubfleetError(
                f"{len(short)} client certificate(s) still end within {days} days: {names}"
            )

    run_front(go, debug)
