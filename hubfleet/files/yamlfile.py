"""Reading YAML files so that errors can say file:line.

`load_with_lines` returns the data and the line of every mapping key and sequence item, keyed
by its path (a tuple of keys and indexes). Duplicate keys are errors: YAML would otherwise keep
the last one silently, and a member named twice must not be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubfleet.errors import ConfigError

try:  # the C loader is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file and where each of its keys sits (1-based lines)."""

    path: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, key_path: PathKey) -> int | None:
        """The line of `key_path`, or of its nearest parent that has one."""
        probe = tuple(key_path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), None)


def _construct(
    node: yaml.Node, here: PathKey, lines: dict[PathKey, int], shown: str, loader: Any
) -> Any:
    lines.setdefault(here, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{shown}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported"
                )
            key = loader.construct_object(key_node)
            if key in out:
                raise ConfigError(
                    f"{shown}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                    f"(first at line {lines.get((*here, key), '?')})"
                )
            lines[(*here, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*here, key), lines, shown, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*here, i), lines, shown, loader) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node)


def parse_with_lines(text: str, path: Path, shown: str | None = None) -> YamlDocument:
    """Parse `text` (the content of `path`); errors name `shown` (default: the path)."""
    label = shown or str(path)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{label}:{mark.line + 1}" if mark else label
        raise ConfigError(f"{where}: malformed YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{label}: malformed YAML: {err}") from None
    lines: dict[PathKey, int] = {}
    data = None if node is None else _construct(node, (), lines, label, _Loader(""))
    return YamlDocument(path=path, data=data, lines=lines)


def load_with_lines(path: Path, shown: str | None = None) -> YamlDocument:
    """Read and parse `path`; a missing or malformed file is a ConfigError naming it."""
    label = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{label}: cannot read: {err.strerror}") from None
    return parse_with_lines(text, path, label)


def load_mapping(path: Path, shown: str | None = None) -> YamlDocument:
    """Like load_with_lines, but an empty file is {} and a non-mapping top level is an error."""
    doc = load_with_lines(path, shown)
    if doc.data is None:
        return YamlDocument(path=doc.path, data={}, lines=doc.lines)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{shown or path}:1: expected a mapping at the top level")
    return doc


def key_lines(text: str) -> tuple[dict[PathKey, int], int | None]:
    """Where each key and item of a YAML text sits (1-based lines, by path), read without
    building the data: for values files, whose data Helm's own parser reads. Merge keys (<<)
    are skipped (the keys they bring in are found under their anchor). When the text does
    not parse, ({}, the line where PyYAML stopped) so an error can still name a line."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        return {}, (mark.line + 1 if mark else None)
    except yaml.YAMLError:
        return {}, None
    lines: dict[PathKey, int] = {}

    visited: set[int] = set()

    def walk(node: yaml.Node, here: PathKey) -> None:
        lines.setdefault(here, node.start_mark.line + 1)
        if id(node) in visited:  # an alias: its keys were placed where its anchor is, and
            return  # following every alias again would be exponential ("billion laughs")
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                path = (*here, key_node.value)
                lines.setdefault(path, key_node.start_mark.line + 1)
                walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*here, i))

    if node is not None:
        walk(node, ())
    return lines, None
