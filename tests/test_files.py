"""files.atomic: the one way hubfleet replaces a file, and all-or-nothing repo changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubfleet.errors import HubfleetError
from hubfleet.files.atomic import all_or_nothing, write_atomically
from hubfleet.files.repo import DeployRepo
from hubfleet.members.onboarding import Progress, load_progress, save_progress


def test_write_atomically_sets_the_mode_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_atomically(path, "old", mode=0o600)
    assert path.read_text() == "old" and path.stat().st_mode & 0o777 == 0o600
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]


def test_a_failed_write_leaves_the_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("pinned\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(HubfleetError) as failed:
        write_atomically(path, "half")
    assert str(failed.value) == f"cannot write {path}: disk full; nothing was changed"
    assert path.read_text() == "pinned\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["known_hosts"]


def test_onboarding_progress_goes_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "federation.yaml").write_text("members: {}\n")
    repo = DeployRepo(tmp_path)
    save_progress(repo, Progress("uni", {"preflight": "2026-12-06T07:00:00+00:00"}, {}))
    folder = tmp_path / ".hubfleet" / "onboarding"
    before = sorted(os.listdir(folder))

    def refuse(src: str, dst: str) -> None:
        raise OSError("no")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(HubfleetError, match=r"cannot write .*uni\.json: no; nothing was changed"):
        save_progress(repo, Progress("uni", {}, {"bootstrap": "boom"}))
    assert sorted(os.listdir(folder)) == before  # the old record, no temporary file
    assert load_progress(repo, "uni").done == {"preflight": "2026-12-06T07:00:00+00:00"}


def test_all_or_nothing_puts_back_content_and_mode(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    write_atomically(secret, "sops: encrypted", mode=0o600)
    with pytest.raises(RuntimeError), all_or_nothing() as changes:
        changes.replaced(secret)
        write_atomically(secret, "changed", mode=0o644)
        created = tmp_path / "config.yaml"
        changes.created(created)
        created.write_text("new member")
        raise RuntimeError("the registry write failed")
    assert secret.read_text() == "sops: encrypted"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.yaml"]


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def test_an_alias_bomb_in_a_values_file_is_refused_at_once() -> None:
    import time

    from hubfleet.errors import ConfigError
    from hubfleet.files.yamlfile import key_lines
    from hubfleet.values.layers import values_layer

    started = time.perf_counter()
    lines, _ = key_lines(billion_laughs())
    assert len(lines) < 200  # each alias's keys are placed once, where its anchor is
    with pytest.raises(
        ConfigError, match=r"^config/m\.yaml:\d+: more than 500000 values \(aliases expanded\)"
    ):
        values_layer(billion_laughs(), "config/m.yaml")
    assert time.perf_counter() - started < 5
