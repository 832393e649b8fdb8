"""Writing files atomically, and deploy-repo changes all or nothing (member.new, member.remove).

Files created or replaced inside `all_or_nothing()` are put back as they were when the block
fails. `write_atomically`, the one way hubfleet replaces a file, goes through a temporary
file renamed over it, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubfleet.errors import HubfleetError


class _Rollback:
    def __init__(self) -> None:
        self.created_paths: list[Path] = []
        self.created_dirs: list[Path] = []
        self.originals: dict[Path, tuple[bytes, int]] = {}  # content and mode

    def created(self, path: Path) -> None:
        """`path` is about to be created (its missing folders are made now, and removed on
        failure with it)."""
        missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            self.created_dirs.append(folder)
        self.created_paths.append(path)

    def replaced(self, path: Path) -> None:
        self.originals.setdefault(path, (path.read_bytes(), path.stat().st_mode & 0o777))

    def undo(self) -> None:
        for path in reversed(self.created_paths):
            path.unlink(missing_ok=True)
        for folder in reversed(self.created_dirs):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for path, (content, mode) in self.originals.items():
            write_atomically(path, content, mode)


@contextmanager
def all_or_nothing() -> Iterator[_Rollback]:
    """Files created or replaced in the block are put back as they were when it fails."""
    rollback = _Rollback()
    try:
        yield rollback
    except BaseException:
        rollback.undo()
        raise


def write_atomically(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` by `content` (text as UTF-8) through a temporary file in the same folder,
    flushed to disk and renamed over it: a reader sees the old file or the new one, never half
    of one, and a failure leaves neither a changed file nor a temporary one behind. Secrets
    and kubeconfigs pass mode 0o600; the file never has a wider mode on its way. A place that
    cannot be written (read-only, full, not allowed) is a HubfleetError naming `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise HubfleetError(
            f"cannot write {path}: {err.strerror or err}; nothing was changed"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp made it 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, mode)
        os.replace(name, path)
    except OSError as err:
        Path(name).unlink(missing_ok=True)
        raise HubfleetError(
            f"cannot write {path}: {err.strerror or err}; nothing was changed"
        ) from None
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
