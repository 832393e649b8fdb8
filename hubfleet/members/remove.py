"""Taking a member out of the federation: its registry entry and, when purging, its files.

`remove_member` takes the member's block out of config/federation.yaml (the comments right
above it go with it; the rest of the file stays byte for byte) and, with purge, deletes the
files that belong to the member alone (`member_files`). Nothing in the cluster is touched
unless asked: with `Uninstall`, the member's releases and namespaces are taken off its cluster
first (hubfleet.deploy.uninstall).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from hubfleet.deploy.uninstall import UninstallOptions
from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.atomic import all_or_nothing, write_atomically
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import YamlDocument, parse_with_lines
from hubfleet.helm.engine import HelmEngine
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import Member, check_registry


def member_files(repo: DeployRepo, name: str) -> list[Path]:
    """Every file that belongs to member `name` alone (what --purge deletes), if present."""
    secrets = repo.secrets_dir
    candidates = [
        repo.member_values(name),
        repo.member_secret_values(name),
        repo.member_values(name, "support"),
        repo.member_secret_values(name, "support"),
        repo.member_kubeconfig(name),
        secrets / f"{name}.key",
        secrets / f"{name}.key.pub",
        secrets / f"{name}-wireguard.yaml",
        repo.member_k3s_token(name),
        repo.member_gke_credentials(name),
        secrets / f"{name}-tofu.yaml",
        repo.root / ".hubfleet" / "onboarding" / f"{name}.json",
    ]
    return [path for path in candidates if path.exists()]


def registry_without(text: str, doc: YamlDocument, name: str) -> str:
    """The registry text without member `name`'s block (and the comments right above it)."""
    lines = text.splitlines(keepends=True)
    members = list(doc.data.get("members") or {})
    starts = {key: (doc.line_of(("members", key)) or 1) - 1 for key in members}
    indent = len(lines[starts[name]]) - len(lines[starts[name]].lstrip(" "))

    def with_comments(start: int) -> int:
        while start > 0:
            above = lines[start - 1]
            if above.lstrip().startswith("#") and len(above) - len(above.lstrip(" ")) >= indent:
                start -= 1
            else:
                break
        return start

    start = with_comments(starts[name])
    later = sorted(s for s in starts.values() if s > starts[name])
    end = with_comments(later[0]) if later else len(lines)
    kept = [*lines[:start], *lines[end:]]
    if len(members) == 1:  # the last member: `members:` must stay a mapping
        kept = [re.sub(r"^members:.*", "members: {}", ln) for ln in kept]
    return "".join(kept)


@dataclass(frozen=True)
class Uninstall:
    """How to take a member off its cluster before it leaves the registry
    (hubfleet.deploy.uninstall)."""

    repo: DeployRepo
    engine: HelmEngine
    options: UninstallOptions
    credentials: ClusterCredentials | None = None

    def run(self, member: Member, dry_run: bool, say: Callable[[str], None]) -> list[str]:
        from hubfleet.deploy.uninstall import uninstall_member

        options = replace(self.options, dry_run=dry_run)
        return uninstall_member(self.repo, member, self.engine, options, say, self.credentials)


def remove_member(
    repo: DeployRepo,
    name: str,
    purge: bool,
    confirm: Callable[[str], bool],
    say: Callable[[str], None] = print,
    uninstall: Uninstall | None = None,
    dry_run: bool = False,
) -> list[Path]:
    """Deregister member `name` (and with `purge`, delete its files) once `confirm` agrees;
    with `uninstall`, first take its releases and namespaces off its cluster. A dry run says
    what would be done and changes nothing.

    Returns the files deleted."""
    from hubfleet.registry.members import load_registry

    registry = load_registry(repo)
    member = registry.member(name)  # unknown: an error suggesting close names
    text = repo.registry.read_text(encoding="utf-8")
    new_text = registry_without(text, registry.document, name)
    shown = registry.shown
    parsed = parse_with_lines(new_text, repo.registry, shown).data or {}
    expected = {k: v for k, v in registry.document.data["members"].items() if k != name}
    if parsed.get("members") != expected:
        raise HubfleetError(
            f"cannot take member {name} out of {shown} as text (is it written in flow style?); "
            "remove its entry by hand"
        )
    doomed = member_files(repo, name) if purge else []
    listed = "".join(f"\n  {repo.relative(p)}" for p in doomed)
    if dry_run:
        if uninstall is not None:
            uninstall.run(member, True, say)
        say(f"{name}: would remove member {name} from {shown}")
        for path in doomed:
            say(f"{name}: would delete {repo.relative(path)}")
        say(f"member {name}: dry run, nothing was changed")
        return []
    question = f"Remove member {name} from {shown}" + (
        f" and delete {len(doomed)} file(s):{listed}\n" if doomed else ""
    )
    if uninstall is not None:
        crds = ", and cert-manager's CRDs" if uninstall.options.delete_crds else ""
        question = (
            f"Uninstall member {name}'s releases and delete their namespaces{crds}; then "
            + question[0].lower()
            + question[1:]
        )
    if not confirm(question.rstrip() + "?"):
        raise HubfleetError(f"member {name}: not removed (not confirmed)")
    if uninstall is not None:
        uninstall.run(member, False, say)
    with all_or_nothing() as keep:
        keep.replaced(repo.registry)
        write_atomically(repo.registry, new_text)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not removing member {name}: {problems[0]}")
    say(f"member {name}: removed from {shown}")
    for path in doomed:
        path.unlink()
        say(f"deleted {repo.relative(path)}")
    worked = repo.root / ".hubfleet" / "tofu" / name
    if worked.is_dir():
        stacks = ", ".join(sorted(p.name for p in worked.iterdir() if p.is_dir())) or "none"
        say(
            f"member {name} ran OpenTofu stacks ({stacks}): their resources and state "
            f"(hubfleet/{name}/<stack>.tfstate) are untouched; destroy them with tofu first "
            "if they should go"
        )
        if purge:
            shutil.rmtree(worked)
            say(f"deleted {repo.relative(worked)}/ (tofu's local working files)")
    if not purge:
        left = member_files(repo, name)
        if left:
            say(f"kept {len(left)} file(s) of member {name}; --purge deletes them")
    return doomed
