"""The registry (and every YAML file read with lines) is read bounded: each hostile or broken
input is one line naming the file and the line, exit 1 through the tasks, nothing built."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubfleet.errors import ConfigError
from hubfleet.files import yamlfile
from hubfleet.files.yamlfile import load_mapping
from tests.conftest_repo import MakeRepo

BOMB = (
    "\n".join(
        ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]"
            for i in range(8)
        ]
    )
    + "\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOMB, "f.yaml:6: more than 500000 values (aliases expanded); refused"),
        (
            "members:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000)),
            "f.yaml:65: nested deeper than 64 levels; refused",
        ),
        (
            "members: " + "[" * 50_000 + "]" * 50_000 + "\n",
            "f.yaml:1: nested deeper than 64 levels; refused",
        ),
        (
            "members:\n  a: !!python/object/apply:os.system [echo pwned]\n",
            "f.yaml:2: tag tag:yaml.org,2002:python/object/apply:os.system is not allowed "
            "(only YAML's core types)",
        ),
        (
            "members:\n  a: !!python/name:os.system\n",
            "f.yaml:2: tag tag:yaml.org,2002:python/name:os.system is not allowed (only YAML's "
            "core types)",
        ),
        (
            "members:\n  a: !custom {x: 1}\n",
            "f.yaml:2: tag !custom is not allowed (only YAML's core types)",
        ),
        (
            "members:\n  a: [1, 2\n",
            "f.yaml:2: malformed YAML: did not find expected ',' or ']'",
        ),
    ],
    ids=[
        "alias bomb",
        "deep mapping",
        "deep flow list",
        "python tag on a list",
        "python tag on a scalar",
        "custom tag",
        "cut off",
    ],
)
def test_hostile_yaml_is_one_line_naming_the_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_mapping(path, "f.yaml")
    assert time.perf_counter() - started < 5
    assert str(caught.value) == expected
    assert "\n" not in str(caught.value)


def test_broken_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"members:\n  a: ok\n  b: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"^bad.yaml:3: not UTF-8 text \(byte 23\)$"):
        load_mapping(bad, "bad.yaml")
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"^dir.yaml: is a directory, not a file$"):
        load_mapping(folder, "dir.yaml")
    monkeypatch.setattr(yamlfile, "MAX_BYTES", 1000)
    big = tmp_path / "big.yaml"
    big.write_text("members: {}\n" + "# padding\n" * 200)
    with pytest.raises(ConfigError, match=r"^big.yaml: 2012 bytes, over the limit of 1000$"):
        load_mapping(big, "big.yaml")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffmembers:\r\n  a: 1\r\n".encode())
    assert load_mapping(bom, "bom.yaml").data == {"members": {"a": 1}}


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for everyone, root included (a read-only bind mount over it)."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder), str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_repository_is_one_line_naming_the_file(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    from tests.test_fronts import one_error_line, run_in

    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}, "beta": {"domain": "beta.example.org"}}
    )
    secrets_dir = repo.root / "secrets" / "config"
    before = {p: p.read_bytes() for p in sorted(repo.root.rglob("*")) if p.is_file()}
    with read_only(secrets_dir):
        done = run_in(
            repo, ["secrets.generate", "secrets/config/alpha.yaml", "hub.newToken"], tmp_path
        )
        assert one_error_line(done) == (
            f"error: cannot write {secrets_dir / 'alpha.yaml'}: Read-only file system; "
            "nothing was changed"
        )
    with read_only(repo.root / "config"):
        done = run_in(repo, ["member.remove", "beta", "--yes"], tmp_path)
        assert one_error_line(done) == (
            f"error: cannot write {repo.registry}: Read-only file system; nothing was changed"
        )
    after = {p: p.read_bytes() for p in sorted(repo.root.rglob("*")) if p.is_file()}
    assert after == before
