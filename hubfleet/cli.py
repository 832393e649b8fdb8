"""How every front (invoke tasks, deploy.py, scripts/) reports failures.

A HubfleetError becomes one line on stderr and exit code 1; a traceback only with --debug.
Anything else unexpected is also one line (with a hint to rerun with --debug) and exit 2.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar

from hubfleet.errors import HubfleetError

T = TypeVar("T")


class Exit(SystemExit):
    """Raised by fronts to end with a code after the message was printed."""


def one_line(message: str) -> str:
    """`message` as one printable line: every control, format or line-separating character
    (a newline, U+2028, an escape sequence's ESC) shown escaped, as Python writes it. A
    message may quote a file's key or a flag's value, and must not break the line or drive
    the terminal."""
    return "".join(
        char if char == " " or char.isprintable() else repr(char)[1:-1] for char in message
    )


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise Exit(code)


def run_front(action: Callable[[], T], debug: bool = False) -> T:
    """Run `action`, turning failures into one line and an exit code."""
    try:
        return action()
    except HubfleetError as err:
        if debug:
            traceback.print_exc()
        fail(str(err), 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exit:
        raise
    except Exception as err:  # an unexpected failure is a bug: keep it short unless asked
        if debug:
            traceback.print_exc()
            fail(f"unexpected {type(err).__name__}: {err}", 2)
        fail(f"unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)", 2)


# --- what the fronts share: each front (tasks.py, deploy.py) parses its flags and calls these.


def ask(question: str) -> bool:
    """A y/N question on the terminal; no terminal, or no answer, is no."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def terminal_prompt() -> Callable[[str], bool] | None:
    """`ask` where there is a terminal to ask on (host-key acceptance), else None."""
    return ask if sys.stdin.isatty() else None


def run_deploy(
    member: str,
    dry_run: bool = False,
    diff: bool = False,
    yes: bool = False,
    timeout: int = 300,
    force: bool = False,
    only: str | None = None,
) -> None:
    import os

    from hubfleet.console import Console
    from hubfleet.deploy.member import DeployOptions, deploy_member
    from hubfleet.files.repo import find_repo
    from hubfleet.helm import engine_from_env
    from hubfleet.registry.support import check_part

    if only is not None:
        check_part(only, "--only")
    options = DeployOptions(dry_run=dry_run, diff=diff, yes=yes, timeout_s=timeout, force=force)
    console = Console()
    deploy_member(
        find_repo(),
        member,
        engine_from_env(os.environ),
        options,
        say=console.say,
        confirm=ask,
        environ=os.environ,
        watch_rollouts=console.rollouts,
        only=only,
    )


def show_values(member: str, show_origin: bool = False, part: str = "member") -> None:
    from hubfleet.files.repo import find_repo
    from hubfleet.registry.members import load_registry
    from hubfleet.registry.support import check_part, releases
    from hubfleet.values.layers import member_values
    from hubfleet.values.merge import values_as_yaml

    check_part(part, "--only")
    repo = find_repo()
    record = load_registry(repo).member(member)
    chosen = releases(record, part)
    if not chosen:
        raise HubfleetError(
            f"member {member}: runs no support release (no support block in "
            f"{repo.relative(repo.registry)})"
        )
    print(values_as_yaml(member_values(repo, chosen[0]).effective, show_origin), end="")


def run_validate(member: str | None = None, strict: bool = False) -> None:
    import os

    from hubfleet.deploy.validate import validate_federation
    from hubfleet.files.repo import find_repo
    from hubfleet.helm import engine_from_env

    report = validate_federation(find_repo(), engine_from_env(os.environ), member, strict=strict)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if not report.ok:
        fail(f"{len(report.problems)} problem(s) found")
    print(f"ok: registry and values of {len(report.members_checked)} member(s) are valid")


def deploy_main(argv: list[str] | None = None) -> None:
    """`python deploy.py MEMBER [flags]`: the same deploy as `invoke deploy`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="deploy.py", description="Deploy one member (same as: invoke deploy MEMBER)."
    )
    parser.add_argument("member", help="the member to deploy, as named in config/federation.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    parser.add_argument(
        "--diff", action="store_true", help="show changes against the live release, then stop"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--timeout", type=int, default=300, help="rollout timeout in seconds")
    parser.add_argument("--force", action="store_true", help="upgrade even when nothing changed")
    parser.add_argument(
        "--only", choices=["support", "member"], help="deploy one release of the member"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    args = parser.parse_args(argv)
    run_front(
        lambda: run_deploy(
            args.member,
            dry_run=args.dry_run,
            diff=args.diff,
            yes=args.yes,
            timeout=args.timeout,
            force=args.force,
            only=args.only,
        ),
        args.debug,
    )
