"""The plain files an adoption writes, each as it was in the adopted repository, byte for byte:
the umbrella chart (mybinder/), the common values folder (config/common/*.yaml), each adopted
member's config/<member>.yaml, and the public halves of its SSH key. A file of the adopted
chart that the repository no longer has is removed on a rerun (but for the dependencies
vendored here, charts/ and charts.lock), so the chart stays the one the old deploy used."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hubfleet.adopt.members import FoundMember, ValuesFiles
from hubfleet.adopt.source import CHART, MAX_CHART_FILE_BYTES, SourceRepo
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.lock import LOCK_FILE

NEW, CHANGED, UNCHANGED, REMOVED = "new", "changed", "unchanged", "removed"


@dataclass(frozen=True)
class AdoptedFile:
    """One file to write into the hubfleet repo; `content` is ciphertext for a secret."""

    path: Path
    source: str  # where it came from, relative to the adopted repository
    change: str  # new, changed or unchanged
    content: bytes = field(default=b"", repr=False)
    secret: bool = False
    note: str = ""


def change_of(path: Path, content: bytes) -> str:
    if not path.is_file():
        return NEW
    return UNCHANGED if path.read_bytes() == content else CHANGED


def copied(
    repo: DeployRepo, source: SourceRepo, relative: str, limit: int | None = None
) -> AdoptedFile:
    data = source.read_bytes(relative) if limit is None else source.read_bytes(relative, limit)
    path = repo.root / relative
    return AdoptedFile(path, relative, change_of(path, data), data)


def plain_files(
    repo: DeployRepo,
    source: SourceRepo,
    members: Sequence[FoundMember],
    values: ValuesFiles,
) -> list[AdoptedFile]:
    """The chart, the common values and each member's own values file and public key, as they
    were (each values file read by Helm's parser first, so a broken one stops the adoption)."""
    files = [copied(repo, source, rel, MAX_CHART_FILE_BYTES) for rel in source.walk(CHART)]
    files += stale_chart_files(repo, {f.path for f in files})
    plain = list(source.files("config/common", "*.yaml"))
    plain += [f"config/{m.name}.yaml" for m in members if source.exists(f"config/{m.name}.yaml")]
    for relative in plain:
        values.get(relative)  # read by Helm's parser: a broken file stops here, named
        files.append(copied(repo, source, relative))
    for member in members:
        public = f"secrets/{member.name}.key.pub"
        if source.exists(public):
            files.append(copied(repo, source, public))
    return files


def stale_chart_files(repo: DeployRepo, adopted: set[Path]) -> list[AdoptedFile]:
    """Files of the chart adopted before that the repository's chart no longer has."""
    here = repo.root / CHART
    if not here.is_dir():
        return []
    vendored = here / "charts"
    return [
        AdoptedFile(path, f"no longer in the adopted {CHART}/", REMOVED)
        for path in sorted(here.rglob("*"))
        if (path.is_file() or path.is_symlink())
        and path not in adopted
        and path.name != LOCK_FILE
        and vendored not in path.parents
    ]
