"""harbor.* tasks: pin the secrets Harbor generated on a member's first deploy.

Thin: parses its flags and calls hubfleet.cloud.harbor. Prints key names, never values.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    help={
        "member": "the member whose Harbor was deployed",
        "debug": DEBUG_HELP,
    }
)
def stabilize_secrets(c: Context, member: str, debug: bool = False) -> None:
    """Pin the secrets Harbor generated on its first deploy into the member's secrets.

    They go to secrets/config/MEMBER.yaml, encrypted, so deploys stop regenerating them (and
    restarting Harbor). Run after the first deploy; running it again changes nothing."""

    def body() -> None:
        from hubfleet.cloud.harbor import stabilize_secrets as stabilize
        from hubfleet.files.repo import find_repo

        stabilize(find_repo(), member)

    run_front(body, debug)
