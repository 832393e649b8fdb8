"""The text that passes through the `helm` CLI's pipes, for `hubfleet.helm.cli`.

What goes to helm's stdin (the values, as YAML) and what comes back: `helm template`,
`helm lint` and `helm dependency list` output, release JSON (`-o json`), the version, and
the `Error:` part of stderr, made into hubfleet's one-line errors. Pure functions over text
and finished processes; `hubfleet.helm.cli` runs helm.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hubfleet.errors import ClusterError, ConfigError, HubfleetError, RenderError
from hubfleet.helm.engine import DependencyState, LintFinding, ReleaseInfo, plain_values
from hubfleet.helm.errors import (
    failure_kind,
    one_line,
    release_failure,
    render_error_message,
    schema_error,
    shown_path,
)

if TYPE_CHECKING:
    from hubfleet.kube.credentials import ClusterCredentials


def values_yaml(values: Mapping[str, Any]) -> str:
    """What goes to helm's stdin: the values as one YAML document (nulls kept: they delete)."""
    return yaml.safe_dump(plain_values(values), sort_keys=False)


def parse_template_output(text: str) -> dict[str, str]:
    """`helm template` output split back into template path -> manifest text."""
    manifests: dict[str, str] = {}
    parts = re.split(r"^---[ \t]*\n# Source: (.+)\n", text, flags=re.MULTILINE)
    for path, body in zip(parts[1::2], parts[2::2], strict=True):
        if not body.strip() or path.endswith("/NOTES.txt"):
            continue
        manifests[path] = f"{manifests[path]}---\n{body}" if path in manifests else body
    return manifests


_LINT_LINE = re.compile(r"^\[(?P<severity>INFO|WARNING|ERROR)\] (?P<path>[^:]*): ?(?P<message>.*)$")


def parse_lint_output(text: str) -> list[LintFinding]:
    """`helm lint` text findings; indented continuation lines join their finding."""
    findings: list[tuple[str, str, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        found = _LINT_LINE.match(line)
        if found:
            current = [found["message"]]
            findings.append((found["severity"].lower(), found["path"], current))
        elif not line.strip() or line.startswith(("==>", "Error:")):
            current = None  # a blank line, the next chart or the summary ends a finding
        elif current is not None:
            current.append(line)
    return [LintFinding(severity=s, path=p, message=one_line("\n".join(m))) for s, p, m in findings]


def parse_dependency_list(text: str) -> list[DependencyState]:
    """`helm dependency list` table rows (NAME VERSION REPOSITORY STATUS)."""
    states = []
    for line in text.splitlines():
        cells = line.split(None, 3)
        if len(cells) < 4 or cells[0] == "NAME" or line.startswith("WARNING"):
            continue
        name, version, repository, status = cells
        states.append(DependencyState(name, version, repository, status.strip()))
    return states


def release_from_json(data: Mapping[str, Any]) -> ReleaseInfo:
    """ReleaseInfo from a release object (`helm status|install|upgrade -o json`)."""
    info = data.get("info") or {}
    meta = (data.get("chart") or {}).get("metadata") or {}
    return ReleaseInfo(
        name=str(data.get("name", "")),
        namespace=str(data.get("namespace", "")),
        revision=int(data.get("version", 0)),
        status=str(info.get("status", "")),
        chart=str(meta.get("name", "")),
        chart_version=str(meta.get("version", "")),
        app_version=str(meta.get("appVersion", "")),
        updated=str(info.get("last_deployed", "")),
        description=str(info.get("description", "")),
        manifest=str(data.get("manifest", "")),
    )


_CHART_LABEL = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d+\.\d+\.\d+\S*)$")


def history_from_json(
    data: list[Mapping[str, Any]], release: str, namespace: str
) -> list[ReleaseInfo]:
    """ReleaseInfo per entry of `helm history -o json` (which has no manifests)."""
    revisions = []
    for entry in data:
        label = str(entry.get("chart", ""))
        split = _CHART_LABEL.match(label)
        revisions.append(
            ReleaseInfo(
                name=release,
                namespace=namespace,
                revision=int(entry.get("revision", 0)),
                status=str(entry.get("status", "")),
                chart=split["name"] if split else label,
                chart_version=split["version"] if split else "",
                app_version=str(entry.get("app_version", "")),
                updated=str(entry.get("updated", "")),
                description=str(entry.get("description", "")),
                manifest="",
            )
        )
    return revisions


def helm_major_from_version(text: str) -> int:
    """3 for `v3.14.2`, 4 for `v4.0.1`; 4 when unknown (the current Helm)."""
    found = re.match(r"\s*v?(\d+)\.", text)
    return int(found[1]) if found else 4


def error_text(proc: subprocess.CompletedProcess[str]) -> str:
    """The `Error: ...` part of helm's stderr (warnings dropped), else all of it."""
    text = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
    error = text[text.find("Error:") :] if "Error:" in text else text
    return re.sub(r"^Error:\s*", "", error)


def chart_error(chart_dir: Path, proc: subprocess.CompletedProcess[str]) -> HubfleetError:
    """The one-line error for a failed offline helm command on a chart (template, lint...)."""
    detail = error_text(proc)
    kind = failure_kind(detail)
    if kind == "values":
        return schema_error(chart_dir, detail) or ConfigError(
            f"chart {shown_path(chart_dir)}: {one_line(detail)}"
        )
    if kind == "render":
        return RenderError(render_error_message(chart_dir, detail))
    return RenderError(f"chart {shown_path(chart_dir)}: helm failed: {one_line(detail)}")


def release_error(
    proc: subprocess.CompletedProcess[str],
    creds: ClusterCredentials | None,
    chart_dir: Path | None,
    release: str,
    namespace: str,
    action: str,
    timeout_s: int | None = None,
) -> HubfleetError:
    """The one-line error for a failed helm release command (install, upgrade, status...)."""
    return release_failure(
        error_text(proc),
        creds=creds,
        chart_dir=chart_dir,
        release=release,
        namespace=namespace,
        action=action,
        timeout_s=timeout_s,
    )


def release_json(
    proc: subprocess.CompletedProcess[str],
    creds: ClusterCredentials | None,
    release: str,
    namespace: str,
) -> Any:
    """What a release command printed with `--output json`; ClusterError when it is not JSON."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        who = f"member {creds.member}" if creds else "dry run"
        raise ClusterError(
            f"{who}: release {release} in namespace {namespace}: helm printed no JSON: "
            f"{one_line(proc.stdout[:200])}"
        ) from err
