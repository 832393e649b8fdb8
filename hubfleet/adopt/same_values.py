"""The same-result check of an adoption: once written, each adopted member's values as hubfleet
computes them (`invoke values MEMBER`, less the registry's `hubfleet.*` facts) must be the
values deploy.py passed Helm from the old files, in its order. A difference is named by its
key path only, never by a value (either side may come from a secrets file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import load_registry
from hubfleet.values.layers import member_values

FACTS = "hubfleet"


def first_difference(ours: Any, theirs: Any, here: tuple[str, ...] = ()) -> str | None:
    """The key path (dotted) where two values first differ, or None when they are equal."""
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours or key not in theirs:
                return ".".join((*here, str(key)))
            found = first_difference(ours[key], theirs[key], (*here, str(key)))
            if found:
                return found
        return None
    if ours == theirs and type(ours) is type(theirs):
        return None
    return ".".join(here) or "(the top level)"


def differences(repo: DeployRepo, old: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Per adopted member whose values differ from the old deploy's: the first key path."""
    registry = load_registry(repo)
    found = {}
    for name, theirs in old.items():
        ours = dict(member_values(repo, registry.member(name)).effective.values)
        ours.pop(FACTS, None)
        where = first_difference(ours, theirs)
        if where:
            found[name] = where
    return found
