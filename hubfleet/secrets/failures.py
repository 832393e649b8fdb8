"""What a failed sops run says, in one line an operator can act on: which identity is
missing or wrong, and the last line of sops' own output otherwise."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

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
