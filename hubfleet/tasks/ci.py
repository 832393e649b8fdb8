"""ci.plan: which members a change deploys, as a GitHub Actions matrix (JSON) or a table.

Thin: flags in, hubfleet.ci.plan out.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task

FORMATS = ("json", "table")


@task(
    iterable=["changed", "member"],
    auto_shortflags=False,
    help={
        "base": "git ref before the change (diffed as BASE...HEAD; its registry is the 'before')",
        "head": "git ref after the change (default: HEAD for the diff; the working tree's "
        "registry)",
        "changed": "a changed path, relative to the repo root (repeatable; no git needed)",
        "format_": "json (a GitHub Actions matrix split into staging and prod) or table "
        "(markdown; default)",
        "all_": "deploy every member, whatever changed",
        "none": "deploy nobody, whatever changed",
        "member": "deploy exactly this member (repeatable), whatever changed",
        "debug": DEBUG_HELP,
    },
)
def plan(
    c: Context,
    base: str | None = None,
    head: str | None = None,
    changed: list[str] | None = None,
    format_: str = "table",
    all_: bool = False,
    none: bool = False,
    member: list[str] | None = None,
    debug: bool = False,
) -> None:
    """Decide which members a change deploys (values, secrets, shared files, registry records).

    Prints a JSON matrix ({"staging": {"include": [...]}, "prod": ..., "any_staging", ...}) or a
    markdown table; removed members and unrecognised paths are listed, never deployed.
    """

    def body() -> None:
        import json

        from hubfleet.ci.matrix import Overrides
        from hubfleet.ci.plan import plan_for_repo
        from hubfleet.errors import ConfigError
        from hubfleet.files.repo import find_repo

        if format_ not in FORMATS:
            raise ConfigError(f"--format {format_!r}: use {' or '.join(FORMATS)}")
        overrides = Overrides(all=all_, none=none, members=tuple(member or ()))
        result = plan_for_repo(find_repo(), base, head, changed or (), overrides)
        if format_ == "json":
            print(json.dumps(result.matrix(), separators=(",", ":")), flush=True)
        else:
            print(result.table(), end="", flush=True)

    run_front(body, debug)
