"""Reading JSON that may be hostile: bounded in size and nesting before it is parsed.

Python's JSON parser recurses once per level, so a 100,000-deep `[[[[...` ends in a
RecursionError (or worse) rather than a message; the nesting is measured first, without
recursion, and refused with the line where it goes past the limit. Errors name the file and
a line, never a value (the text may be a decrypted secret).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import MAX_BYTES, MAX_DEPTH

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}\n]")


def check_json_bounds(text: str, shown: str, max_bytes: int = MAX_BYTES) -> None:
    """Refuse a JSON text over `max_bytes` or nested deeper than MAX_DEPTH: one line naming
    `shown`, the line and the limit."""
    if len(text) > max_bytes:
        raise ConfigError(f"{shown}: {len(text)} characters, over the limit of {max_bytes}")
    # strings may hold brackets and newlines: blank them out, keeping their newlines
    bare = _STRINGS.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    depth = 0
    line = 1
    for found in _BRACKETS.finditer(bare):
        char = found.group(0)
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{shown}:{line}: nested deeper than {MAX_DEPTH} levels; refused")
        else:
            depth -= 1


def parse_json(text: str | bytes, shown: str, max_bytes: int = MAX_BYTES) -> Any:
    """The data of a JSON text, read bounded; malformed JSON is one line naming `shown` and the
    line and column (the parser's own message, which quotes no value)."""
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise ConfigError(f"{shown}:{line}: not UTF-8 text (byte {err.start + 1})") from None
    check_json_bounds(text, shown, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{shown}:{err.lineno}: malformed JSON: {err.msg}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ConfigError(f"{shown}: nested too deeply; refused") from None
