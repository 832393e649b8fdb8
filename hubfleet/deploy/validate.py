"""`invoke validate`: the registry, every member of it, and each member's merged values.

Reports every problem found (not only the first), one line each, in registry order.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubfleet.deploy.member import render_member
from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.registry.members import Member, check_registry, member_from_record
from hubfleet.values.layers import ensure_secrets_encrypted, secret_layer_files


@dataclass(frozen=True)
class ValidationReport:
    members_checked: tuple[str, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # keys no chart reads (errors with --strict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_member_values(
    repo: DeployRepo,
    member: Member,
    engine: HelmEngine,
    decrypted: Mapping[Path, str | Exception],
) -> tuple[list[str], list[str], Mapping[str, Any] | None]:
    """Everything a deploy does before the cluster (`render_member`: values, the dependencies
    the values enable, every chart's schema, the render): the problems, the keys no chart
    reads (warnings), and the values Helm was handed (None when it got none)."""
    try:
        rendered = render_member(repo, member, engine, decrypted=decrypted)
    except HubfleetError as err:
        message = str(err)
        if not message.startswith(f"member {member.name}"):
            message = f"member {member.name}: {message}"
        if member.part != "member":
            message = message.replace(
                f"member {member.name}", f"member {member.name} ({member.part} release)", 1
            )
        return [message], [], None
    return [], list(rendered.unread), rendered.values.user.values


def _lint_each_chart_once(
    repo: DeployRepo, engine: HelmEngine, linted: list[tuple[Member, Mapping[str, Any]]]
) -> list[str]:
    """Helm's linter, once per chart (with the values of the first member using it): what it
    finds beyond the render (Chart.yaml, the chart's files) is the chart's, not a member's,
    and a second run on the same chart would render it all again."""
    first: dict[str, tuple[Member, Mapping[str, Any]]] = {}
    for member, values in linted:
        first.setdefault(member.chart, (member, values))
    problems = []
    for chart, (member, values) in first.items():
        chart_dir = repo.root / chart
        try:
            findings = engine.lint(chart_dir, values)
        except HubfleetError as err:
            problems.append(f"chart {chart}: lint: {err}")
            continue
        problems += [
            f"chart {chart}: lint {f.path}: {f.message} (with the values of member {member.name})"
            for f in findings
            if f.severity == "error"
        ]
    return problems


def _decrypt_each_once(
    repo: DeployRepo, members: list[Member], pool: ThreadPoolExecutor
) -> dict[Path, Future[str | Exception]]:
    """Every secrets file the members' layers use, decrypted once (the common one is shared),
    in the members' order, as futures: a member renders as soon as its files are decrypted,
    while sops runs for the next. A file that fails gives its error, reported by each member
    that needs it."""
    from hubfleet.secrets import sops

    files = list(dict.fromkeys(p for m in members for p in secret_layer_files(repo, m)))

    def one(path: Path) -> str | Exception:
        try:
            return sops.decrypt(repo, path)
        except HubfleetError as err:
            return err

    return {path: pool.submit(one, path) for path in files}


def _stack_problems(repo: DeployRepo, doc: Any, members: list[Member]) -> list[str]:
    """The OpenTofu variables members set in the registry, against the stacks' declarations."""
    with_stacks = [m for m in members if m.tofu]
    if not with_stacks:
        return []
    from hubfleet.cloud.tofu import Variable, stack_problems

    shown = repo.relative(repo.registry)
    parsed: dict[Path, dict[str, Variable]] = {}
    return [
        line
        for member in with_stacks
        for line in stack_problems(repo, member, shown, doc.line_of, parsed)
    ]


def validate_federation(
    repo: DeployRepo,
    engine: HelmEngine,
    only: str | None = None,
    workers: int = 8,
    strict: bool = False,
) -> ValidationReport:
    """Check the whole registry, then the values of `only` (or of every valid member): as a
    deploy would, up to the cluster, and by Helm's linter. Keys no chart reads are warnings,
    problems with `strict`."""
    doc, problems = check_registry(repo)
    lines = [str(p) for p in problems]
    members = doc.data.get("members") if isinstance(doc.data, dict) else None
    if not isinstance(members, dict):
        return ValidationReport((), tuple(lines))
    if only is not None and only not in members:
        from hubfleet.registry.members import load_registry

        load_registry(repo).member(only)  # raises with close-name suggestions
    broken = {p.member for p in problems}
    names = [n for n in members if (only is None or n == only) and n not in broken]
    if names:
        ensure_secrets_encrypted(repo)
    from hubfleet.registry.support import releases

    # each member's releases: its support release (when it has one), then its hub
    chosen = [r for n in names for r in releases(member_from_record(n, members[n]))]
    with ThreadPoolExecutor(max_workers=workers) as sops, ThreadPoolExecutor(workers) as helm:
        decrypting = _decrypt_each_once(repo, chosen, sops)

        def check(member: Member) -> tuple[list[str], list[str], Mapping[str, Any] | None]:
            mine = {p: decrypting[p].result() for p in secret_layer_files(repo, member)}
            return _check_member_values(repo, member, engine, mine)

        results = list(helm.map(check, chosen))
    lines += [line for found, _, _ in results for line in found]
    unread = [line for _, found, _ in results for line in found]
    rendered = [(m, values) for m, (_, _, values) in zip(chosen, results, strict=True) if values]
    lines += _lint_each_chart_once(repo, engine, rendered)
    lines += _stack_problems(repo, doc, chosen)
    if strict:
        return ValidationReport(tuple(names), tuple(lines + unread))
    return ValidationReport(tuple(names), tuple(lines), tuple(unread))
