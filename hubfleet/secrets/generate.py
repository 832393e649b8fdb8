"""Fresh random secrets: the hub cookie secret, the proxy token, admin passwords.

Pure functions over the `secrets` module (the OS CSPRNG). Callers store the result with
hubfleet.secrets.sops.set_value and never print it.
"""

from __future__ import annotations

import secrets
import string

# No look-alikes (0/O, 1/l/I) and nothing a shell, YAML or URL would need quoted.
PASSWORD_ALPHABET = "".join(ch for ch in string.ascii_letters + string.digits if ch not in "0O1lI")
MIN_TOKEN_BYTES = 16
MIN_PASSWORD_LENGTH = 12


def token_hex(nbytes: int = 32) -> str:
    """`nbytes` random bytes as lowercase hex (JupyterHub's cookie secret and proxy token)."""
    if nbytes < MIN_TOKEN_BYTES:
        raise ValueError(f"a token needs at least {MIN_TOKEN_BYTES} bytes, got {nbytes}")
    return secrets.token_hex(nbytes)


def password(length: int = 24) -> str:
    """A random password of `length` letters and digits, without look-alike characters."""
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters, got {length}"
        )
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def value_on_the_way(data: object, key_path: list[str]) -> str | None:
    """The dotted key of a value (not a mapping) that writing at `key_path` would replace on
    its way there; None when the way is free (mappings or nothing)."""
    for depth, part in enumerate(key_path[:-1]):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
        if data is not None and not isinstance(data, dict):
            return ".".join(key_path[: depth + 1])
    return None
