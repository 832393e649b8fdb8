"""Helm values layers, merged with Helm's rules, and shown with their origins and secrets masked.

Pure functions over plain data. The layers of a member, last wins:
chart defaults < config/common.yaml < secrets/config/common.yaml < config/<m>.yaml
< secrets/config/<m>.yaml.

Helm's rules: maps merge key by key, lists and scalars replace, and `null` deletes a key.
Between values files Helm keeps a `null` (so a later file can set the key again, and the chart
default is removed when Helm coalesces); `merge_layers(..., keep_nulls=True)` does the same
and is what is handed to Helm. With keep_nulls=False the nulls are applied as deletions, which
is what an operator sees as the result.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from hubfleet.errors import SecretsError

MASK = "********"

ValuesPath = tuple[str, ...]


@dataclass(frozen=True)
class ValuesLayer:
    """One source of values: its name as shown to operators, its data, and whether it is secret."""

    name: str
    data: Mapping[str, Any]
    secret: bool = False
    # the line of each key in the layer's file, by path (for messages); empty when unknown
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class MergedValues:
    """Merged values and, for every leaf, the layer that set it."""

    values: dict[str, Any]
    origins: dict[ValuesPath, ValuesLayer] = field(default_factory=dict)

    def secret_paths(self) -> set[ValuesPath]:
        return {path for path, layer in self.origins.items() if layer.secret}

    def secret_strings(self) -> set[str]:
        """Every scalar value that came from a secrets layer, as text (for redacting output)."""
        found: set[str] = set()
        for path in self.secret_paths():
            value = get_path(self.values, path)
            for leaf in _scalars(value):
                text = str(leaf)
                if len(text) >= 4:  # shorter strings are too common to redact safely
                    found.add(text)
        return found


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif value is not None and not isinstance(value, bool):
        yield value


def get_path(values: Mapping[str, Any], path: ValuesPath) -> Any:
    here: Any = values
    for key in path:
        here = here[key]
    return here


def _drop_origins_under(origins: dict[ValuesPath, ValuesLayer], path: ValuesPath) -> None:
    depth = len(path)
    for known in [p for p in origins if p[:depth] == path]:
        del origins[known]


def _set_origins(
    origins: dict[ValuesPath, ValuesLayer], path: ValuesPath, value: Any, layer: ValuesLayer
) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _set_origins(origins, (*path, str(key)), item, layer)
    else:
        origins[path] = layer


def _merge_into(
    target: dict[str, Any],
    override: Mapping[str, Any],
    layer: ValuesLayer,
    origins: dict[ValuesPath, ValuesLayer],
    here: ValuesPath,
    keep_nulls: bool,
) -> None:
    for key, value in override.items():
        path = (*here, str(key))
        if value is None and not keep_nulls:
            target.pop(key, None)
            _drop_origins_under(origins, path)
            continue
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            if not value:
                continue  # an empty map merges nothing
            origins.pop(path, None)
            _merge_into(current, value, layer, origins, path, keep_nulls)
        else:
            _drop_origins_under(origins, path)
            target[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
            _set_origins(origins, path, value, layer)


def merge_layers(layers: Sequence[ValuesLayer], keep_nulls: bool = False) -> MergedValues:
    """Merge `layers` in order (last wins) with Helm's rules, recording each leaf's origin."""
    values: dict[str, Any] = {}
    origins: dict[ValuesPath, ValuesLayer] = {}
    for layer in layers:
        _merge_into(values, layer.data, layer, origins, (), keep_nulls)
    return MergedValues(values=values, origins=origins)


def masked(merged: MergedValues) -> dict[str, Any]:
    """A copy of the merged values with every leaf from a secrets layer replaced by MASK."""
    out = copy.deepcopy(merged.values)
    for path in merged.secret_paths():
        parent = get_path(out, path[:-1]) if len(path) > 1 else out
        if isinstance(parent, dict) and path[-1] in parent:
            parent[path[-1]] = MASK
    return out


def redact(text: str, secret_strings: Iterable[str]) -> str:
    """Replace every occurrence of a secret string in `text` by MASK (longest first)."""
    for secret in sorted(set(secret_strings), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _scalar_text(value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def values_as_yaml(merged: MergedValues, show_origin: bool = False) -> str:
    """The merged values as YAML, secrets masked, with `# <file>` after each leaf on request."""
    shown = masked(merged)
    if not show_origin:
        return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False) if shown else "{}\n"
    lines: list[str] = []

    def walk(node: Mapping[str, Any], here: ValuesPath, indent: int) -> None:
        for key, value in node.items():
            path = (*here, str(key))
            pad = "  " * indent
            label = _scalar_text(key)
            if isinstance(value, Mapping) and value:
                lines.append(f"{pad}{label}:")
                walk(value, path, indent + 1)
            else:
                origin = merged.origins.get(path)
                note = f"  # {origin.name}" if origin else ""
                lines.append(f"{pad}{label}: {_scalar_text(value)}{note}")

    walk(shown, (), 0)
    return "\n".join(lines) + "\n" if lines else "{}\n"


def merge_leaves(
    current: Mapping[str, Any], incoming: Mapping[str, Any], shown: str
) -> tuple[dict[str, Any], list[str], list[str]]:
    """`current` with every leaf of `incoming` set: (merged, changed paths, unchanged paths),
    paths dotted. For values written into a member's secrets (Harbor's pinned secrets, a
    stack's outputs). Maps merge; any other value replaces. A leaf that would land under a
    non-mapping is a SecretsError naming `shown` rather than a silent overwrite of something
    an operator wrote. `current` is not modified.
    """
    merged = copy.deepcopy(dict(current))
    changed: list[str] = []
    unchanged: list[str] = []

    def walk(here: dict[str, Any], new: Mapping[str, Any], prefix: str) -> None:
        for key, value in new.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                child = here.setdefault(key, {})
                if not isinstance(child, dict):
                    raise SecretsError(f"{shown}: {path} is not a mapping; cannot merge into it")
                walk(child, value, f"{path}.")
            elif here.get(key) == value and key in here:
                unchanged.append(path)
            else:
                here[key] = value
                changed.append(path)

    walk(merged, incoming, "")
    return merged, changed, unchanged
