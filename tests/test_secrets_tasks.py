"""The secrets.* invoke tasks, run as an operator would (the `invoke` command) and, where
only the result matters, called directly with an invoke Context. Real sops, real age keys.

No secret value may appear in any task's stdout or stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke.context import Context

from hubfleet.cli import Exit
from hubfleet.files.repo import DeployRepo, find_repo
from hubfleet.secrets import sops
from hubfleet.tasks import secrets as secrets_tasks

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Fresh age identities: `op` (can open everything) and `other` (can open nothing)."""
    where = tmp_path_factory.mktemp("agekeys")
    out = {}
    for name in ("op", "other"):
        key_file = where / f"{name}.agekey"
        subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key_file)], check=True, capture_output=True, text=True
        ).stdout.strip()
        out[name] = (key_file, recipient)
    return out


@pytest.fixture
def repo(tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> DeployRepo:
    root = tmp_path / "deploy"
    (root / "config").mkdir(parents=True)
    (root / "config" / "federation.yaml").write_text("members: {}\n")
    (root / "secrets" / "config").mkdir(parents=True)
    (root / "secrets" / "README.md").write_text("plaintext on purpose\n")
    rules = [{"path_regex": "(^|/)secrets/", "age": keys["op"][1]}]
    (root / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": rules}))
    return find_repo(root, environ={})


@pytest.fixture
def env(tmp_path: Path, repo: DeployRepo, keys: dict[str, tuple[Path, str]]) -> dict[str, str]:
    """The environment of an operator holding `op`, in a shell outside the repo."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HUBFLEET_ROOT": str(repo.root),
        "SOPS_AGE_KEY_FILE": str(keys["op"][0]),
    }


def invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *args]
    return subprocess.run(
        argv, env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=60, check=False
    )


def put(repo: DeployRepo, rel: str, data: object, env: dict[str, str]) -> Path:
    path = repo.root / rel
    sops.write_encrypted(repo, path, yaml.safe_dump(data), env)
    return path


@pytest.fixture
def as_operator(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """For direct task calls: this process's environment becomes the operator's."""
    for name in [n for n in os.environ if n.startswith("SOPS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_check_counts_encrypted_files(repo: DeployRepo, env: dict[str, str]) -> None:
    put(repo, "secrets/config/common.yaml", {"x": "1"}, env)
    put(repo, "secrets/m-kubeconfig.yaml", {"x": "2"}, env)
    done = invoke(env, "secrets.check")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "all 2 files under secrets/ are sops-encrypted\n",
        "",
    )


def test_check_names_plaintext_files(repo: DeployRepo, env: dict[str, str]) -> None:
    (repo.root / "secrets/config/m.yaml").write_text("hub:\n  cookieSecret: leaked\n")
    done = invoke(env, "secrets.check")
    assert done.returncode == 1
    assert done.stderr == (
        "error: secrets/config/m.yaml is not sops-encrypted (plaintext under secrets/); "
        "encrypt it with: invoke secrets.encrypt secrets/config/m.yaml\n"
    )
    (repo.root / "secrets/n.key").write_text("also plaintext\n")
    done = invoke(env, "secrets.check")
    assert done.returncode == 1
    assert "leaked" not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1
    assert "secrets/config/m.yaml, secrets/n.key" in done.stderr


def test_generate_writes_a_value_it_never_shows(repo: DeployRepo, env: dict[str, str]) -> None:
    path = put(repo, "secrets/config/m.yaml", {"hub": {"proxyToken": "keep"}}, env)
    key = "hub.config.JupyterHub.cookie_secret"
    done = invoke(env, "secrets.generate", "secrets/config/m.yaml", key)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"generated {key} in secrets/config/m.yaml (32 random bytes, value not shown)\n"
    )
    data = sops.decrypt_yaml(repo, path, env)
    value = data["hub"]["config"]["JupyterHub"]["cookie_secret"]
    assert len(value) == 64 and int(value, 16) >= 0
    assert data["hub"]["proxyToken"] == "keep"
    assert value not in done.stdout + done.stderr
    assert sops.check_tree(repo) == []

    again = invoke(env, "secrets.generate", "secrets/config/m.yaml", key)
    assert again.returncode == 1
    assert again.stderr == (
        f"error: secrets/config/m.yaml already has {key}; pass --force to replace it\n"
    )
    forced = invoke(
        env, "secrets.generate", "--force", "--bytes", "48", "secrets/config/m.yaml", key
    )
    assert forced.returncode == 0, forced.stderr
    new = sops.decrypt_yaml(repo, path, env)["hub"]["config"]["JupyterHub"]["cookie_secret"]
    assert len(new) == 96 and new != value
    assert new not in forced.stdout + forced.stderr


def test_generate_never_replaces_a_secret_on_the_way_to_its_key(
    repo: DeployRepo, env: dict[str, str]
) -> None:
    path = put(repo, "secrets/config/m.yaml", {"hub": {"cookieSecret": "the-old-secret"}}, env)
    before = path.read_bytes()
    for flags in ([], ["--force"]):
        done = invoke(
            env, "secrets.generate", *flags, "secrets/config/m.yaml", "hub.cookieSecret.x"
        )
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == (
            "error: secrets/config/m.yaml: hub.cookieSecret holds a value, not a mapping; "
            "writing hub.cookieSecret.x would replace it (not even --force does that): choose "
            "another key\n"
        )
    assert path.read_bytes() == before
    assert sops.decrypt_yaml(repo, path, env)["hub"]["cookieSecret"] == "the-old-secret"


def test_wrong_identity_is_one_line_and_exit_1(
    repo: DeployRepo, env: dict[str, str], keys: dict[str, tuple[Path, str]]
) -> None:
    put(repo, "secrets/config/m.yaml", {"hub": {"proxyToken": "keep"}}, env)
    other = env | {"SOPS_AGE_KEY_FILE": str(keys["other"][0])}
    done = invoke(other, "secrets.generate", "secrets/config/m.yaml", "hub.cookieSecret")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: cannot decrypt secrets/config/m.yaml: the age identity in "
        f"SOPS_AGE_KEY_FILE={keys['other'][0]} is not one of its recipients; ask someone who "
        "can decrypt it to add yours (.sops.yaml, invoke secrets.updatekeys)\n"
    )
    debug = invoke(
        other, "secrets.generate", "--debug", "secrets/config/m.yaml", "hub.cookieSecret"
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "keep" not in debug.stdout + debug.stderr


def test_generate_creates_a_new_encrypted_file(
    repo: DeployRepo, env: dict[str, str], as_operator: None, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_tasks.generate(Context(), "secrets/config/new.yaml", "hub.cookieSecret")
    path = repo.root / "secrets/config/new.yaml"
    assert sops.is_encrypted(path)
    value = sops.decrypt_yaml(repo, path, env)["hub"]["cookieSecret"]
    out = capsys.readouterr()
    assert out.out == (
        "generated hub.cookieSecret in secrets/config/new.yaml (32 random bytes, value not shown)\n"
    )
    assert value not in out.out + out.err

    with pytest.raises(Exit) as exit_:
        secrets_tasks.generate(Context(), "secrets/config/new.yaml", "hub.proxyToken", bytes=8)
    assert exit_.value.code == 1
    assert "--bytes 8: a token needs at least 16 bytes" in capsys.readouterr().err


def test_encrypt_then_updatekeys(
    repo: DeployRepo,
    env: dict[str, str],
    keys: dict[str, tuple[Path, str]],
    as_operator: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = repo.root / "secrets/config/m.yaml"
    plain.write_text("demo:\n  adminPassword: hunter2hunter2\n")
    secrets_tasks.encrypt(Context(), "secrets/config/m.yaml")
    assert sops.is_encrypted(plain)
    secrets_tasks.encrypt(Context(), str(plain))
    out = capsys.readouterr()
    assert out.out == (
        "encrypted secrets/config/m.yaml\n"
        "secrets/config/m.yaml was already encrypted; nothing changed\n"
    )
    put(repo, "secrets/m-kubeconfig.yaml", {"x": "1"}, env)

    rules = [{"path_regex": "(^|/)secrets/", "age": f"{keys['op'][1]},{keys['other'][1]}"}]
    repo.sops_config.write_text(yaml.safe_dump({"creation_rules": rules}))
    secrets_tasks.updatekeys(Context())
    out = capsys.readouterr()
    assert out.out.splitlines()[-1] == "2 of 2 files changed; the rest were up to date"
    other = env | {"SOPS_AGE_KEY_FILE": str(keys["other"][0])}
    assert sops.decrypt_yaml(repo, plain, other) == {"demo": {"adminPassword": "hunter2hunter2"}}
    assert "hunter2" not in out.out + out.err

    secrets_tasks.updatekeys(Context(), file=["secrets/config/m.yaml"])
    assert capsys.readouterr().out == "0 of 1 files changed; the rest were up to date\n"


def test_files_outside_secrets_are_refused(
    repo: DeployRepo, as_operator: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.root / "config/common.yaml").write_text("hub: {}\n")
    with pytest.raises(Exit) as exit_:
        secrets_tasks.encrypt(Context(), "config/common.yaml")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "error: config/common.yaml is not under secrets/; encrypted files live there\n"
    )
    assert (repo.root / "config/common.yaml").read_text() == "hub: {}\n"


def test_edit_through_invoke(repo: DeployRepo, env: dict[str, str], tmp_path: Path) -> None:
    path = put(repo, "secrets/config/m.yaml", {"x": "1"}, env)
    editor = tmp_path / "append-editor"
    editor.write_text("#!/bin/sh\nprintf 'y: added\\n' >> \"$1\"\n")
    editor.chmod(0o755)
    done = invoke(env | {"EDITOR": str(editor)}, "secrets.edit", "secrets/config/m.yaml")
    assert (done.returncode, done.stdout) == (0, "secrets/config/m.yaml changed\n"), done.stderr
    assert sops.decrypt_yaml(repo, path, env) == {"x": "1", "y": "added"}


def test_check_on_this_repo_passes_with_the_demo_key(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HUBFLEET_ROOT": str(PROJECT_ROOT),
        "SOPS_AGE_KEY_FILE": str(PROJECT_ROOT / "secrets/demo-insecure.agekey"),
    }
    done = invoke(env, "secrets.check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("all ") and done.stdout.endswith(" are sops-encrypted\n")


def test_a_flag_taken_for_a_positional_is_refused(
    repo: DeployRepo, as_operator: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # invoke hands an unknown `--flag` to a missing positional (here KEY) as its value
    with pytest.raises(Exit):
        secrets_tasks.generate(Context(), "secrets/config/new.yaml", "--bogus")
    assert capsys.readouterr().err == (
        "error: secrets.generate: '--bogus' is not one of its flags, nor a value for KEY; "
        "for help run: invoke --help secrets.generate\n"
    )
    assert not (repo.root / "secrets/config/new.yaml").exists()
