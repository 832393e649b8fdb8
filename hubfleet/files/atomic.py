"""Writing deploy-repo files all or nothing (member.new, member.remove).

Files created or replaced inside `all_or_nothing()` are put back as they were when the block
fails. `write_atomically` replaces a plaintext file through a temporary file renamed over it,
so a reader never sees half a file; encrypted files are written by hubfleet.secrets.sops (mode 0600)
and undone here all the same.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _Rollback:
    def __init__(self) -> None:
        self.created_paths: list[Path] = []
        self.originals: dict[Path, bytes] = {}

    def created(self, path: Path) -> None:
        self.created_paths.append(path)

    def replaced(self, path: Path) -> None:
        self.originals.setdefault(path, path.read_bytes())

    def undo(self) -> None:
        for path in reversed(self.created_paths):
            path.unlink(missing_ok=True)
        for path, content in self.originals.items():
            write_atomically(path, content)


@contextmanager
def all_or_nothing() -> Iterator[_Rollback]:
    """Files created or replaced in the block are put back as they were when it fails."""
    rollback = _Rollback()
    try:
        yield rollback
    except BaseException:
        rollback.undo()
        raise


def write_atomically(path: Path, content: str | bytes) -> None:
    """Replace `path` by `content` (text as UTF-8), mode 0644, through a temporary file."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
