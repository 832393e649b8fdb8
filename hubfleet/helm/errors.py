"""Helm's error texts made into hubfleet's one-line errors, for both Helm engines.

Helm reports most failures as multi-line text (the SDK's error code is a generic release
error, the CLI's an exit status), so both engines classify a failure by its text
(`failure_kind`) and build the same messages from it: template errors naming the file and
line, values.schema.json failures naming the key, release failures naming the member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubfleet.errors import ClusterError, ConfigError, HubfleetError, RenderError, RolloutError

if TYPE_CHECKING:
    from hubfleet.kube.credentials import ClusterCredentials


def shown_path(path: Path) -> str:
    """A path as an operator would type it: relative to the current directory when under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def one_line(text: str) -> str:
    """Join Helm's indented multi-line error texts into one line."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    out = ""
    for part in parts:
        if not out:
            out = part
        elif out.endswith(":"):
            out = f"{out} {part}"
        else:
            out = f"{out}: {part}"
    return out


_TEMPLATE_LOCATION = re.compile(
    r"(?P<file>[\w.\-/]+\.(?:ya?ml|tpl|txt|json)):(?P<line>\d+)(?::(?P<col>\d+))?"
)


def render_error_message(chart_dir: Path, detail: str) -> str:
    """`chart <dir>: template <file>:<line>: <what>` from any of Helm's render error shapes."""
    text = one_line(detail)
    text = re.sub(r"^Error:\s*", "", text)
    found = _TEMPLATE_LOCATION.search(text)
    if not found:
        return f"chart {shown_path(chart_dir)}: render failed: {text}"
    where = f"{found['file']}:{found['line']}"
    loc = re.escape(found.group(0))
    rest = text
    for pattern, replacement in (
        (rf"^(?:template:\s*)?{loc}:?\s*executing \"[^\"]*\"\s*", ""),
        (rf"^execution error at \({loc}\):\s*", ""),
        (rf"^parse error at \({loc}\):\s*", "parse error: "),
    ):
        rest, count = re.subn(pattern, replacement, rest)
        if count:
            break
    return f"chart {shown_path(chart_dir)}: template {where}: {rest}"


_RENDER_FAILURE = re.compile(
    r"parse error at \(|execution error at \(|executing \"|^template: |YAML parse error on"
    r"|error converting YAML to JSON",
    re.IGNORECASE | re.MULTILINE,
)


def failure_kind(detail: str) -> str:
    """What a failed Helm release action's text says went wrong.

    One of: values (schema), render, not-found, unreachable, timeout, release-name, other.
    Helm reports most install/upgrade failures as text only (the SDK's code is a generic
    release error, the CLI's an exit status), so both engines classify by it.
    """
    lowered = detail.lower()
    if "values don't meet the specifications" in lowered:
        return "values"
    if _RENDER_FAILURE.search(detail):
        return "render"
    if "release: not found" in lowered or "has no deployed releases" in lowered:
        return "not-found"
    if "cluster unreachable" in lowered:
        return "unreachable"
    if "context deadline exceeded" in lowered or "timed out" in lowered:
        return "timeout"
    if "invalid release name" in lowered:
        return "release-name"
    return "other"


def release_failure(
    detail: str,
    *,
    creds: ClusterCredentials | None,
    chart_dir: Path | None,
    release: str,
    namespace: str,
    action: str,
    timeout_s: int | None = None,
) -> HubfleetError:
    """The one-line hubfleet error for a failed release action (install, upgrade, status...)."""
    text = one_line(detail)
    where = f"{cluster_label(creds)}: release {release} in namespace {namespace}"
    kind = failure_kind(detail)
    if kind == "values" and chart_dir is not None:
        return schema_error(chart_dir, detail) or ConfigError(f"{where}: {action}: {text}")
    if kind == "render" and chart_dir is not None:
        return RenderError(render_error_message(chart_dir, detail))
    if kind == "unreachable":
        return ClusterError(f"{cluster_label(creds)}: cluster unreachable: {text}")
    if kind == "timeout":
        within = f" within {timeout_s}s" if timeout_s is not None else ""
        return RolloutError(f"{where}: {action} did not become ready{within}: {text}")
    if kind == "release-name":
        return ConfigError(f"{where}: {text}")
    return ClusterError(f"{where}: {action} failed: {text}")


