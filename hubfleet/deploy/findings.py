"""What a chart refused, said so an operator can act on it: the full values path, the layer
file and line the value came from (or that it is the chart's default), what the schema wants;
and never a value from a secrets layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubfleet.helm.dependencies import subchart_paths
from hubfleet.helm.errors import SchemaError, chart_name
from hubfleet.helm.stack import StackChart
from hubfleet.values.layers import MemberValues
from hubfleet.values.merge import ValuesLayer, get_path, redact

Keys = tuple[str, ...]


def _set_in(layer: ValuesLayer, keys: Keys) -> bool:
    try:
        get_path(layer.data, keys)
    except (KeyError, TypeError, IndexError):
        return False
    return True


def _line(layer: ValuesLayer, keys: Keys) -> int | None:
    probe: tuple[str | int, ...] = keys
    while probe:
        if probe in layer.lines:
            return layer.lines[probe]
        probe = probe[:-1]
    return None


def where_from(values: MemberValues, keys: Keys) -> str:
    """Which layer set `keys` last, with its line: `config/m.yaml:12`, `the value from
    secrets/config/m.yaml:3` (never the value itself), or `chart default` / `not set`."""
    for layer in reversed(values.layers[1:]):  # the user layers, last wins
        if _set_in(layer, keys):
            line = _line(layer, keys)
            place = f"{layer.name}:{line}" if line else layer.name
            return f"the value from {place}" if layer.secret else place
    if _set_in(values.layers[0], keys):
        return "chart default"
    return "not set in any layer"


def _full_keys(
    prefixes: Mapping[str, list[str]], values: MemberValues, chart: str, keys: Keys, root: str
) -> Keys:
    if chart == root:
        return keys
    candidates = [tuple(p.split(".")) for p in prefixes.get(chart, [])] or [(chart,)]
    for base in candidates:  # two subcharts of one name: the one the values set
        if any(_set_in(layer, (*base, *keys)) for layer in values.layers):
            return (*base, *keys)
    return (*candidates[0], *keys)


def explain_schema_error(
    err: SchemaError, values: MemberValues, chart_dir: Path, shown_chart: str
) -> str:
    """The one line for a SchemaError: every finding with its full path and origin."""
    root = chart_name(chart_dir)
    prefixes = subchart_paths(chart_dir, values.effective.values)
    problems = []
    for finding in err.findings:
        keys = _full_keys(prefixes, values, finding.chart, finding.keys, root)
        dotted = ".".join(keys) or "(top level)"
        problems.append(f"{dotted}: {finding.message} ({where_from(values, keys)})")
    text = f"chart {shown_chart}/: values fail values.schema.json: {'; '.join(problems)}"
    return redact(text, values.effective.secret_strings())


def _properties(schema: Any) -> Mapping[str, Any]:
    found = schema.get("properties") if isinstance(schema, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _open(schema: Any) -> bool:
    """The schema lets this map hold keys it does not name (additionalProperties: true or a
    schema): what is below is the chart's to read, whatever it is called."""
    extra = schema.get("additionalProperties") if isinstance(schema, Mapping) else None
    return extra is True or isinstance(extra, Mapping)


def unread_values(values: MemberValues, stack: list[StackChart], member: str) -> list[str]:
    """Keys set in the member's layer files that no chart of its stack reads: neither in the
    chart's values.yaml nor among its schema's properties (where a default or the schema
    leaves a map open, anything below it is the chart's to read). One line each, file:line."""
    charts_at = {chart.path: chart for chart in stack}
    declared = {str(d.get("alias") or d.get("name")) for d in stack[0].dependencies}
    found: list[str] = []

    def walk(
        layer: ValuesLayer,
        data: Mapping[str, Any],
        path: Keys,
        owner: StackChart,
        defaults: Any,
        schema: Any,
    ) -> None:
        for key, value in data.items():
            here = (*path, str(key))
            if here in charts_at:
                chart = charts_at[here]
                if isinstance(value, Mapping):
                    walk(layer, value, here, chart, chart.defaults, chart.schema)
                continue
            if not path and key in ("global", "tags"):
                continue
            in_defaults = isinstance(defaults, Mapping) and key in defaults
            sub_schema = _properties(schema).get(key)
            if not in_defaults and sub_schema is None and str(key) in owner.template_words:
                continue  # read by a template though not declared: below is the chart's
            if not in_defaults and sub_schema is None:
                line = _line(layer, here)
                where = f"{layer.name}:{line}" if line else layer.name
                off = here[0] in declared and (here[0],) not in charts_at
                off_note = f" ({here[0]} is off for this member)" if off else ""
                found.append(
                    f"{where}: {'.'.join(here)}: no chart of member {member} reads it{off_note}"
                )
                continue
            below = defaults.get(key) if in_defaults else None
            open_map = _open(sub_schema) or (
                not (isinstance(below, Mapping) and below) and not _properties(sub_schema)
            )
            if isinstance(value, Mapping) and not open_map:
                child = below if isinstance(below, Mapping) else {}
                walk(layer, value, here, owner, child, sub_schema)

    for layer in values.layers[2:]:  # the operators' files (not the defaults, nor the registry's)
        walk(layer, layer.data, (), stack[0], stack[0].defaults, stack[0].schema)
    return found
