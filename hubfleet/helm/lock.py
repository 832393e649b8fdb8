"""The charts a chart depends on, pinned by digest: `charts.lock` beside its Chart.yaml.

Chart.yaml pins each dependency's version; the lock adds the sha256 of the packaged chart
(the digest a chart repository's index carries for it), recorded when `invoke charts.update`
first fetches it and committed with the chart. A chart taken from the cache whose digest
differs from the lock is refused, so what a deploy renders is what was reviewed.
`check_charts` says, offline, what the cache lacks or holds wrongly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hubfleet.errors import ConfigError
from hubfleet.files.atomic import write_atomically
from hubfleet.files.yamlfile import parse_bounded, read_text

LOCK_FILE = "charts.lock"


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    repository: str
    digest: str  # sha256:<hex> of the packaged chart


@dataclass(frozen=True)
class ChartState:
    """One dependency as the cache holds it: ok, missing, other-version or wrong-digest."""

    name: str
    version: str
    repository: str
    state: str
    found: str = ""  # the versions found instead, or the digest found

    def line(self) -> str:
        wanted = f"{self.name} {self.version} from {self.repository}"
        if self.state == "ok":
            return f"ok: {wanted}"
        if self.state == "unlocked":
            return f"ok: {wanted} (no digest in {LOCK_FILE} yet: invoke charts.update records it)"
        if self.state == "missing":
            return f"missing: {wanted}; fetch it: invoke charts.update"
        if self.state == "other-version":
            return f"missing: {wanted} (the cache has {self.found}); fetch it: invoke charts.update"
        return (
            f"differs: {wanted}: the cache's digest is {self.found}, not the one {LOCK_FILE} "
            "records; remove it from the cache and run invoke charts.update"
        )


def archive_digest(path: Path) -> str:
    """sha256:<hex> of a packaged chart, as chart repository indexes give it."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def read_lock(chart_dir: Path) -> dict[str, Locked]:
    path = chart_dir / LOCK_FILE
    if not path.is_file():
        return {}
    try:
        data = parse_bounded(read_text(path), str(path))
    except ConfigError as err:
        raise ConfigError(f"unreadable lock: {err}; run invoke charts.update") from None
    entries = data.get("dependencies") if isinstance(data, dict) else None
    locked: dict[str, Locked] = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or not re.fullmatch(
            r"sha256:[0-9a-f]{64}", str(entry.get("digest", ""))
        ):
            raise ConfigError(f"{path}: an entry without a sha256 digest: {entry!r}")
        locked[str(entry["name"])] = Locked(
            str(entry["name"]),
            str(entry.get("version", "")),
            str(entry.get("repository", "")),
            str(entry["digest"]),
        )
    return locked


def write_lock(chart_dir: Path, entries: list[Locked]) -> None:
    header = (
        "# Written by `invoke charts.update`: the digest of each dependency this chart was\n"
        "# reviewed with. Commit it; a chart in the cache with another digest is refused.\n"
    )
    body: dict[str, Any] = {
        "dependencies": [
            {"name": e.name, "version": e.version, "repository": e.repository, "digest": e.digest}
            for e in sorted(entries, key=lambda e: e.name)
        ]
    }
    write_atomically(chart_dir / LOCK_FILE, header + yaml.safe_dump(body, sort_keys=False))


def digest_problem(chart_dir: Path, name: str, version: str, archive: Path) -> str | None:
    """Why `archive` may not stand for dependency `name` `version` (None when it may)."""
    locked = read_lock(chart_dir).get(name)
    if locked is None or locked.version != version:
        return None
    found = archive_digest(archive)
    if found == locked.digest:
        return None
    return (
        f"{archive}: digest {found} is not the {locked.digest} that {chart_dir / LOCK_FILE} "
        f"records for {name} {version}; remove it and run invoke charts.update"
    )


def check_charts(
    chart_dir: Path, declared: list[dict[str, Any]], cache_dir: Path | None
) -> list[ChartState]:
    """Each declared dependency against the cache and the lock, offline."""
    lock = read_lock(chart_dir)
    states = []
    for dep in declared:
        name, version = str(dep.get("name")), str(dep.get("version"))
        repository = str(dep.get("repository", ""))
        exact = cache_dir / f"{name}-{version}.tgz" if cache_dir else None
        if exact is None or not exact.is_file():
            others = (
                sorted(
                    p.name.removeprefix(f"{name}-").removesuffix(".tgz")
                    for p in cache_dir.glob(f"{name}-*.tgz")
                )
                if cache_dir and cache_dir.is_dir()
                else []
            )
            state = "other-version" if others else "missing"
            states.append(ChartState(name, version, repository, state, ", ".join(others)))
            continue
        locked = lock.get(name)
        if locked is None or locked.version != version:
            states.append(ChartState(name, version, repository, "unlocked"))
            continue
        found = archive_digest(exact)
        state = "ok" if found == locked.digest else "wrong-digest"
        states.append(ChartState(name, version, repository, state, found))
    return states


def update_charts(
    chart_dir: Path,
    declared: list[dict[str, Any]],
    cache_dir: Path,
    pull: Callable[[str, str, str, Path], None],
    say: Callable[[str], None],
) -> list[Locked]:
    """Fetch every declared dependency at its pinned version into the cache (`pull(name,
    version, repository, cache_dir)`), unless it is there already, then verify it against the
    lock: a digest the lock does not know is recorded; one that differs from the lock is
    refused (the repository now serves another chart than the one reviewed)."""
    lock = read_lock(chart_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    entries: list[Locked] = []
    for dep in declared:
        name, version = str(dep.get("name")), str(dep.get("version"))
        repository = str(dep.get("repository", ""))
        target = cache_dir / f"{name}-{version}.tgz"
        how = "in the cache"
        if not target.is_file():
            pull(name, version, repository, cache_dir)
            if not target.is_file():
                raise ConfigError(
                    f"{name} {version} from {repository}: fetched, but no {target.name} came; "
                    "is the version pinned in Chart.yaml exact?"
                )
            how = "fetched"
        digest = archive_digest(target)
        locked = lock.get(name)
        if locked is not None and locked.version == version and locked.digest != digest:
            raise ConfigError(
                f"{name} {version} from {repository}: digest {digest} is not the {locked.digest} "
                f"that {chart_dir / LOCK_FILE} records; the chart changed since it was reviewed. "
                f"{target} was left for a look; nothing was recorded"
            )
        known = locked is not None and locked.version == version
        say(f"{name} {version}: {how}, {digest} ({'as locked' if known else 'recorded'})")
        entries.append(Locked(name, version, repository, digest))
    if {e.name: e for e in entries} != lock:
        write_lock(chart_dir, entries)
    return entries
