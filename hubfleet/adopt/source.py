"""The repository being adopted, on disk: a checkout of a mybinder.org-deploy style repository
whose secrets git-crypt has unlocked. Every file is read bounded, a symlink is followed only
inside the checkout, and a file git-crypt still locks stops everything in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hubfleet.errors import ConfigError

GIT_CRYPT_HEADER = b"\x00GITCRYPT\x00"
MAX_FILE_BYTES = 4 << 20  # values, kubeconfigs, keys: tens of KB
MAX_CHART_FILE_BYTES = 64 << 20  # a chart's packaged dependencies
MAX_FILES = 20_000
CHART = "mybinder"


@dataclass(frozen=True)
class SourceRepo:
    """A mybinder.org-deploy style checkout; paths are '/'-separated, relative to its root."""

    root: Path

    def shown(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def path(self, relative: str) -> Path:
        """The file `relative` names, refused when it is a symlink leading out of the checkout."""
        path = self.root / relative
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(self.root.resolve()):
                raise ConfigError(
                    f"{self.shown(relative)}: a symlink to {target}, outside {self.root}; "
                    "replace it by the file itself, then adopt again"
                )
        return path

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    def read_bytes(self, relative: str, limit: int = MAX_FILE_BYTES) -> bytes:
        path = self.path(relative)
        try:
            size = path.stat().st_size
            if size > limit:
                raise ConfigError(
                    f"{self.shown(relative)}: {size} bytes, over the limit of {limit}; refused"
                )
            data = path.read_bytes()
        except OSError as err:
            raise ConfigError(f"{self.shown(relative)}: cannot read: {err.strerror}") from None
        if data.startswith(GIT_CRYPT_HEADER):
            raise locked(self, relative)
        return data

    def read_text(self, relative: str) -> str:
        try:
            return self.read_bytes(relative).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{self.shown(relative)}: not UTF-8 text") from None

    def files(self, folder: str, pattern: str = "*") -> list[str]:
        """The files directly in `folder` matching `pattern`, sorted (as deploy.py globs)."""
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.glob(pattern) if self.path_is_file(p)
        )

    def path_is_file(self, path: Path) -> bool:
        return self.path(str(path.relative_to(self.root))).is_file()

    def walk(self, folder: str) -> Iterator[str]:
        """Every file under `folder`, sorted, symlinked folders not entered."""
        count = 0
        for here, dirs, names in os.walk(self.root / folder):
            dirs.sort()
            for name in sorted(names):
                count += 1
                if count > MAX_FILES:
                    raise ConfigError(f"{self.shown(folder)}: more than {MAX_FILES} files; refused")
                relative = str((Path(here) / name).relative_to(self.root))
                if self.path(relative).is_file():
                    yield relative


def locked(source: SourceRepo, relative: str) -> ConfigError:
    return ConfigError(
        f"{source.shown(relative)}: still locked by git-crypt; run `git-crypt unlock` in "
        f"{source.root}, then adopt again (nothing was written)"
    )


def open_source(path: Path) -> SourceRepo:
    """The checkout at `path`, after checking it is one and nothing in secrets/ is locked."""
    root = path.expanduser().absolute()
    if not (root / "deploy.py").is_file() or not (root / CHART / "Chart.yaml").is_file():
        raise ConfigError(
            f"{path}: not a mybinder.org-deploy style checkout (it needs deploy.py and "
            f"{CHART}/Chart.yaml); give the path of one"
        )
    source = SourceRepo(root)
    for relative in source.walk("secrets"):
        with open(source.path(relative), "rb") as stream:
            if stream.read(len(GIT_CRYPT_HEADER)) == GIT_CRYPT_HEADER:
                raise locked(source, relative)
    return source
