"""Rotation: draining a member, readmitting it, making another prime, as edits of the
registry's text: the changed lines only, every other byte (comments, order, quoting) kept.
Pure: text in, text out, checked against the federation's rules before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import YamlDocument, parse_with_lines
from hubfleet.registry.federation import Federation, federation_of, federation_problems

_KEY_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<key>[^:#\s]+)(?P<sep>\s*:\s*)(?P<value>[^#\n]*?)(?P<rest>\s*(#.*)?)$"
)


@dataclass(frozen=True)
class RotationChange:
    text: str  # the registry as it will be
    summary: str  # what changes, one line
    members: tuple[str, ...]  # the members whose releases change (deployed after the edit)


def parse_text(text: str, shown: str) -> YamlDocument:
    return parse_with_lines(text, Path(shown), shown)


def _set(text: str, shown: str, path: tuple[str, ...], value: str) -> str:
    """`path` set to the YAML scalar text `value`: its line rewritten, or a line added under
    its parent (a block mapping), indented as its siblings are."""
    doc = parse_text(text, shown)
    lines = text.splitlines(keepends=True)
    at = doc.lines.get(path)
    if at is not None:
        match = _KEY_LINE.match(lines[at - 1].rstrip("\n"))
        if not match or match.group("key") != path[-1] or not match.group("value").strip():
            raise ConfigError(
                f"{shown}:{at}: {'.'.join(path)} is not a one-line value; edit it by hand"
            )
        ending = "\n" if lines[at - 1].endswith("\n") else ""
        lines[at - 1] = (
            f"{match.group('indent')}{path[-1]}{match.group('sep')}{value}{match.group('rest')}{ending}"
        )
        return "".join(lines)
    parent = doc.lines.get(path[:-1])
    if parent is None:
        raise ConfigError(f"{shown}: no {'.'.join(path[:-1])} to add {path[-1]} to")
    siblings = [n for p, n in doc.lines.items() if p[:-1] == path[:-1] and len(p) == len(path)]
    parent_line = lines[parent - 1]
    if parent_line.rstrip().endswith(("}", "]")) or not parent_line.rstrip().endswith(":"):
        raise ConfigError(
            f"{shown}:{parent}: {'.'.join(path[:-1])} is written inline; edit it by hand"
        )
    if siblings:
        indent = re.match(r"\s*", lines[min(siblings) - 1]).group(0)  # type: ignore[union-attr]
    else:
        indent = re.match(r"\s*", parent_line).group(0) + "  "  # type: ignore[union-attr]
    lines.insert(parent, f"{indent}{path[-1]}: {value}\n")
    return "".join(lines)


def _delete(text: str, shown: str, path: tuple[str, ...]) -> str:
    doc = parse_text(text, shown)
    at = doc.lines.get(path)
    if at is None:
        return text
    lines = text.splitlines(keepends=True)
    match = _KEY_LINE.match(lines[at - 1].rstrip("\n"))
    if not match or not match.group("value").strip():
        raise ConfigError(
            f"{shown}:{at}: {'.'.join(path)} is not a one-line value; edit it by hand"
        )
    del lines[at - 1]
    return "".join(lines)


def _federation(text: str, shown: str) -> tuple[Federation, YamlDocument]:
    doc = parse_text(text, shown)
    federation = federation_of(doc.data) if isinstance(doc.data, dict) else None
    if federation is None:
        raise ConfigError(f"{shown}: no federation block (domain, redirector)")
    return federation, doc


def _checked(
    before: str, after: str, shown: str, expected: Any, change: RotationChange
) -> RotationChange:
    """The change, once the edited text parses to what was meant and keeps the rules."""
    doc = parse_text(after, shown)
    if doc.data != expected:
        raise ConfigError(f"{shown}: the edit did not come out as meant; make it by hand")
    problems = federation_problems(doc.data, shown, doc.line_of)
    if problems:
        raise ConfigError(f"not changing {shown}: {problems[0].message}")
    return change


def _member_path(member: str, *keys: str) -> tuple[str, ...]:
    return ("members", member, "federation", *keys)


def drain(text: str, member: str, shown: str = "config/federation.yaml") -> RotationChange | None:
    """The member out of rotation: weight 0 and launch quota 0, what it had kept under
    `drained` for readmit. None when it is drained already."""
    federation, doc = _federation(text, shown)
    place = federation.place(member)
    if place is None:
        raise ConfigError(f"member {member} has no place in the rotation (no federation block)")
    if place.drained is not None and place.weight == 0:
        return None
    if place.prime:
        raise ConfigError(
            f"member {member} is prime: all traffic falls back to it; make another member prime "
            f"first (invoke federation.prime OTHER)"
        )
    kept = {"weight": place.weight, **({"quota": place.quota} if place.quota is not None else {})}
    flow = "{" + ", ".join(f"{k}: {v}" for k, v in kept.items()) + "}"
    after = _set(text, shown, _member_path(member, "drained"), flow)
    after = _set(after, shown, _member_path(member, "weight"), "0")
    after = _set(after, shown, _member_path(member, "quota"), "0")
    expected = _expected(doc.data, member, weight=0, quota=0, drained=kept)
    quota = f", quota {place.quota} -> 0" if place.quota is not None else ", quota 0"
    summary = f"member {member} drained: weight {place.weight} -> 0{quota}"
    change = RotationChange(after, summary, tuple(dict.fromkeys([federation.redirector, member])))
    return _checked(text, after, shown, expected, change)


def readmit(text: str, member: str, shown: str = "config/federation.yaml") -> RotationChange | None:
    """The member back in rotation with the weight and quota it had; None when it is in."""
    federation, doc = _federation(text, shown)
    place = federation.place(member)
    if place is None:
        raise ConfigError(f"member {member} has no place in the rotation (no federation block)")
    if place.drained is None:
        return None
    weight = int(place.drained.get("weight", 0))
    if weight <= 0:
        raise ConfigError(f"member {member}: drained.weight is {weight}; set its weight by hand")
    after = _set(text, shown, _member_path(member, "weight"), str(weight))
    quota = place.drained.get("quota")
    if quota is None:
        after = _delete(after, shown, _member_path(member, "quota"))
    else:
        after = _set(after, shown, _member_path(member, "quota"), str(int(quota)))
    after = _delete(after, shown, _member_path(member, "drained"))
    expected = _expected(doc.data, member, weight=weight, quota=quota, drained=None)
    summary = f"member {member} readmitted: weight 0 -> {weight}" + (
        f", quota 0 -> {quota}" if quota is not None else ""
    )
    change = RotationChange(after, summary, tuple(dict.fromkeys([federation.redirector, member])))
    return _checked(text, after, shown, expected, change)


def make_prime(
    text: str, member: str, shown: str = "config/federation.yaml"
) -> RotationChange | None:
    """`member` the prime instead of the current one; None when it is prime already."""
    federation, doc = _federation(text, shown)
    place = federation.place(member)
    if place is None:
        raise ConfigError(f"member {member} has no place in the rotation (no federation block)")
    if place.prime:
        return None
    if place.weight <= 0:
        raise ConfigError(f"member {member} has weight 0; readmit it before making it prime")
    old = federation.prime
    after = _set(text, shown, _member_path(member, "prime"), "true")
    if old is not None:
        after = _delete(after, shown, _member_path(old.member, "prime"))
    expected = copy_data(doc.data)
    expected["members"][member]["federation"]["prime"] = True
    if old is not None:
        expected["members"][old.member]["federation"].pop("prime", None)
    was = f" (was {old.member})" if old else ""
    change = RotationChange(after, f"member {member} is prime{was}", (federation.redirector,))
    return _checked(text, after, shown, expected, change)


def copy_data(data: Any) -> Any:
    import copy

    return copy.deepcopy(data)


def _expected(
    data: Any, member: str, weight: int, quota: int | None, drained: dict[str, int] | None
) -> Any:
    expected = copy_data(data)
    block = expected["members"][member]["federation"]
    block["weight"] = weight
    if quota is None:
        block.pop("quota", None)
    else:
        block["quota"] = quota
    if drained is None:
        block.pop("drained", None)
    else:
        block["drained"] = drained
    return expected
