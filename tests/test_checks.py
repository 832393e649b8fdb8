"""The static checks are part of the suite, so nothing lands that they refuse: ruff (lint and
format, the stand-in executables included) and mypy (strict on hubfleet/, checked on tests/),
with the versions and settings pyproject.toml pins, as nox and the test workflow run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=PROJECT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "argv", [["ruff", "check", "--no-cache", "."], ["ruff", "format", "--no-cache", "--check", "."]]
)
def test_ruff(argv: list[str]) -> None:
    done = run([str(BIN / argv[0]), *argv[1:]])
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_sees_the_stand_in_executables() -> None:
    done = run([str(BIN / "ruff"), "check", "--no-cache", "--show-files", "."])
    seen = {Path(line).name for line in done.stdout.splitlines()}
    assert {"k3s", "microk8s", "snap", "systemctl"} <= seen


def test_mypy(tmp_path: Path) -> None:
    done = run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache")])
    assert done.returncode == 0, done.stdout + done.stderr
    checked = done.stdout.strip().splitlines()[-1]
    assert checked.startswith("Success: no issues found in ")
    assert int(checked.split()[-3]) > 150  # hubfleet/ and tests/, not one of them