_SCHEMA_ENTRY = re.compile(r"^- at '(?P<path>[^']*)':\s*(?P<message>.*)$")


@dataclass(frozen=True)
class SchemaFinding:
    """One thing a values.schema.json refused: in chart `chart` (the chart Helm names, the
    parent's own name for the parent), at `keys` under that chart's values, and why."""

    chart: str
    keys: tuple[str, ...]
    message: str


class SchemaError(ConfigError):
    """Values refused by a chart's (or a subchart's) values.schema.json, finding by finding."""

    def __init__(self, message: str, chart_dir: Path, findings: list[SchemaFinding]):
        super().__init__(message)
        self.chart_dir = chart_dir
        self.findings = tuple(findings)


def schema_findings(chart_dir: Path, detail: str) -> list[SchemaFinding]:
    """Helm's schema failure text as findings: `<chart>:` then `- at '/a/b': <why>` per
    violation. A missing required key and a key the schema does not allow are findings at
    that key."""
    chart = chart_name(chart_dir)
    found: list[SchemaFinding] = []
    for raw in str(detail).splitlines():
        line = raw.strip()
        entry = _SCHEMA_ENTRY.match(line)
        if entry:
            keys = tuple(k for k in entry["path"].split("/") if k)
            message = entry["message"]
            missing = re.fullmatch(r"missing propert(?:y|ies) (.+)", message)
            extra = re.fullmatch(r"additional propert(?:y|ies) (.+) not allowed", message)
            if missing:
                for name in re.findall(r"'([^']*)'", missing[1]) or [missing[1]]:
                    found.append(SchemaFinding(chart, (*keys, name), "required but missing"))
            elif extra:
                for name in re.findall(r"'([^']*)'", extra[1]) or [extra[1]]:
                    found.append(SchemaFinding(chart, (*keys, name), "not a key this chart has"))
            else:
                found.append(SchemaFinding(chart, keys, message))
        elif line.endswith(":") and not line.startswith("-") and " " not in line:
            chart = line[:-1]
    return found


def schema_error(chart_dir: Path, detail: str) -> SchemaError | None:
    """The SchemaError for a values.schema.json failure (None if `detail` is not one); its
    message names each key dotted as in a values file, a subchart's under its chart's name."""
    findings = schema_findings(chart_dir, detail)
    if not findings:
        return None
    root = chart_name(chart_dir)
    problems = [f"{_key(f.chart, root, list(f.keys))}: {f.message}" for f in findings]
    message = (
        f"chart {shown_path(chart_dir)}: values fail values.schema.json: {'; '.join(problems)}"
    )
    return SchemaError(message, chart_dir, findings)


def schema_error_message(chart_dir: Path, detail: str) -> str | None:
    """The one-line text of `schema_error`, None if `detail` is not a schema failure."""
    found = schema_error(chart_dir, detail)
    return str(found) if found else None


def _key(chart: str, root: str, keys: list[str]) -> str:
    dotted = ".".join(keys) or "(top level)"
    return dotted if chart == root else f"{chart}.{dotted} (subchart {chart})"


def chart_name(chart_dir: Path) -> str:
    """The name in Chart.yaml, or the directory name when it cannot be read."""
    from hubfleet.errors import ConfigError
    from hubfleet.files.yamlfile import parse_bounded, read_text

    try:
        meta = parse_bounded(read_text(chart_dir / "Chart.yaml"), "Chart.yaml")
    except ConfigError:
        return chart_dir.name
    return str(meta.get("name", chart_dir.name)) if isinstance(meta, dict) else chart_dir.name


def cluster_label(creds: ClusterCredentials | None) -> str:
    """`member <m> (<server>)`, for messages about a cluster."""
    if creds is None:
        return "no member (client-side dry run)"
    try:
        server = creds.server
    except (KeyError, TypeError):
        server = "?"
    return f"member {creds.member} ({server})"
