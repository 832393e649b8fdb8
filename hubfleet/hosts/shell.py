"""The shell hubfleet sends to hosts, as pure functions: files written from stdin (atomically,
two processes a file), files read back (one tar), and changes queued to go first in a later
command (hubfleet.hosts.ssh runs them)."""

from __future__ import annotations

import io
import os
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Later:
    """A change left to go with the host's next command: shell, its stdin, what it does (for
    an error), and the step it belongs to."""

    script: str
    stdin: str
    what: str
    step: str


LATER_FAILED = "@@hubfleet-later-failed"


def probe_script(paths: Sequence[str]) -> str:
    """Shell printing `@@tar <base64>`: the regular files among `paths` (links followed) in one
    tar (nothing when none exists); three processes however many files."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        f'set --; for f in {quoted}; do [ -f "$f" ] && set -- "$@" "$f"; done; '
        "if [ $# -gt 0 ]; then printf '@@tar '; "
        'tar -chf - -b 1 -- "$@" 2>/dev/null | base64 -w0; echo; fi; set --'
    )


def files_in_tar(archive: bytes, paths: Sequence[str]) -> dict[str, tuple[str, int]]:
    """(content, mode) of each of `paths` in a tar made on the host (tar drops the leading /;
    a file named twice is a hard link to its first copy)."""
    import tarfile

    wanted = {p.lstrip("/"): p for p in paths}
    found: dict[str, tuple[str, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            path = wanted.get(member.name)
            data = tar.extractfile(member) if path and (member.isfile() or member.islnk()) else None
            if path and data is not None:
                found[path] = (data.read().decode(), member.mode & 0o7777)
    return found


def write_script(files: Sequence[tuple[str, int, int]]) -> str:
    """Shell writing files (path, bytes on stdin, mode) from stdin in order: each into a temp
    file beside it (a fresh name, created exclusively: `set -C`), the last one's size checked
    (stdin is read in order, so a short one shows there), then each renamed into place."""
    tag = secrets.token_hex(4)
    temps = [(shlex.quote(f"{path}.hubfleet-{tag}"), shlex.quote(path)) for path, _, _ in files]
    cleanup = shlex.quote(f"rm -f -- {' '.join(t for t, _ in temps)}")
    parts = [f"set -e; set -C; umask 077; trap {cleanup} EXIT"]
    for directory in dict.fromkeys(os.path.dirname(path) or "." for path, _, _ in files):
        quoted = shlex.quote(directory)
        parts.append(f"[ -d {quoted} ] || mkdir -p {quoted}")
    for (temp, _), (_, size, mode) in zip(temps, files, strict=True):
        exact = mode & ~0o666 == 0  # what a umask can give a new file
        parts.append(f"umask {0o666 & ~mode if exact else 0o077:03o}; head -c {size} > {temp}")
        if not exact:
            parts.append(f"chmod {mode:o} {temp}")
    if files:
        parts.append(f"test $(wc -c < {temps[-1][0]}) -eq {files[-1][1]}")
    parts += [f"mv -f {temp} {path}" for temp, path in temps]
    parts.append("trap - EXIT; set +C; umask 077")
    return "; ".join(parts)


def guarded(number: int, later: Later) -> str:
    """A queued change as part of a larger script: in a subshell of its own (its `set -e`,
    traps and exit stay there), reading only its own stdin; failing, it says which it was on
    stderr and the script stops. (Its status is tested after it ends, not with `||`, which
    would turn its `set -e` off.)"""
    source = "" if later.stdin else " </dev/null"
    return (
        f"( {later.script}\n){source}\n"
        f"s=$?; if [ $s -ne 0 ]; then echo '{LATER_FAILED} {number} '$s >&2; exit $s; fi"
    )
