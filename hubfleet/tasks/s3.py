"""s3.lifecycle and s3.check: a member's Harbor bucket (registry `s3` block, keys from its secrets).

Thin: flags in, hubfleet.cloud.s3 (settings, keys, client) and hubfleet.cloud.s3_lifecycle or
hubfleet.cloud.s3_check out. Keys are never printed.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task

MEMBER_HELP = "the member, as named in config/federation.yaml (it needs an s3 block)"


@task(
    help={
        "member": MEMBER_HELP,
        "dry_run": "read the bucket's rules and say what would change; put nothing",
        "debug": DEBUG_HELP,
    }
)
def lifecycle(c: Context, member: str, dry_run: bool = False, debug: bool = False) -> None:
    """Apply the S3 lifecycle rules to a member's Harbor bucket, then read them back.

    The rules are config/k3s/s3-bucket-lifecycle.json (abort incomplete multipart uploads after
    a day) plus the member's s3.lifecycle_rules; they replace the bucket's configuration. When
    the bucket already has exactly these rules, nothing is put.
    """

    def body() -> None:
        from hubfleet.cloud import s3, s3_lifecycle
        from hubfleet.files.repo import find_repo
        from hubfleet.hosts.steps import OK, WOULD_CHANGE
        from hubfleet.registry.members import load_registry

        repo = find_repo()
        record = load_registry(repo).member(member)
        rules = s3_lifecycle.lifecycle_rules(repo, record)
        settings, keys, client = s3.connect(repo, record)
        result = s3_lifecycle.apply_lifecycle(
            client, settings.bucket, rules, dry_run, member=record.name, keys_from=keys.source
        )
        print(f"{settings}: lifecycle rules")
        for change in result.rules:
            print(f"  {change}")
        if result.state == OK:
            print("lifecycle: ok (the bucket already has these rules; nothing put)")
        elif result.state == WOULD_CHANGE:
            print("lifecycle: would change (dry run: nothing put)")
        else:
            print("lifecycle: changed (put, read back and matched)")

    run_front(body, debug)


@task(help={"member": MEMBER_HELP, "debug": DEBUG_HELP})
def check(c: Context, member: str, debug: bool = False) -> None:
    """Check a member's Harbor bucket with the member's keys.

    The keys must list the bucket and write, read back and delete a probe object (under
    hubfleet-probe/). A warning when they may also create or delete buckets (tried with a
    randomly named bucket, deleted again).
    """

    def body() -> None:
        from hubfleet.cloud import s3, s3_check
        from hubfleet.console import Console
        from hubfleet.files.repo import find_repo
        from hubfleet.registry.members import load_registry

        repo = find_repo()
        record = load_registry(repo).member(member)
        settings, keys, client = s3.connect(repo, record)
        with Console().waiting(f"{settings} ({keys})"):
            report = s3_check.check_bucket(
                client, settings.bucket, member=record.name, keys_from=keys.source
            )
        for item in report.checks:
            print(f"  {item}")
        warned = len(report.warnings)
        print(
            f"check: ok ({warned} warning{'s' if warned != 1 else ''})" if warned else "check: ok"
        )

    run_front(body, debug)
