"""The adopted members in config/federation.yaml, as a text edit that keeps the rest of the file:
a new member's block is appended, an adopted member whose facts changed is replaced, one whose
facts did not is left alone; the federation block goes above `members:`. The result is checked
against the schema and the federation's rules before anything is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from hubfleet.adopt.source import CHART
from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import YamlDocument
from hubfleet.members.new import _member_indent, registry_block, registry_with
from hubfleet.members.remove import registry_without
from hubfleet.registry.federation import federation_problems
from hubfleet.registry.members import schema_problems
from hubfleet.registry.rotation import parse_text

NOTE = "adopted from a mybinder.org-deploy repository (invoke adopt.mybinder)"


def _with_federation(text: str, doc: YamlDocument, block: Mapping[str, Any], shown: str) -> str:
    current = doc.data.get("federation")
    if current == dict(block):
        return text
    if current is not None:
        line = doc.line_of(("federation",))
        raise ConfigError(
            f"{shown}:{line}: already has a federation block other than the adopted one "
            f"(domain {current.get('domain')}, redirector {current.get('redirector')}); adopt "
            "into a repo without one, or remove it first"
        )
    body = yaml.safe_dump({"federation": dict(block)}, sort_keys=False)
    lines = text.splitlines(keepends=True)
    at = (doc.line_of(("members",)) or len(lines) + 1) - 1
    return "".join([*lines[:at], body, "\n", *lines[at:]])


def registry_text(
    text: str,
    shown: str,
    records: Mapping[str, Mapping[str, Any]],
    federation: Mapping[str, Any] | None,
) -> str:
    """The registry `text` with `records` (by member name) and the federation block in it."""
    doc = parse_text(text, shown)
    members = doc.data.get("members") or {}
    for name, record in records.items():
        current = members.get(name)
        if current == dict(record):
            continue
        if current is not None:
            if not isinstance(current, Mapping) or current.get("chart") != CHART:
                line = doc.line_of(("members", name))
                raise ConfigError(
                    f"{shown}:{line}: member {name} exists and was not adopted (its chart is not "
                    f"{CHART}); remove or rename it, then adopt again"
                )
            text = registry_without(text, doc, name)
            doc = parse_text(text, shown)
        block = registry_block(name, dict(record), _member_indent(text, doc), NOTE)
        text = registry_with(text, doc, block)
        doc = parse_text(text, shown)
    if federation is not None:
        text = _with_federation(text, doc, federation, shown)
    return text


def check_registry_text(
    text: str, shown: str, records: Mapping[str, Mapping[str, Any]]
) -> Sequence[str]:
    """What is wrong with the registry `text` (schema, the federation's rules, a record that
    reads back differently); empty when nothing is."""
    doc = parse_text(text, shown)
    problems = [str(p) for p in schema_problems(doc, shown)]
    problems += [str(p) for p in federation_problems(doc.data, shown, doc.line_of)]
    members = doc.data.get("members") or {}
    problems += [
        f"{shown}: member {name} reads back differently"
        for name, record in records.items()
        if members.get(name) != dict(record)
    ]
    return problems
