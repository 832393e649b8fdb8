"""`invoke validate`: the registry, every member of it, and each member's merged values.

Reports every problem found (not only the first), one line each, in registry order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hubfleet.errors import HubfleetError
from hubfleet.helm import HelmEngine
from hubfleet.layers import ensure_secrets_encrypted, member_values
from hubfleet.registry import Member, check_registry, member_from_record
from hubfleet.repo import DeployRepo


@dataclass(frozen=True)
class ValidationReport:
    members_checked: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_member_values(repo: DeployRepo, member: Member, engine: HelmEngine) -> str | None:
    try:
        merged = member_values(repo, member)
        engine.validate_values_schema(repo.root / member.chart, merged.effective.values)
    except HubfleetError as err:
        return f"member {member.name}: {err}"
    return None


def validate_federation(
    repo: DeployRepo, engine: HelmEngine, only: str | None = None, workers: int = 8
) -> ValidationReport:
    """Check the whole registry, then the values of `only` (or of every valid member)."""
    doc, problems = check_registry(repo)
    lines = [str(p) for p in problems]
    members = doc.data.get("members") if isinstance(doc.data, dict) else None
    if not isinstance(members, dict):
        return ValidationReport((), tuple(lines))
    if only is not None and only not in members:
        from hubfleet.registry import load_registry

        load_registry(repo).member(only)  # raises with close-name suggestions
    broken = {p.member for p in problems}
    names = [n for n in members if (only is None or n == only) and n not in broken]
    if names:
        ensure_secrets_encrypted(repo)
    chosen = [member_from_record(n, members[n]) for n in names]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda m: _check_member_values(repo, m, engine), chosen))
    lines += [r for r in results if r]
    return ValidationReport(tuple(names), tuple(lines))
