"""Adopting a mybinder.org-deploy style repository: everything it would write planned in memory
(`plan_adoption`), then written all or nothing (`write_adoption`), as member.new does. A rerun
plans only what changed since; with nothing changed it writes nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.adopt.deploy_py import cluster_lists
from hubfleet.adopt.federation import rotation
from hubfleet.adopt.files import CHANGED, NEW, REMOVED, UNCHANGED, AdoptedFile, plain_files
from hubfleet.adopt.leftovers import Leftover, known_leftovers, unvendored_dependencies
from hubfleet.adopt.members import (
    FoundMember,
    ValuesFiles,
    candidate_names,
    find_member,
    merged_values,
)
from hubfleet.adopt.registry import check_registry_text, registry_text
from hubfleet.adopt.same_values import differences
from hubfleet.adopt.secret_files import planned_secrets, secret_sources
from hubfleet.adopt.source import CHART, SourceRepo, open_source
from hubfleet.adopt.workflow import CD_WORKFLOW, workflow_stages
from hubfleet.errors import ConfigError
from hubfleet.files.atomic import all_or_nothing, write_atomically
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.values_yaml import parse_values
from hubfleet.registry.members import check_registry
from hubfleet.values.layers import ensure_secrets_encrypted

MASKED = "contents masked"


@dataclass(frozen=True)
class AdoptionPlan:
    source: SourceRepo
    members: tuple[FoundMember, ...]
    files: tuple[AdoptedFile, ...]
    registry: AdoptedFile
    leftovers: tuple[Leftover, ...]
    # each member's values as deploy.py passed them (for the same-result check; may hold
    # secrets: never shown)
    old_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def changes(self) -> tuple[AdoptedFile, ...]:
        every = (*self.files, self.registry)
        return tuple(f for f in every if f.change != UNCHANGED)


def _members(
    source: SourceRepo, stages: Mapping[str, str], values: ValuesFiles
) -> tuple[list[FoundMember], list[Leftover], dict[str, object]]:
    lists = cluster_lists(source.read_text("deploy.py"), source.shown("deploy.py"))
    found_stages = {}
    if source.exists(CD_WORKFLOW):
        found_stages = workflow_stages(source.read_text(CD_WORKFLOW), source.shown(CD_WORKFLOW))
    found_stages.update(stages)
    chart_values = f"{CHART}/values.yaml"
    defaults: dict[str, object] = {}
    if source.exists(chart_values):
        defaults = parse_values(source.read_text(chart_values), source.shown(chart_values))
    members: list[FoundMember] = []
    leftovers: list[Leftover] = []
    for name in candidate_names(source, lists):
        found = find_member(source, name, lists, found_stages, defaults, values)
        if isinstance(found, FoundMember):
            members.append(found)
        else:
            leftovers.append(found)
    return members, leftovers, defaults


def _own_common(repo: DeployRepo) -> list[Leftover]:
    """This repo's own common values apply to the adopted members too (under the adopted
    config/common/ files): worth saying when it sets any."""
    found = []
    for path in (repo.common_values(), repo.common_secret_values()):
        if path.is_file() and path.stat().st_size and path.read_text(encoding="utf-8").strip():
            found.append(
                Leftover(
                    f"{repo.relative(path)} (this repo)",
                    "its values apply to the adopted members too, which the old deploy did not",
                    "move what is meant for other members into their own files",
                )
            )
    return found


def plan_adoption(
    repo: DeployRepo, path: Path, stages: Mapping[str, str], dry_run: bool = False
) -> AdoptionPlan:
    """Everything adopting the repository at `path` writes, in memory (secrets encrypted, unless
    `dry_run`); a locked checkout, a broken file or a registry that would not check stops it."""
    source = open_source(path)
    ensure_secrets_encrypted(repo)
    values = ValuesFiles(source)
    members, leftovers, defaults = _members(source, stages, values)
    if not members:
        raise ConfigError(
            f"{path}: no member could be adopted ({leftovers[0].line() if leftovers else 'none found'})"
        )
    federation = rotation(members, defaults, values)
    leftovers += federation.leftovers
    records = {m.name: m.record() for m in members}
    for name, place in federation.places.items():
        records[name]["federation"] = dict(place)
    shown = repo.relative(repo.registry)
    before = repo.registry.read_text(encoding="utf-8")
    after = registry_text(before, shown, records, federation.block)
    problems = check_registry_text(after, shown, records)
    if problems:
        raise ConfigError(f"the adopted members do not fit in {shown}: {problems[0]}")
    change = UNCHANGED if after == before else CHANGED
    registry = AdoptedFile(repo.registry, "deploy.py, config/, CD workflow", change, after.encode())
    files = plain_files(repo, source, members, values)
    secrets, unused = secret_sources(repo, source, members)
    files += planned_secrets(repo, secrets, dry_run)
    leftovers += unused + known_leftovers(source) + _own_common(repo)
    leftovers += unvendored_dependencies(source, repo.root)
    leftovers += [
        Leftover(
            repo.relative(repo.member_gke_credentials(m.name)),
            "holds the service-account key, not yet the cluster's endpoint and CA",
            f"run invoke tofu.apply {m.name} gke --save-outputs (or add endpoint and "
            "ca_certificate with invoke secrets.edit)",
        )
        for m in members
        if m.provider == "gke"
    ]
    old = {m.name: merged_values(defaults, list(m.layers), values) for m in members}
    return AdoptionPlan(source, tuple(members), tuple(files), registry, tuple(leftovers), old)


def write_adoption(repo: DeployRepo, plan: AdoptionPlan) -> None:
    """Write every changed file of `plan`, all or nothing; the registry last, then checked."""
    with all_or_nothing() as keep:
        for planned in plan.changes:
            if planned.path.exists():
                keep.replaced(planned.path)
            else:
                keep.created(planned.path)
            if planned.change == REMOVED:
                planned.path.unlink()
                continue
            write_atomically(planned.path, planned.content, 0o600 if planned.secret else 0o644)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not adopting: {problems[0]}")


def describe(
    repo: DeployRepo, plan: AdoptionPlan, dry_run: bool, say: Callable[[str], None]
) -> None:
    """What the adoption does (or would do), file by file, secrets never shown."""
    for member in plan.members:
        how = f"gke {member.gke.project}/{member.gke.location}" if member.gke else member.provider
        say(f"member {member.name}: {member.stage}, {how}, {member.domain}")
    verb = {
        NEW: "would write" if dry_run else "wrote",
        CHANGED: "would update" if dry_run else "updated",
        REMOVED: "would remove" if dry_run else "removed",
    }
    for planned in plan.changes:
        what = f" (encrypted with sops; {MASKED})" if planned.secret else ""
        note = f"; {planned.note}" if planned.note else ""
        if planned.change == REMOVED:
            say(f"{verb[REMOVED]} {repo.relative(planned.path)} ({planned.source})")
            continue
        say(
            f"{verb[planned.change]} {repo.relative(planned.path)} from {planned.source}{what}{note}"
        )
    unchanged = len(plan.files) + 1 - len(plan.changes)
    if not plan.changes:
        say(f"nothing to adopt: all {unchanged} files are as {plan.source.root} has them")
    elif unchanged:
        say(f"{unchanged} files already as adopted, left alone")
    if plan.leftovers:
        say("not adopted:")
        for leftover in plan.leftovers:
            say(f"  {leftover.line()}")


def adopt(
    repo: DeployRepo,
    path: Path,
    stages: Mapping[str, str],
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> AdoptionPlan:
    plan = plan_adoption(repo, path, stages, dry_run)
    if not dry_run and plan.changes:
        write_adoption(repo, plan)
    describe(repo, plan, dry_run, say)
    if dry_run:
        say("dry run: nothing was written")
        return plan
    differ = differences(repo, plan.old_values)
    for name, where in differ.items():
        say(
            f"warning: member {name}: its values differ from the old deploy's at {where}; "
            f"see invoke values {name} --show-origin"
        )
    if not differ:
        say(
            f"checked: the values of {len(plan.old_values)} member(s) are the ones deploy.py "
            "passed Helm (registry facts aside)"
        )
    return plan
