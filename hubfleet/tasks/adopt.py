"""adopt.* tasks: take over an existing federation's deploy repository.

Thin: parses its flags and calls hubfleet.adopt.plan. No task prints a secret value.
"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    iterable=["stage"],
    help={
        "path": "an unlocked (git-crypt unlock) checkout of a mybinder.org-deploy style repository",
        "dry_run": "list every file it would write (secrets masked) and what it cannot adopt; "
        "write nothing",
        "stage": "NAME=staging or NAME=prod for a member the CD workflow's matrix does not "
        "name, or to override it (repeat for several)",
        "debug": DEBUG_HELP,
    },
)
def mybinder(
    c: Context,
    path: str,
    dry_run: bool = False,
    stage: list[str] | None = None,
    debug: bool = False,
) -> None:
    """Adopt a mybinder.org-deploy repository: members, values, secrets (sops) and its chart."""

    def body() -> None:
        from hubfleet.adopt.plan import adopt
        from hubfleet.adopt.workflow import stage_overrides
        from hubfleet.files.repo import find_repo

        adopt(find_repo(), Path(path), stage_overrides(stage or []), dry_run)

    run_front(body, debug)
