"""What a failed sops run says, in one line an operator can act on: which identity is
missing or wrong, and the last line of sops' own output otherwise."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from hubfleet.files.repo import DeployRepo

_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")


def identity_message(shown: str, stderr: str, env: Mapping[str, str]) -> str:
    key_file = env.get("SOPS_AGE_KEY_FILE", "")
    if key_file and Path(key_file).is_dir():
        return f"cannot decrypt {shown}: SOPS_AGE_KEY_FILE={key_file} is a directory, not an age key file"
    if key_file and not Path(key_file).exists():
        return f"cannot decrypt {shown}: SOPS_AGE_KEY_FILE={key_file} does not exist"
    if "failed to open SOPS_AGE_KEY_FILE" in stderr:
        return f"cannot decrypt {shown}: SOPS_AGE_KEY_FILE={key_file} cannot be read"
    if "failed to parse 'SOPS_AGE_KEY_FILE'" in stderr:
        return f"cannot decrypt {shown}: SOPS_AGE_KEY_FILE={key_file} holds no age identity"
    if key_file or env.get("SOPS_AGE_KEY"):
        given = f"SOPS_AGE_KEY_FILE={key_file}" if key_file else "SOPS_AGE_KEY"
        return (
            f"cannot decrypt {shown}: the age identity in {given} is not one of its recipients; "
            "ask someone who can decrypt it to add yours (.sops.yaml, invoke secrets.updatekeys)"
        )
    return f"cannot decrypt {shown}: no age identity; set SOPS_AGE_KEY_FILE to your key file"


def last_line(stderr: str, returncode: int) -> str:
    """sops' last line of output, without its log timestamp (its stderr is several lines)."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    return next((line for line in reversed(lines) if line), f"exit code {returncode}")


def damage(path: Path) -> str | None:
    """Why an unencrypted-looking file is not plaintext either, but a broken sops file (empty,
    or cut off: sops' markers without its MAC); None for plaintext."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not raw.strip():
        return "empty"
    text = raw.decode("utf-8", errors="replace")
    if "ENC[AES256_GCM," in text or "sops:" in text or '"sops"' in text:
        return "cut off or damaged (sops' markers without its MAC)"
    return None


def not_encrypted_message(repo: DeployRepo, path: Path) -> str:
    shown = repo.relative(path)
    broken = damage(path)
    if broken is not None:
        return (
            f"{shown} is {broken}: not a sops file it can decrypt, and not plaintext to "
            f"encrypt; restore it from git (git checkout -- {shown}) or write it again"
        )
    return (
        f"{shown} is not sops-encrypted (plaintext under secrets/); "
        f"encrypt it with: invoke secrets.encrypt {shown}"
    )


def editor_message(shown: str, env: Mapping[str, str]) -> str:
    """sops says "no editor" both when there is none and when the editor failed: tell them
    apart by whether the one named (SOPS_EDITOR, EDITOR) is there."""
    for name in ("SOPS_EDITOR", "EDITOR"):
        named = env.get(name, "").strip()
        if named:
            program = named.split()[0]
            if shutil.which(program, path=env.get("PATH")):
                return (
                    f"cannot edit {shown}: the editor {name}={named} exited with an error; "
                    "nothing was changed"
                )
            return f"cannot edit {shown}: {name}={named} is not a program on PATH; set it to one"
    return f"cannot edit {shown}: no editor found; set EDITOR"
