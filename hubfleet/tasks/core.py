"""Top-level tasks: deploy, values, validate. Thin: flags in, hubfleet calls out."""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    help={
        "member": "the member to deploy, as named in config/federation.yaml",
        "dry_run": "render and print the plan (objects by kind, masked values); touch nothing",
        "diff": "show what would change against the live release, then stop",
        "yes": "do not ask for confirmation (also implied when CI is set)",
        "timeout": "seconds to wait for the release's workloads to become ready (default 300)",
        "force": "upgrade even when nothing changed",
        "only": "deploy one release: support (ingress, certificates, monitoring) or member",
        "debug": DEBUG_HELP,
    }
)
def deploy(
    c: Context,
    member: str,
    dry_run: bool = False,
    diff: bool = False,
    yes: bool = False,
    timeout: int = 300,
    force: bool = False,
    only: str | None = None,
    debug: bool = False,
) -> None:
    """Deploy one member: its support release, then its hub (same as: python deploy.py MEMBER).

    The support release (ingress, certificates, monitoring) comes first when the registry gives
    the member a support block, cert-manager's CRDs applied before it. Each release is skipped
    when nothing in it changed."""
    from hubfleet.cli import run_deploy

    run_front(
        lambda: run_deploy(
            member, dry_run=dry_run, diff=diff, yes=yes, timeout=timeout, force=force, only=only
        ),
        debug,
    )


@task(
    help={
        "member": "the member whose merged values to print",
        "show_origin": "append the file each value came from",
        "only": "the values of this release: member (the default) or support",
        "debug": DEBUG_HELP,
    }
)
def values(
    c: Context,
    member: str,
    show_origin: bool = False,
    only: str | None = None,
    debug: bool = False,
) -> None:
    """Print a member's merged Helm values; values from secrets layers are masked."""
    from hubfleet.cli import show_values

    run_front(lambda: show_values(member, show_origin, only or "member"), debug)


@task(
    optional=["member"],
    help={
        "member": "check only this member's values (the registry is always checked whole)",
        "strict": "make keys that no chart of a member's stack reads errors, not warnings",
        "debug": DEBUG_HELP,
    },
)
def validate(
    c: Context, member: str | None = None, strict: bool = False, debug: bool = False
) -> None:
    """Check the registry and each member's values as a deploy would, up to the cluster.

    Per member: its values layers read as Helm reads them, the dependencies they enable from
    the chart cache, every chart's values.schema.json, the render, Helm's linter. Keys that no
    chart of the member's stack reads are warnings (errors with --strict)."""
    from hubfleet.cli import run_validate

    run_front(lambda: run_validate(member, strict), debug)
