"""tofu.vars, tofu.plan and tofu.apply: a member's OpenTofu stack (terraform/) from the registry.

Thin: flags in, hubfleet.cloud.tofu_runs out. Credentials and outputs are never printed.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task

MEMBER_HELP = "the member, as named in config/federation.yaml"
STACK_HELP = (
    "the stack: s3 (the member's Harbor bucket; variant from s3.vendor), harbor (projects, "
    "robots, retention, GC, replication) or gke (cluster and GPU pool)"
)


def _binary() -> str:
    import os

    from hubfleet.cloud.tofu_cli import find_tofu

    return find_tofu(os.environ.get("HUBFLEET_TOFU"))


@task(help={"member": MEMBER_HELP, "stack": STACK_HELP, "debug": DEBUG_HELP})
def vars(c: Context, member: str, stack: str, debug: bool = False) -> None:
    """Write a stack's tfvars for a member from the registry, and show them.

    Variables named like registry facts (member, stage, domain, registry_hostname, bucket,
    s3_endpoint, s3_region, gke_project, gke_location, gke_cluster) come from the member's
    record; others from the stack's defaults or the registry's tofu.<stack>.<variable>. The
    file goes to .hubfleet/tofu/<member>/<stack>/hubfleet.tfvars.json (no secrets in it).
    Needs no tofu.
    """

    def body() -> None:
        from hubfleet.cloud.tofu import tfvars_json
        from hubfleet.cloud.tofu_runs import prepare
        from hubfleet.files.repo import find_repo

        repo = find_repo()
        prepared = prepare(repo, member, stack)
        print(f"# {repo.relative(prepared.var_file)} (stack {prepared.stack.shown})")
        print(tfvars_json(prepared.tfvars), end="")

    run_front(body, debug)


@task(help={"member": MEMBER_HELP, "stack": STACK_HELP, "debug": DEBUG_HELP})
def plan(c: Context, member: str, stack: str, debug: bool = False) -> None:
    """Plan a member's stack with tofu: init against the member's state key, then plan.

    State: terraform/backend.hcl (the shared state bucket) with the key
    hubfleet/<member>/<stack>.tfstate. Credentials: the env maps of secrets/tofu.yaml and
    secrets/<member>-tofu.yaml, given to tofu only. Nothing is changed. tofu comes from PATH
    or HUBFLEET_TOFU.
    """

    def body() -> None:
        import os
        import sys

        from hubfleet.cloud.tofu_runs import plan as plan_stack
        from hubfleet.files.repo import find_repo

        plan_stack(
            find_repo(), member, stack, _binary(), dict(os.environ), color=sys.stdout.isatty()
        )

    run_front(body, debug)


@task(
    help={
        "member": MEMBER_HELP,
        "stack": STACK_HELP,
        "yes": "apply without asking (also when CI is set)",
        "dry_run": "plan only (the same as tofu.plan): nothing is applied or saved",
        "save_outputs": (
            "merge the stack's hubfleet_secrets output into the member's encrypted secrets "
            "(bucket keys, robot accounts, GKE endpoint and CA); key names are shown, values never"
        ),
        "debug": DEBUG_HELP,
    }
)
def apply(
    c: Context,
    member: str,
    stack: str,
    yes: bool = False,
    save_outputs: bool = False,
    dry_run: bool = False,
    debug: bool = False,
) -> None:
    """Apply a member's stack with tofu: plan to a file, ask, apply exactly that plan.

    The plan file lives 0600 under .hubfleet/tofu/ and is deleted afterwards. With
    --save-outputs the outputs are saved even when there was nothing to apply.
    """

    def body() -> None:
        import os
        import sys

        from hubfleet.cli import ask
        from hubfleet.cloud.tofu_runs import apply as apply_stack
        from hubfleet.cloud.tofu_runs import plan as plan_stack
        from hubfleet.files.repo import find_repo

        if dry_run:
            plan_stack(
                find_repo(), member, stack, _binary(), dict(os.environ), color=sys.stdout.isatty()
            )
            return
        apply_stack(
            find_repo(),
            member,
            stack,
            _binary(),
            dict(os.environ),
            yes=yes,
            save_outputs=save_outputs,
            confirm=ask,
            color=sys.stdout.isatty(),
        )

    run_front(body, debug)
