"""What a chart refused, said so an operator can act on it: the full values path, the layer
file and line the value came from (or that it is the chart's default), what the schema wants;
and never a value from a secrets layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hubfleet.helm.dependencies import subchart_paths
from hubfleet.helm.errors import SchemaError, chart_name
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
