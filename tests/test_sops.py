"""hubfleet.secrets.sops against the real sops binary and real age keys made for this test session.

Every sops call gets an explicit environment (identity, and a HOME with no keys in it), so
what the developer has in ~/.config/sops or SOPS_AGE_KEY_FILE never matters here.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.errors import SecretsError
from hubfleet.files.repo import DeployRepo, find_repo
from hubfleet.kube.credentials import credentials_from_kubeconfig
from hubfleet.secrets import generate as secretgen
from hubfleet.secrets import sops

PROJECT_ROOT = Path(__file__).resolve().parents[1]
Env = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Fresh age identities a, b and c: name -> (identity file, recipient)."""
    where = tmp_path_factory.mktemp("agekeys")
    out = {}
    for name in "abc":
        key_file = where / f"{name}.agekey"
        subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key_file)], check=True, capture_output=True, text=True
        ).stdout.strip()
        out[name] = (key_file, recipient)
    return out


@pytest.fixture(scope="session")
def make_env(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, str]]) -> Env:
    """env(name) runs sops as the holder of key `name` (None: no identity at all)."""
    home = tmp_path_factory.mktemp("home")  # no ~/.config/sops/age/keys.txt, no ~/.ssh keys

    def env(name: str | None = None) -> dict[str, str]:
        out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        if name:
            out["SOPS_AGE_KEY_FILE"] = str(keys[name][0])
        return out

    return env


def sops_yaml(rules: list[tuple[str, list[str]]]) -> str:
    return yaml.safe_dump(
        {"creation_rules": [{"path_regex": rx, "age": ",".join(rs)} for rx, rs in rules]}
    )


