"""What a deploy would do and what it changed, as an operator reads it (secrets masked).

A dry run prints the values it would hand Helm. A member whose values run to thousands of
lines (a values file of embedded notebooks, say) gets them summarised by top-level key
instead: the plan stays readable, and `invoke values MEMBER` shows them whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubfleet.deploy.manifests import ObjectChange, count_by_kind
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import Member
from hubfleet.values.layers import MemberValues
from hubfleet.values.merge import MergedValues, masked, redact, values_as_yaml

SHOWN_LINES = 400  # values up to this many lines (and SHOWN_BYTES) are printed whole
SHOWN_BYTES = 32 << 10


@dataclass(frozen=True)
class Rendered:
    """A member's chart rendered with its values: everything a dry-run shows."""

    member: Member
    chart_dir: Path
    chart_name: str
    chart_version: str
    values: MemberValues
    manifests: dict[str, str]
    objects: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    # keys of the member's files that no chart of its stack reads, one line each (file:line)
    unread: tuple[str, ...] = ()
    # the chart's dependencies its values enable (the others need not be vendored)
    enabled: tuple[str, ...] = ()

    def secret_strings(self) -> set[str]:
        return self.values.effective.secret_strings()


def _size(value: Any) -> tuple[int, int]:
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
    return text.count("\n"), len(text.encode("utf-8"))


def values_lines(merged: MergedValues, member: str) -> list[str]:
    """The values, secrets masked: whole when small, else one line per top-level key with its
    size, and where to see them whole."""
    shown = values_as_yaml(merged)
    size = len(shown.encode("utf-8"))
    if shown.count("\n") <= SHOWN_LINES and size <= SHOWN_BYTES:
        return ["values (secrets masked):", *shown.rstrip().splitlines()]
    lines = [
        f"values (secrets masked): {shown.count(chr(10))} lines, {size} bytes; too many to show "
        f"here, by top-level key (see them whole: invoke values {member}):"
    ]
    for key, value in masked(merged).items():
        count, nbytes = _size(value)
        lines.append(f"  {key}: {count} lines, {nbytes} bytes")
    return lines


def plan_text(
    repo: DeployRepo, rendered: Rendered, crds: list[dict[str, Any]] | None = None
) -> str:
    """What a deploy would do, secrets masked: release, chart, objects by kind, values."""
    m = rendered.member
    chart = f"{rendered.chart_name} {rendered.chart_version} ({repo.relative(rendered.chart_dir)})"
    lines = [
        f"member {m.name} ({m.stage}, provider {m.provider})",
        f"  release:   {m.release} in namespace {m.namespace}",
        f"  chart:     {chart}",
        f"  layers:    {', '.join(layer.name for layer in rendered.values.layers)}",
    ]
    if crds:
        lines.append(f"  applied first: {len(crds)} CustomResourceDefinition(s) of cert-manager")
        lines += [f"    {crd['metadata']['name']}" for crd in crds]
    lines.append(f"  objects:   {len(rendered.objects)}")
    lines += [f"    {count:3d} {kind}" for kind, count in count_by_kind(rendered.objects).items()]
    shown = values_lines(rendered.values.user, m.name)
    lines += [f"  {shown[0]}", *(f"    {line}" for line in shown[1:])]
    return redact("\n".join(lines), rendered.secret_strings())


def changes_text(changes: list[ObjectChange], secrets: set[str]) -> str:
    """The objects a deploy changes, each with its diff, secrets masked."""
    if not changes:
        return "  no changes"
    out = []
    for change in changes:
        out.append(f"  {change.change:8s} {change.label}")
        out += [f"    {line}" for line in change.diff[2:]]
    return redact("\n".join(out), secrets)
