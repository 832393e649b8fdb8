"""`federation.drain`, `federation.readmit`, `federation.prime`: one registry edit
(hubfleet.registry.rotation), shown, checked, confirmed, written, then the releases it changes
deployed: the redirector's member (its host list) and the member whose quota changed. A new
prime must answer its health URL first, unless forced. A dry run shows the edit and what would
be deployed, and touches nothing."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.atomic import all_or_nothing, write_atomically
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import check_registry
from hubfleet.registry.rotation import RotationChange, drain, make_prime, readmit

EDITS: Mapping[str, Callable[[str, str, str], RotationChange | None]] = {
    "drain": drain,
    "readmit": readmit,
    "prime": make_prime,
}


@dataclass(frozen=True)
class RotateOptions:
    dry_run: bool = False
    yes: bool = False
    force: bool = False  # make a member prime even when its health URL does not answer
    deploy: bool = True  # deploy the releases the edit changes
    timeout_s: int = 300
    health_timeout_s: float = 10.0


def registry_diff(before: str, after: str, shown: str) -> list[str]:
    return list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            f"{shown} (now)",
            f"{shown} (after)",
            lineterm="",
            n=1,
        )
    )


def _check_new_prime(
    repo: DeployRepo, member: str, change: RotationChange, timeout_s: float
) -> None:
    from hubfleet.deploy.health import HealthCheck, run_health_checks
    from hubfleet.registry.federation import federation_of
    from hubfleet.registry.rotation import parse_text

    federation = federation_of(parse_text(change.text, "config/federation.yaml").data)
    place = federation.place(member) if federation else None
    if place is None:
        return
    try:
        run_health_checks(
            member,
            [HealthCheck("health", place.health)],
            timeout_s=timeout_s,
            interval_s=1.0,
            say=lambda _: None,
        )
    except HubfleetError as err:
        raise ConfigError(
            f"member {member} does not answer its health URL {place.health}, so it would take "
            f"all traffic while broken ({str(err).split('(', 1)[-1].rstrip(')')}); "
            "--force makes it prime anyway"
        ) from None


def rotate(
    repo: DeployRepo,
    action: str,
    member: str,
    options: RotateOptions,
    engine: HelmEngine,
    say: Callable[[str], None] = print,
    confirm: Callable[[str], bool] | None = None,
    environ: Mapping[str, str] | None = None,
    credentials: Callable[[str], ClusterCredentials | None] | None = None,
) -> RotationChange | None:
    """Apply one rotation `action` to `member`; None when there was nothing to do."""
    from hubfleet.deploy.member import DeployOptions, deploy_member

    shown = repo.relative(repo.registry)
    check_registry(repo)  # a broken registry is said before anything else
    before = repo.registry.read_text(encoding="utf-8")
    change = EDITS[action](before, member, shown)
    if change is None:
        state = {"drain": "drained", "readmit": "in rotation", "prime": "prime"}[action]
        say(f"member {member} is {state} already; nothing to do")
        return None
    if action == "prime" and not options.force:
        _check_new_prime(repo, member, change, options.health_timeout_s)
    say(change.summary)
    for line in registry_diff(before, change.text, shown):
        say(f"  {line}")
    deploys = list(change.members) if options.deploy else []
    if options.dry_run:
        for name in deploys:
            say(f"would deploy member {name}'s release (invoke deploy {name} --only member)")
        say("dry run: nothing was changed")
        return change
    env = {} if environ is None else environ
    if not (options.yes or env.get("CI")):
        question = (
            f"{change.summary}: write {shown}"
            + (f" and deploy {', '.join(deploys)}" if deploys else "")
            + "?"
        )
        if confirm is None or not confirm(question):
            raise HubfleetError(f"member {member}: not changed (not confirmed)")
    with all_or_nothing() as keep:
        keep.replaced(repo.registry)
        write_atomically(repo.registry, change.text)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not changing {shown}: {problems[0]}")
    say(f"wrote {shown}")
    for name in deploys:
        creds = credentials(name) if credentials else None
        deploy_member(
            repo,
            name,
            engine,
            DeployOptions(yes=True, timeout_s=options.timeout_s),
            say=say,
            environ=environ,
            credentials=creds,
            only="member",
        )
    return change
