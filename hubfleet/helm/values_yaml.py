"""Values files read as Helm reads them (`helm -f FILE`): Helm's own parser, Go's YAML rules.

That is not PyYAML's YAML 1.1: `40e9` and `1e3` are numbers, `0o17` is 15, merge keys (`<<`)
and anchors work, a key `y` or `on` is the string "true", big integers become floats, and a
date stays a string. Reading a layer any other way would hand Helm values it never computes
from the same files. Errors name the file, and the line where the parser says one.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm

from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import check_bounds

_LINE = re.compile(r"\byaml: line (\d+): ")
_NOISE = ("error converting YAML to JSON: ", "error unmarshaling JSON: while decoding JSON: ")


def parse_values(
    text: str, shown: str, line_hint: int | None = None, bounded: bool = False
) -> dict[str, Any]:
    """The values in `text` (a layer file's content; `shown` names it in errors). An empty
    file is {}; anything but a mapping at the top is an error, as it is for Helm. `line_hint`
    is used when Helm's message has no line (another parser's guess at where it broke).

    The text is first checked against hubfleet's bounds (size, depth, aliases, core tags:
    hubfleet.files.yamlfile.check_bounds) unless the caller did (`bounded`)."""
    if not bounded:
        check_bounds(text, shown)
    try:
        data = helm.values_from_yaml(text)
    except helm.HelmValuesError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        for noise in _NOISE:
            message = message.replace(noise, "")
        found = _LINE.search(message)
        line = int(found.group(1)) if found else line_hint
        message = _LINE.sub("", message).removeprefix("yaml: ")
        if "unsupported map key" in message:
            message = "a key that Helm reads as null (~, null or empty); quote it to keep it"
        if "cannot unmarshal" in message:
            raise ConfigError(
                f"{shown}:1: expected a mapping of Helm values at the top level"
            ) from None
        where = f"{shown}:{line}" if line else shown
        raise ConfigError(f"{where}: malformed YAML: {message}") from None
    return dict(data or {})
