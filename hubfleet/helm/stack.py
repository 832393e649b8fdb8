"""A member's chart stack as data: the parent chart and every subchart its values enable (nested
ones too), each with where its values sit in the parent's, its default values and its
values.schema.json. Read from the chart directory and the charts vendored in its charts/ (a
directory, or a .tgz whose own subcharts are inside it), without rendering anything.
"""

from __future__ import annotations

import functools
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.yamlfile import parse_bounded
from hubfleet.helm.dependencies import declared_dependencies, enabled_dependencies
from hubfleet.helm.errors import shown_path
from hubfleet.helm.values_yaml import parse_values

_WORD = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|"([A-Za-z_][A-Za-z0-9_.-]*)"')


@dataclass(frozen=True)
class StackChart:
    name: str
    path: tuple[str, ...]  # where its values sit in the parent chart's values; () for the parent
    defaults: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    dependencies: tuple[dict[str, Any], ...] = ()
    # every name its templates use after a dot or as a quoted word (`.Values.hub.config`,
    # `index $x "accesskey"`): keys a chart reads without declaring them in values.yaml
    template_words: frozenset[str] = frozenset()


def _files_of(chart_dir: Path, name: str) -> dict[str, bytes]:
    """The files of vendored subchart `name` that say what it reads, by path inside it
    ("values.yaml", "charts/jupyterhub/values.yaml", ...)."""
    wanted = ("Chart.yaml", "values.yaml", "values.schema.json")

    def keep(inside: str) -> bool:
        last = inside.rsplit("/", 1)[-1]
        return last in wanted or (
            "templates/" in inside and last.endswith((".yaml", ".tpl", ".yml", ".txt"))
        )

    charts = chart_dir / "charts"
    found: dict[str, bytes] = {}
    unpacked = charts / name
    if (unpacked / "Chart.yaml").is_file():
        for path in unpacked.rglob("*"):
            if path.is_file() and keep(str(path.relative_to(unpacked))):
                found[str(path.relative_to(unpacked))] = path.read_bytes()
        return found
    for archive in sorted(charts.glob(f"{name}-*.tgz")):
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    inside = member.name.split("/", 1)
                    if member.isfile() and len(inside) == 2 and keep(inside[1]):
                        data = tar.extractfile(member)
                        if data is not None:
                            found[inside[1]] = data.read()
        except (OSError, tarfile.TarError):
            continue
        if found:
            return found
    return found


def _chart(name: str, path: tuple[str, ...], files: Mapping[str, bytes], prefix: str) -> StackChart:
    def text(file: str) -> str | None:
        raw = files.get(prefix + file)
        return raw.decode("utf-8", errors="replace") if raw is not None else None

    values_text = text("values.yaml")
    schema_text = text("values.schema.json")
    meta_text = text("Chart.yaml")
    shown = f"{'/'.join(path) or name}/"
    try:
        meta = parse_bounded(meta_text, shown + "Chart.yaml") if meta_text else {}
    except ConfigError:
        meta = {}
    deps = meta.get("dependencies") if isinstance(meta, dict) else None
    try:
        schema = parse_json(schema_text, shown + "values.schema.json") if schema_text else None
    except ConfigError:
        schema = None
    words: set[str] = set()
    own_templates = f"{prefix}templates/"
    for file, raw in files.items():
        if file.startswith(own_templates):
            words.update(_WORD.findall(raw.decode("utf-8", errors="replace")))
    return StackChart(
        name=name,
        path=path,
        defaults=parse_values(values_text, f"{name}/values.yaml") if values_text else {},
        schema=schema if isinstance(schema, dict) else None,
        dependencies=tuple(d for d in deps or [] if isinstance(d, dict)),
        template_words=frozenset(w for pair in words for w in pair if w),
    )


def _signature(chart_dir: Path, name: str) -> tuple[tuple[str, int, int], ...]:
    """What identifies the vendored files of `name`: each file's name, mtime and size."""
    charts = chart_dir / "charts"
    unpacked = charts / name
    files = (
        [p for p in unpacked.rglob("*") if p.is_file()]
        if (unpacked / "Chart.yaml").is_file()
        else sorted(charts.glob(f"{name}-*.tgz"))
    )
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


@functools.lru_cache(maxsize=128)
def _vendored_chart(
    chart_dir: str,
    top: str,
    signature: tuple[tuple[str, int, int], ...],
    name: str,
    path: tuple[str, ...],
    prefix: str,
) -> StackChart | None:
    """A vendored (sub)chart read once per version of its files: every member of a federation
    shares the same charts, and reading an archive costs more than the rest of the check. The
    result is shared: read it, never change it."""
    files = _files_of(Path(chart_dir), top)
    if f"{prefix}Chart.yaml" not in files:
        return None
    return _chart(name, path, files, prefix)


def chart_stack(chart_dir: Path, values: Mapping[str, Any]) -> list[StackChart]:
    """The parent chart and the subcharts `values` (merged over the parent's defaults) enable."""
    parent_files = {
        name: (chart_dir / name).read_bytes()
        for name in ("Chart.yaml", "values.yaml", "values.schema.json")
        if (chart_dir / name).is_file()
    }
    for template in sorted((chart_dir / "templates").glob("*")):
        if template.is_file():
            parent_files[f"templates/{template.name}"] = template.read_bytes()
    parent = _chart("", (), parent_files, "")
    parent = StackChart(
        parent.name,
        (),
        parent.defaults,
        parent.schema,
        tuple(declared_dependencies(chart_dir)),
        parent.template_words,
    )
    stack = [parent]

    def walk(owner: StackChart, here: Mapping[str, Any], top: str | None, prefix: str) -> None:
        for name in enabled_dependencies(list(owner.dependencies), here):
            dep = next(d for d in owner.dependencies if str(d.get("name")) == name)
            key = str(dep.get("alias") or name)
            # a subchart of the parent is its own archive; a nested one is inside its top's
            own_top, own_prefix = (name, "") if top is None else (top, f"{prefix}charts/{name}/")
            chart = _vendored_chart(
                str(chart_dir),
                own_top,
                _signature(chart_dir, own_top),
                name,
                (*owner.path, key),
                own_prefix,
            )
            if chart is None:
                continue  # not carried (see missing_nested_charts)
            stack.append(chart)
            below = here.get(key)
            walk(chart, below if isinstance(below, Mapping) else {}, own_top, own_prefix)

    walk(parent, values, None, "")
    return stack


def missing_nested_charts(stack: list[StackChart], chart_dir: Path) -> list[str]:
    """Subcharts a vendored chart declares but does not carry (binderhub's own jupyterhub):
    Helm would fail on a template with no hint; say which package is incomplete."""
    present = {chart.path for chart in stack}
    problems = []
    for chart in stack[1:]:
        for dep in chart.dependencies:
            key = str(dep.get("alias") or dep.get("name"))
            if (*chart.path, key) in present:
                continue
            condition = str(dep.get("condition") or "")
            if condition:  # a condition may have turned it off: not needed then
                continue
            problems.append(
                f"chart {shown_path(chart_dir)}: {chart.name} declares {dep.get('name')} "
                f"{dep.get('version')} but its package carries no such chart; the package is "
                "incomplete: remove it from the chart cache and run invoke charts.update"
            )
    return problems
