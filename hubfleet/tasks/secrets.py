"""secrets.* tasks: check, edit, encrypt, rekey and fill the sops-encrypted files in secrets/.

Thin: each parses its flags and calls hubfleet.secrets.sops. No task prints a secret value.
"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.errors import SecretsError
from hubfleet.files.repo import DeployRepo, find_repo
from hubfleet.tasks.conventions import DEBUG_HELP, task


def _secrets_file(repo: DeployRepo, file: str) -> Path:
    """FILE as given on the command line: relative to the cwd inside the repo, else to its root."""
    given = Path(file)
    cwd = Path.cwd().resolve()
    if given.is_absolute():
        path = given
    elif cwd == repo.root.resolve() or repo.root.resolve() in cwd.parents:
        path = cwd / given
    else:
        path = repo.root / given
    path = path.resolve()
    if repo.secrets_dir.resolve() not in path.parents:
        raise SecretsError(f"{file} is not under secrets/; encrypted files live there")
    return path


@task(help={"debug": DEBUG_HELP})
def check(c: Context, debug: bool = False) -> None:
    """Fail (exit 1) naming every plaintext file under secrets/; all must be sops-encrypted."""

    def body() -> None:
        from hubfleet.secrets import failures, sops

        repo = find_repo()
        files = sops.secret_files(repo)
        plaintext = sops.check_tree(repo)
        if len(plaintext) == 1:
            raise SecretsError(failures.not_encrypted_message(repo, plaintext[0]))
        if plaintext:
            shown = ", ".join(repo.relative(path) for path in plaintext)
            raise SecretsError(
                f"{len(plaintext)} files under secrets/ are not sops-encrypted: {shown}; "
                "encrypt each with: invoke secrets.encrypt FILE"
            )
        print(f"all {len(files)} files under secrets/ are sops-encrypted")

    run_front(body, debug)


@task(help={"file": "the encrypted file to edit (created if missing)", "debug": DEBUG_HELP})
def edit(c: Context, file: str, debug: bool = False) -> None:
    """Edit an encrypted FILE in $EDITOR through sops (plaintext only in sops' temp file)."""

    def body() -> None:
        from hubfleet.secrets import sops

        repo = find_repo()
        path = _secrets_file(repo, file)
        changed = sops.edit(repo, path)
        print(f"{repo.relative(path)} {'changed' if changed else 'unchanged'}")

    run_front(body, debug)


@task(help={"file": "the plaintext file under secrets/ to encrypt in place", "debug": DEBUG_HELP})
def encrypt(c: Context, file: str, debug: bool = False) -> None:
    """Encrypt a plaintext FILE in place, to the recipients .sops.yaml names for it."""

    def body() -> None:
        from hubfleet.secrets import sops

        repo = find_repo()
        path = _secrets_file(repo, file)
        if sops.encrypt_in_place(repo, path):
            print(f"encrypted {repo.relative(path)}")
        else:
            print(f"{repo.relative(path)} was already encrypted; nothing changed")

    run_front(body, debug)


@task(
    iterable=["file"],
    help={
        "file": "a file to rekey (repeat for several; default: every file under secrets/)",
        "debug": DEBUG_HELP,
    },
)
def updatekeys(c: Context, file: list[str] | None = None, debug: bool = False) -> None:
    """Re-encrypt files to the recipients .sops.yaml now names (after adding or removing one).

    Needs an identity (SOPS_AGE_KEY_FILE) that can decrypt every file it touches.
    """

    def body() -> None:
        from hubfleet.secrets import sops

        repo = find_repo()
        paths = [_secrets_file(repo, f) for f in file] if file else sops.secret_files(repo)
        changed = sops.updatekeys(repo, paths)
        for path in changed:
            print(f"updated recipients of {repo.relative(path)}")
        print(f"{len(changed)} of {len(paths)} files changed; the rest were up to date")

    run_front(body, debug)


@task(
    help={
        "file": "the encrypted file to write into (created per .sops.yaml if missing)",
        "key": "dotted key path, e.g. hub.config.JupyterHub.cookie_secret",
        "bytes": "random bytes in the secret (written as twice as many hex digits)",
        "force": "replace a value that is already there",
        "debug": DEBUG_HELP,
    }
)
def generate(
    c: Context, file: str, key: str, bytes: int = 32, force: bool = False, debug: bool = False
) -> None:
    """Write a fresh random hex secret into encrypted FILE at dotted KEY (never shows the value)."""

    def body() -> None:
        from hubfleet.secrets import generate as secretgen
        from hubfleet.secrets import sops

        repo = find_repo()
        path = _secrets_file(repo, file)
        key_path = key.split(".")
        try:
            value = secretgen.token_hex(bytes)
        except ValueError as err:
            raise SecretsError(f"--bytes {bytes}: {err}") from None
        current = sops.decrypt_yaml(repo, path) if path.exists() else None
        blocked = secretgen.value_on_the_way(current, key_path)
        if blocked is not None:
            raise SecretsError(
                f"{repo.relative(path)}: {blocked} holds a value, not a mapping; writing {key} "
                f"would replace it (not even --force does that): choose another key"
            )
        if current is not None and not force and _has_key(current, key_path):
            raise SecretsError(
                f"{repo.relative(path)} already has {key}; pass --force to replace it"
            )
        sops.set_value(repo, path, key_path, value)
        print(f"generated {key} in {repo.relative(path)} ({bytes} random bytes, value not shown)")

    run_front(body, debug)


def _has_key(data: object, key_path: list[str]) -> bool:
    for part in key_path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True
