"""Reading YAML files so that errors can say file:line.

`load_with_lines` returns the data and the line of every mapping key and sequence item, keyed
by its path (a tuple of keys and indexes). Duplicate keys are errors: YAML would otherwise keep
the last one silently, and a member named twice must not be.

Every file may be hostile: it is read bounded (size, nesting depth, aliases, nodes; each a
one-line error naming the file, the line and the limit) and with YAML's core types only (a
`!!python/...` or any other tag is refused where it stands), before anything is built.
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

MAX_BYTES = 4 << 20  # the registry of a large federation is tens of KB
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 500_000
_CORE = "tag:yaml.org,2002:"
CORE_TAGS = frozenset(
    _CORE + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "merge")
)


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


def check_bounds(text: str, shown: str) -> None:
    """Refuse a text that is too big, too deep, too aliased, too large in values (counting
    what its aliases expand to), or that carries a tag outside YAML's core types: one line
    naming the file, the line and the limit. Read as parser events, which take no recursion
    and build nothing."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{shown}: {len(text)} characters, over the limit of {MAX_BYTES}")
    aliases = total = 0
    sizes: dict[str, int] = {}  # anchor -> how many values it stands for
    open_: list[list[Any]] = [[None, 0]]  # per open collection: its anchor, values inside
    try:
        for event in yaml.parse(text, Loader=_Loader):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise ConfigError(
                        f"{shown}:{line}: more than {MAX_ALIASES} aliases (*name); refused"
                    )
                grown = sizes.get(event.anchor or "", 1)
                open_[-1][1] += grown
                total += grown
            elif isinstance(event, yaml.NodeEvent):
                tag = getattr(event, "tag", None)
                if tag and tag not in CORE_TAGS and tag not in ("!", "?"):
                    raise ConfigError(
                        f"{shown}:{line}: tag {tag} is not allowed (only YAML's core types)"
                    )
                if isinstance(event, yaml.CollectionStartEvent):
                    if len(open_) > MAX_DEPTH:
                        raise ConfigError(
                            f"{shown}:{line}: nested deeper than {MAX_DEPTH} levels; refused"
                        )
                    open_.append([event.anchor, 1])
                else:
                    open_[-1][1] += 1
                    if event.anchor:
                        sizes[event.anchor] = 1
                total += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, inside = open_.pop()
                if anchor:
                    sizes[anchor] = inside
                open_[-1][1] += inside
            else:
                continue
            if total > MAX_NODES:
                raise ConfigError(
                    f"{shown}:{line}: more than {MAX_NODES} values (aliases expanded); refused"
                )
    except yaml.YAMLError:
        return  # malformed: the parse that follows names the line


def _construct(
    node: yaml.Node,
    here: PathKey,
    lines: dict[PathKey, int],
    shown: str,
    loader: Any,
    budget: list[int] | None = None,
) -> Any:
    # aliases share nodes: a "billion laughs" passes the event count and explodes here
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{shown}:{node.start_mark.line + 1}: expands to more than {MAX_NODES} values "
            "(aliases of aliases); refused"
        )
    if len(here) > MAX_DEPTH:
        raise ConfigError(
            f"{shown}:{node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels; refused"
        )
    lines.setdefault(here, node.start_mark.line + 1)
    if node.tag not in CORE_TAGS:
        raise ConfigError(
            f"{shown}:{node.start_mark.line + 1}: tag {node.tag} is not allowed "
            "(only YAML's core types)"
        )
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
            out[key] = _construct(value_node, (*here, key), lines, shown, loader, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*here, i), lines, shown, loader, budget)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node)


def parse_with_lines(text: str, path: Path, shown: str | None = None) -> YamlDocument:
    """Parse `text` (the content of `path`); errors name `shown` (default: the path)."""
    label = shown or str(path)
    check_bounds(text, label)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        last = max(1, len(text.splitlines()))  # an error at the very end is on the last line
        where = f"{label}:{min(mark.line + 1, last)}" if mark else label
        raise ConfigError(f"{where}: malformed YAML: {err.problem or err.context}") from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow, at a position
        line = text[: err.position].count("\n") + 1
        raise ConfigError(
            f"{label}:{line}: malformed YAML: character {err.character!r} is not allowed"
        ) from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{label}: malformed YAML: {first}") from None
    lines: dict[PathKey, int] = {}
    data = None if node is None else _construct(node, (), lines, label, _Loader(""))
    return YamlDocument(path=path, data=data, lines=lines)


def read_text(path: Path, shown: str | None = None, max_bytes: int | None = None) -> str:
    """The UTF-8 text of `path`, bounded in size; a missing, unreadable, oversized or
    non-UTF-8 file (or a folder) is one ConfigError naming it (and the line of a bad byte).
    A byte-order mark is dropped."""
    label = shown or str(path)
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    try:
        if path.is_dir():
            raise ConfigError(f"{label}: is a directory, not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{label}: {size} bytes, over the limit of {max_bytes}")
        with path.open("rb") as stream:  # a file growing while read is still bounded
            raw = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{label}: cannot read: {err.strerror}") from None
    if len(raw) > max_bytes:
        raise ConfigError(f"{label}: more than {max_bytes} bytes, over the limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{label}:{line}: not UTF-8 text (byte {err.start + 1})") from None
    return text.removeprefix("\ufeff")


def load_with_lines(path: Path, shown: str | None = None) -> YamlDocument:
    """Read and parse `path`; a missing or malformed file is a ConfigError naming it."""
    return parse_with_lines(read_text(path, shown), path, shown or str(path))


def parse_bounded(text: str, shown: str) -> Any:
    """The data of a YAML text read bounded, as every file here is (parse_with_lines);
    for texts whose key lines are not needed (Chart.yaml, a fetched kubeconfig)."""
    return parse_with_lines(text, Path(shown), shown).data


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
