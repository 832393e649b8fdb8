"""One problem found in a registry file, said the way an operator needs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, said the way an operator needs it."""

    file: str
    line: int | None
    member: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" member {self.member}:" if self.member else ""
        what = f" key {self.key!r}:" if self.key else ""
        return f"{where}:{who}{what} {self.message}"