@pytest.fixture
def repo(tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> DeployRepo:
    """A deploy repo where member a's files are a's only, b's are b's, the rest both's."""
    root = tmp_path / "deploy"
    (root / "config").mkdir(parents=True)
    (root / "config" / "federation.yaml").write_text("members: {}\n")
    (root / "secrets" / "config").mkdir(parents=True)
    a, b = keys["a"][1], keys["b"][1]
    (root / ".sops.yaml").write_text(
        sops_yaml(
            [
                (r"(^|/)secrets/(config/a\.yaml|a-kubeconfig\.yaml)$", [a]),
                (r"(^|/)secrets/(config/b\.yaml|b-kubeconfig\.yaml)$", [b]),
                (r"(^|/)secrets/", [a, b]),
            ]
        )
    )
    return find_repo(root, environ={})


def recipients(path: Path) -> list[str]:
    return [entry["recipient"] for entry in yaml.safe_load(path.read_text())["sops"]["age"]]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def put(repo: DeployRepo, rel: str, data: Any, env: dict[str, str]) -> Path:
    """Write `data` encrypted to `rel` (plaintext only in memory)."""
    path = repo.root / rel
    sops.write_encrypted(repo, path, yaml.safe_dump(data), env)
    return path


# --- decrypting ---------------------------------------------------------------------------------


def test_decrypt_is_in_memory_only(repo: DeployRepo, make_env: Env) -> None:
    token = secretgen.token_hex()
    path = put(repo, "secrets/config/common.yaml", {"hub": {"proxyToken": token}}, make_env("a"))
    assert token not in path.read_text()
    before = snapshot(repo.root)

    assert sops.decrypt_yaml(repo, path, make_env("a")) == {"hub": {"proxyToken": token}}
    assert sops.decrypt(repo, path, make_env("b")) == f"hub:\n    proxyToken: {token}\n"
    doc = sops.decrypt_document(repo, path, make_env("a"))
    assert doc.line_of(("hub", "proxyToken")) == 2
    assert sops.decrypt_many(repo, [path], make_env("a")) == {path: {"hub": {"proxyToken": token}}}

    assert snapshot(repo.root) == before


def test_relative_key_file_means_the_callers_cwd(
    repo: DeployRepo,
    make_env: Env,
    keys: dict[str, tuple[Path, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = put(repo, "secrets/config/common.yaml", {"x": "1"}, make_env("a"))
    monkeypatch.chdir(keys["a"][0].parent)  # sops itself runs in the repo root
    env = make_env() | {"SOPS_AGE_KEY_FILE": keys["a"][0].name}
    assert sops.decrypt_yaml(repo, path, env) == {"x": "1"}


def test_wrong_identity_is_one_line(repo: DeployRepo, make_env: Env) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    env = make_env("c")
    with pytest.raises(SecretsError) as err:
        sops.decrypt(repo, path, env)
    assert str(err.value) == (
        "cannot decrypt secrets/config/a.yaml: the age identity in "
        f"SOPS_AGE_KEY_FILE={env['SOPS_AGE_KEY_FILE']} is not one of its recipients; ask "
        "someone who can decrypt it to add yours (.sops.yaml, invoke secrets.updatekeys)"
    )


def test_no_identity_is_the_same_line(repo: DeployRepo, make_env: Env) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    env = make_env()
    assert not any(name.startswith("SOPS_") for name in env)
    with pytest.raises(SecretsError) as err:
        sops.decrypt_yaml(repo, path, env)
    assert str(err.value) == (
        "cannot decrypt secrets/config/a.yaml: no age identity; "
        "set SOPS_AGE_KEY_FILE to your key file"
    )


def test_unreadable_or_bad_key_file_is_named(
    repo: DeployRepo, make_env: Env, tmp_path: Path
) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    missing = tmp_path / "missing.agekey"
    with pytest.raises(SecretsError, match=r"SOPS_AGE_KEY_FILE=\S+missing\.agekey does not exist$"):
        sops.decrypt(repo, path, make_env() | {"SOPS_AGE_KEY_FILE": str(missing)})
    with pytest.raises(SecretsError, match=r"=\S+ is a directory, not an age key file$"):
        sops.decrypt(repo, path, make_env() | {"SOPS_AGE_KEY_FILE": str(tmp_path)})
    garbage = tmp_path / "garbage.agekey"
    garbage.write_text("not a key\n")
    with pytest.raises(SecretsError, match=r"garbage\.agekey holds no age identity$"):
        sops.decrypt(repo, path, make_env() | {"SOPS_AGE_KEY_FILE": str(garbage)})


def test_plaintext_file_is_named_with_the_fix(repo: DeployRepo, make_env: Env) -> None:
    plain = repo.root / "secrets/config/x.yaml"
    plain.write_text("hub:\n  cookieSecret: notreallysecret\n")
    with pytest.raises(SecretsError) as err:
        sops.decrypt(repo, plain, make_env("a"))
    assert str(err.value) == (
        "secrets/config/x.yaml is not sops-encrypted (plaintext under secrets/); "
        "encrypt it with: invoke secrets.encrypt secrets/config/x.yaml"
    )
    binary = repo.root / "secrets/x.key"
    binary.write_bytes(os.urandom(64))
    with pytest.raises(SecretsError, match=r"secrets/x\.key is not sops-encrypted"):
        sops.decrypt(repo, binary, make_env("a"))


def test_other_sops_failures_are_one_line(repo: DeployRepo, make_env: Env) -> None:
    path = put(repo, "secrets/config/common.yaml", {"x": "some value"}, make_env("a"))
    tampered = re.sub(r"(x: ENC\[AES256_GCM,data:)..", r"\1AA", path.read_text())
    path.write_text(tampered)
    with pytest.raises(SecretsError) as err:
        sops.decrypt(repo, path, make_env("a"))
    message = str(err.value)
    assert message.startswith("sops failed on secrets/config/common.yaml: ")
    assert "\n" not in message
    with pytest.raises(SecretsError, match=r"^secrets/config/nope\.yaml: file not found$"):
        sops.decrypt(repo, repo.root / "secrets/config/nope.yaml", make_env("a"))


def test_decrypt_many_maps_each_file_and_runs_concurrently(
    repo: DeployRepo, make_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [
        put(repo, f"secrets/config/m{i}.yaml", {"member": f"m{i}"}, make_env("a")) for i in range(4)
    ]
    # All four sops processes must be running at once to get past the barrier; a serial
    # implementation would wait at it alone and fail after the timeout.
    barrier = threading.Barrier(len(paths), timeout=20)
    real_run = subprocess.run

    def run_together(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return real_run(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run_together)
    result = sops.decrypt_many(repo, reversed(paths), make_env("a"))
    assert result == {p: {"member": p.stem} for p in paths}


def test_decrypt_many_reports_the_first_failure(repo: DeployRepo, make_env: Env) -> None:
    ok = put(repo, "secrets/config/common.yaml", {"x": "1"}, make_env("a"))
    only_b = [put(repo, "secrets/config/b.yaml", {"x": "2"}, make_env("b"))]
    only_b.append(put(repo, "secrets/b-kubeconfig.yaml", {"x": "3"}, make_env("b")))
    with pytest.raises(SecretsError) as err:
        sops.decrypt_many(repo, [ok, *only_b], make_env("a"))
    assert str(err.value).startswith("cannot decrypt secrets/config/b.yaml: the age identity in ")
    assert str(err.value).endswith("invoke secrets.updatekeys) (and 1 more failing)")


# --- recipients -------------------------------------------------------------------------------


def test_member_files_open_only_to_their_members(
    repo: DeployRepo, make_env: Env, keys: dict[str, tuple[Path, str]]
) -> None:
    a_file = put(repo, "secrets/config/a.yaml", {"who": "a"}, make_env())  # no identity needed
    b_file = put(repo, "secrets/config/b.yaml", {"who": "b"}, make_env())
    shared = put(repo, "secrets/config/common.yaml", {"who": "all"}, make_env())
    assert recipients(a_file) == [keys["a"][1]]
    assert recipients(b_file) == [keys["b"][1]]

    assert sops.decrypt_yaml(repo, b_file, make_env("b")) == {"who": "b"}
    with pytest.raises(
        SecretsError,
        match=r"cannot decrypt secrets/config/a\.yaml: the age identity in \S+ is not one of its recipients",
    ):
        sops.decrypt_yaml(repo, a_file, make_env("b"))
    assert sops.decrypt_many(repo, [shared], make_env("b")) == {shared: {"who": "all"}}
    assert sops.decrypt_many(repo, [a_file, shared], make_env("a"))[a_file] == {"who": "a"}


def test_updatekeys_lets_a_new_recipient_in(
    repo: DeployRepo, make_env: Env, keys: dict[str, tuple[Path, str]]
) -> None:
    a_file = put(repo, "secrets/config/a.yaml", {"who": "a"}, make_env())
    shared = put(repo, "secrets/config/common.yaml", {"who": "all"}, make_env())
    with pytest.raises(SecretsError, match="is not one of its recipients"):
        sops.decrypt(repo, a_file, make_env("c"))

    a, b, c = (keys[n][1] for n in "abc")
    repo.sops_config.write_text(
        sops_yaml([(r"(^|/)secrets/config/a\.yaml$", [a, c]), (r"(^|/)secrets/", [a, b])])
    )
    assert sops.updatekeys(repo, [a_file, shared], make_env("a")) == [a_file]
    assert sops.decrypt_yaml(repo, a_file, make_env("c")) == {"who": "a"}
    assert sops.updatekeys(repo, [a_file, shared], make_env("a")) == []


def test_updatekeys_needs_an_identity_only_to_change_something(
    repo: DeployRepo, make_env: Env, keys: dict[str, tuple[Path, str]]
) -> None:
    a_file = put(repo, "secrets/config/a.yaml", {"who": "a"}, make_env())
    assert sops.updatekeys(repo, [a_file], make_env()) == []  # sops compares recipients first
    a, c = keys["a"][1], keys["c"][1]
    repo.sops_config.write_text(sops_yaml([(r"(^|/)secrets/", [a, c])]))
    with pytest.raises(
        SecretsError,
        match=r"cannot decrypt secrets/config/a\.yaml: the age identity in \S+ is not one of its recipients",
    ):
        sops.updatekeys(repo, [a_file], make_env("b"))


# --- writing ------------------------------------------------------------------------------------


def test_set_value_keeps_the_value_off_every_command_line(
    repo: DeployRepo, make_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = put(repo, "secrets/config/a.yaml", {"hub": {"cookieSecret": "old"}}, make_env("a"))
    before = recipients(path)
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: Any) -> Any:
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    value = secretgen.token_hex()
    sops.set_value(
        repo, path, ["hub", "config", "JupyterHub", "cookie_secret"], value, make_env("a")
    )

    assert calls, "set_value ran no sops"
    for argv, env in calls:
        assert not any(value in arg for arg in argv)
        assert not any(value in v for v in env.values())
    assert sops.is_encrypted(path)
    assert value not in path.read_text()
    assert recipients(path) == before
    assert sops.decrypt_yaml(repo, path, make_env("a")) == {
        "hub": {"cookieSecret": "old", "config": {"JupyterHub": {"cookie_secret": value}}}
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.yaml"]  # no scratch left


def test_set_value_creates_a_missing_file_per_sops_yaml(
    repo: DeployRepo, make_env: Env, keys: dict[str, tuple[Path, str]]
) -> None:
    path = repo.root / "secrets/config/b.yaml"
    value = secretgen.password(20)
    sops.set_value(repo, path, ["demo", "adminPassword"], value, make_env())
    assert sops.is_encrypted(path)
    assert recipients(path) == [keys["b"][1]]
    assert path.stat().st_mode & 0o777 == 0o600
    assert sops.decrypt_yaml(repo, path, make_env("b")) == {"demo": {"adminPassword": value}}


def test_set_value_failure_leaves_the_file_alone(repo: DeployRepo, make_env: Env) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    before = path.read_bytes()
    with pytest.raises(SecretsError, match="is not one of its recipients"):
        sops.set_value(repo, path, ["x"], "2", make_env("b"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.yaml"]
    with pytest.raises(SecretsError, match="bad key"):
        sops.set_value(repo, path, ["x", 'we"ird'], "2", make_env("a"))
    plain = repo.root / "secrets/config/plain.yaml"
    plain.write_text("x: 1\n")
    with pytest.raises(SecretsError, match="is not sops-encrypted"):
        sops.set_value(repo, plain, ["x"], "2", make_env("a"))


def test_encrypt_in_place_follows_sops_yaml(
    repo: DeployRepo, make_env: Env, keys: dict[str, tuple[Path, str]]
) -> None:
    path = repo.root / "secrets/config/a.yaml"
    path.write_text("hub:\n  proxyToken: abc123\n")
    assert sops.encrypt_in_place(repo, path, make_env()) is True
    assert sops.is_encrypted(path)
    assert recipients(path) == [keys["a"][1]]
    assert sops.encrypt_in_place(repo, path, make_env()) is False
    assert sops.decrypt_yaml(repo, path, make_env("a")) == {"hub": {"proxyToken": "abc123"}}

    stray = repo.root / "elsewhere.yaml"
    stray.write_text("x: 1\n")
    with pytest.raises(SecretsError) as err:
        sops.encrypt_in_place(repo, stray, make_env())
    assert str(err.value) == (
        "cannot encrypt elsewhere.yaml: no creation_rule in .sops.yaml matches it"
    )


def test_edit_runs_the_users_editor(repo: DeployRepo, make_env: Env, tmp_path: Path) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    editor = tmp_path / "append-editor"
    editor.write_text("#!/bin/sh\nprintf 'added: yes\\n' >> \"$1\"\n")
    editor.chmod(0o755)
    assert sops.edit(repo, path, make_env("a") | {"EDITOR": str(editor)}) is True
    assert sops.decrypt_yaml(repo, path, make_env("a")) == {"x": "1", "added": "yes"}
    assert sops.edit(repo, path, make_env("a") | {"EDITOR": "true"}) is False
    with pytest.raises(SecretsError, match="is not one of its recipients"):
        sops.edit(repo, path, make_env("b") | {"EDITOR": "true"})


def test_a_failing_editor_is_not_called_missing(repo: DeployRepo, make_env: Env) -> None:
    path = put(repo, "secrets/config/a.yaml", {"x": "1"}, make_env("a"))
    before = path.read_bytes()
    env = {k: v for k, v in make_env("a").items() if k not in ("EDITOR", "SOPS_EDITOR", "VISUAL")}
    with pytest.raises(SecretsError) as failed:
        sops.edit(repo, path, env | {"EDITOR": "false"})
    assert str(failed.value) == (
        "cannot edit secrets/config/a.yaml: the editor EDITOR=false exited with an error; "
        "nothing was changed"
    )
    with pytest.raises(SecretsError) as missing:
        sops.edit(repo, path, env | {"EDITOR": "no-such-editor-here"})
    assert str(missing.value) == (
        "cannot edit secrets/config/a.yaml: EDITOR=no-such-editor-here is not a program on "
        "PATH; set it to one"
    )
    assert path.read_bytes() == before


# --- checking -----------------------------------------------------------------------------------


def test_is_encrypted_knows_each_sops_format(repo: DeployRepo, make_env: Env) -> None:
    env = make_env()
    formats = {
        "secrets/x.yaml": "a: 1\n---\nb: 2\n",
        "secrets/x.json": '{"a": 1}',
        "secrets/x.env": "A=1\n",
        "secrets/x.ini": "[s]\na = 1\n",
        "secrets/x.key": "-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n",
    }
    for rel, text in formats.items():
        plain = repo.root / (rel + ".plain" + Path(rel).suffix)
        plain.write_text(text)
        assert not sops.is_encrypted(plain), rel
        sops.write_encrypted(repo, repo.root / rel, text, env)
        assert sops.is_encrypted(repo.root / rel), rel

    fake = repo.root / "secrets/fake.yaml"
    fake.write_text("a: 1\nsops:\n  version: 3.11.0\n")  # metadata without a MAC
    assert not sops.is_encrypted(fake)
    binary = repo.root / "secrets/raw.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert not sops.is_encrypted(binary)
    assert not sops.is_encrypted(repo.root / "secrets/missing.yaml")


def test_check_tree_names_plaintext_and_skips_the_exempt(repo: DeployRepo, make_env: Env) -> None:
    secrets_dir = repo.secrets_dir
    put(repo, "secrets/config/common.yaml", {"x": "1"}, make_env())
    for exempt in ("README.md", ".gitkeep", "config/.gitkeep", "alice.pub", "demo-insecure.agekey"):
        (secrets_dir / exempt).write_text("plaintext on purpose\n")
    assert sops.check_tree(repo) == []
    assert sops.secret_files(repo) == [secrets_dir / "config/common.yaml"]

    (secrets_dir / "config/demo-insecure.agekey").write_text("only exempt at secrets/\n")
    (secrets_dir / "m-kubeconfig.yaml").write_text("apiVersion: v1\n")
    assert sops.check_tree(repo) == [
        secrets_dir / "config/demo-insecure.agekey",
        secrets_dir / "m-kubeconfig.yaml",
    ]


def test_sops_binary_is_found() -> None:
    found = Path(sops.sops_binary())
    assert found.name == "sops"
    # the pinned binary itself, not the package's Python script that execs it (a Python
    # start-up, 25 ms, on every sops call)
    assert found.read_bytes()[:4] == b"\x7fELF"


# --- the committed demo member ------------------------------------------------------------------


def test_committed_demo_secrets_are_encrypted_and_open_with_the_demo_key(make_env: Env) -> None:
    repo = DeployRepo(PROJECT_ROOT)
    demo_key = PROJECT_ROOT / "secrets/demo-insecure.agekey"
    assert demo_key.read_text().startswith("# PUBLIC, INSECURE, FOR THE DEMO MEMBER ONLY")
    demo_recipient = subprocess.run(
        ["age-keygen", "-y", str(demo_key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert sops.check_tree(repo) == []

    values_file, kubeconfig_file = repo.member_secret_values("demo"), repo.member_kubeconfig("demo")
    assert recipients(values_file) == recipients(kubeconfig_file) == [demo_recipient]
    env = sops.identity_env(demo_key, make_env())
    decrypted = sops.decrypt_many(repo, [values_file, kubeconfig_file], env)

    values = decrypted[values_file]
    for secret in (values["hub"]["cookieSecret"], values["hub"]["proxyToken"]):
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert len(values["demo"]["adminPassword"]) >= 16
    creds = credentials_from_kubeconfig("demo", decrypted[kubeconfig_file], "demo-kubeconfig")
    assert (creds.context, creds.server) == ("demo", "https://127.0.0.1:6443")


def test_committed_sops_rules_match_relative_and_absolute_paths() -> None:
    rules = yaml.safe_load((PROJECT_ROOT / ".sops.yaml").read_text())["creation_rules"]
    demo_recipient = rules[0]["age"]

    def recipient_for(path: str) -> str:
        # sops (Go regexp MatchString) searches unanchored, as re.search does
        return str(next(rule["age"] for rule in rules if re.search(rule["path_regex"], path)))

    for rel in ("secrets/config/demo.yaml", "secrets/demo-kubeconfig.yaml", "secrets/demo.key"):
        assert recipient_for(rel) == demo_recipient
        assert recipient_for(str(PROJECT_ROOT / rel)) == demo_recipient
    assert rules[-1]["path_regex"] == "(^|/)secrets/"
    assert re.search(rules[0]["path_regex"], "secrets/config/demo2.yaml") is None


def test_secretgen_makes_fresh_secrets() -> None:
    tokens = {secretgen.token_hex() for _ in range(3)}
    assert len(tokens) == 3
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)
    assert len(secretgen.token_hex(48)) == 96
    pw = secretgen.password(30)
    assert len(pw) == 30 and set(pw) <= set(secretgen.PASSWORD_ALPHABET)
    assert not set("0O1lI") & set(secretgen.PASSWORD_ALPHABET)
    with pytest.raises(ValueError):
        secretgen.token_hex(8)
    with pytest.raises(ValueError):
        secretgen.password(6)
