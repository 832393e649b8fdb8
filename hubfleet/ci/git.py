"""The one adapter over git: which files a change touches, and a file as it was at a ref.

Paths are relative to the deploy repo root (which may be a subdirectory of the git work tree)
and '/'-separated, as git prints them. Every failure is one line naming the ref or repo.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hubfleet.errors import HubfleetError

TIMEOUT_S = 60


class GitError(HubfleetError):
    """git is missing, the directory is no git repo, or a ref is unknown."""


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo_root), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (needed for --base/--head)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} in {repo_root} took over {TIMEOUT_S} s") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def check_ref(repo_root: Path, ref: str) -> str:
    """The commit `ref` names; an unknown ref is a one-line GitError."""
    if not ref or ref.startswith("-"):
        raise GitError(f"{ref!r} is not a git ref")
    result = _git(
        repo_root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
    )
    if result.returncode != 0:
        probe = _git(repo_root, "rev-parse", "--git-dir")
        if probe.returncode != 0:
            raise GitError(f"{repo_root} is not in a git repository: {_first_line(probe.stderr)}")
        raise GitError(
            f"unknown git ref {ref!r} in {repo_root} (in CI, check out with fetch-depth: 0; "
            "or plan with --all)"
        )
    return result.stdout.strip()


def changed_files(repo_root: Path, base: str, head: str = "HEAD") -> list[str]:
    """The paths that differ between the merge base of `base` and `head`, and `head`.

    Renames count as the old and the new path; paths outside `repo_root` are left out.
    """
    old, new = check_ref(repo_root, base), check_ref(repo_root, head)
    result = _git(
        repo_root, "diff", "--name-only", "--no-renames", "--relative", f"{old}...{new}", "--"
    )
    if result.returncode != 0:
        raise GitError(f"git diff {base}...{head} failed: {_first_line(result.stderr)}")
    return [line for line in result.stdout.splitlines() if line]


def file_at(repo_root: Path, ref: str, path: str) -> str | None:
    """The text of `path` (relative to `repo_root`) at `ref`; None when it did not exist."""
    commit = check_ref(repo_root, ref)
    result = _git(repo_root, "show", f"{commit}:./{path}")
    if result.returncode != 0:
        return None
    return result.stdout
