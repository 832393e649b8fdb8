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
