"""harbor.* tasks: pin the secrets Harbor generated on a member's first deploy.

Thin: parses its flags and calls hubfleet.cloud.harbor. Prints key names, never values.
"""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from hubfleet.cli import run_front


@task(
    help={
        "member": "the member whose Harbor was deployed",
        "debug": "show the traceback of a failure",
    }
)
def stabilize_secrets(c: Context, member: str, debug: bool = False) -> None:
    """Store the secrets Harbor generated in secrets/config/MEMBER.yaml, so deploys stop
    regenerating them (and restarting Harbor). Run after the first deploy; running it again
    changes nothing."""

    def body() -> None:
        from hubfleet.cloud.harbor import stabilize_secrets as stabilize
        from hubfleet.files.repo import find_repo

        stabilize(find_repo(), member)

    run_front(body, debug)
