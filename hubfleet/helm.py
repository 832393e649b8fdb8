"""The Helm engine: one small interface, its records, and the messages both engines share.

Two implementations exist: `hubfleet.helm_sdk` (the default: the embedded Helm Go SDK, values
and kubeconfig passed in memory) and `hubfleet.helm_cli` (the `helm` binary, values on stdin),
picked by `engine_from_env` from `HUBFLEET_HELM`. Neither is imported until it is picked, so
importing this module stays cheap.

The pure pieces both engines need live here too: turning Helm's multi-line error texts into
hubfleet's one-line messages, and the offline-first dependency resolution (vendored `charts/`,
then a local chart cache, then `file://` subcharts, then -- only when allowed -- the network).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hubfleet.errors import ClusterError, ConfigError, HubfleetError, RenderError, RolloutError

if TYPE_CHECKING:
    from hubfleet.credentials import ClusterCredentials

# Helm CLI's default for --history-max; the SDK's default is unlimited, so both engines pass it.
HISTORY_MAX = 10
# A kubeconfig with nothing in it: what a client-side dry run gets instead of the default
# lookup (KUBECONFIG, ~/.kube/config, in-cluster), which must never be consulted.
EMPTY_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


@dataclass(frozen=True)
class ReleaseInfo:
    """One revision of a release, as Helm stores it.

    `manifest` is empty where Helm does not return it (history entries); `description` is
    empty where Helm does not return it (the SDK's install/upgrade results).
    """

    name: str
    namespace: str
    revision: int
    status: str  # deployed | failed | superseded | pending-install | pending-upgrade | ...
    chart: str
    chart_version: str
    app_version: str
    updated: str  # when this revision was deployed, as Helm reports it (RFC 3339)
    description: str
    manifest: str


@dataclass(frozen=True)
class LintFinding:
    """One `helm lint` message; severity is info | warning | error | unknown."""

    severity: str
    path: str
    message: str


@dataclass(frozen=True)
class DependencyState:
    """A dependency declared in Chart.yaml and what `charts/` holds for it.

    status is Helm's: ok | unpacked | missing | wrong version | invalid version | corrupt |
    misnamed | too many matches.
    """

    name: str
    version: str
    repository: str
    status: str


class HelmEngine(Protocol):
    """What a deploy needs from Helm. Every failure is a HubfleetError with a one-line message."""

    def render(
        self, chart_dir: Path, release: str, namespace: str, values: Mapping[str, Any]
    ) -> dict[str, str]:
        """Template path -> manifest text, like `helm template`; empty outputs and NOTES.txt
        are left out. Offline: no cluster is contacted."""
        ...

    def lint(self, chart_dir: Path, values: Mapping[str, Any]) -> list[LintFinding]:
        """`helm lint` findings; problems in the chart are findings, not exceptions."""
        ...

    def validate_values_schema(self, chart_dir: Path, values: Mapping[str, Any]) -> None:
        """Check values (merged over the chart defaults) against values.schema.json, if any.
        Raises ConfigError naming the chart and the failing key."""
        ...

    def build_dependencies(self, chart_dir: Path) -> None:
        """Make sure every Chart.yaml dependency is in charts/, offline first. Raises
        RenderError naming the dependency, its repository and how to vendor it."""
        ...

    def dry_run_install(
        self,
        creds: ClusterCredentials | None,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> ReleaseInfo:
        """A client-side dry-run install: the release Helm would create, no cluster needed."""
        ...

    def status(self, creds: ClusterCredentials, release: str, namespace: str) -> ReleaseInfo | None:
        """The latest revision of the release, with its manifest; None when it does not exist."""
        ...

    def history(self, creds: ClusterCredentials, release: str, namespace: str) -> list[ReleaseInfo]:
        """Every stored revision, oldest first; [] when the release does not exist."""
        ...

    def upgrade_or_install(
        self,
        creds: ClusterCredentials,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout_s: int,
        wait: bool,
        create_namespace: bool = True,
        rollback_on_failure: bool = True,
    ) -> ReleaseInfo:
        """Install when no release exists, else upgrade. rollback_on_failure needs wait: Helm
        only sees a failed rollout by waiting, so without wait it is not passed to Helm."""
        ...

    def rollback(
        self,
        creds: ClusterCredentials,
        release: str,
        namespace: str,
        revision: int | None = None,
    ) -> None:
        """Roll back to `revision` (None: the previous one), creating a new revision."""
        ...


def engine_from_env(environ: Mapping[str, str]) -> HelmEngine:
    """The engine `HUBFLEET_HELM` asks for: unset or `sdk` the embedded SDK, `cli` the binary.

    `HUBFLEET_CHART_CACHE` names the local chart cache (default `~/.cache/hubfleet/charts`);
    `HUBFLEET_HELM_FETCH=1` allows fetching a dependency that is neither vendored nor cached.
    """
    choice = environ.get("HUBFLEET_HELM", "").strip().lower() or "sdk"
    cache = chart_cache_from_env(environ)
    fetch = environ.get("HUBFLEET_HELM_FETCH", "") in ("1", "true", "yes")
    if choice == "sdk":
        from hubfleet.helm_sdk import SdkEngine

        return SdkEngine(chart_cache=cache, fetch_dependencies=fetch)
    if choice == "cli":
        from hubfleet.helm_cli import CliEngine

        return CliEngine(environ=environ, chart_cache=cache, fetch_dependencies=fetch)
    raise HubfleetError(
        f"HUBFLEET_HELM={environ['HUBFLEET_HELM']!r} is not a Helm engine; use sdk or cli"
    )


def chart_cache_from_env(environ: Mapping[str, str]) -> Path | None:
    """Where packaged charts may be found offline: HUBFLEET_CHART_CACHE, else the XDG cache."""
    if environ.get("HUBFLEET_CHART_CACHE"):
        return Path(environ["HUBFLEET_CHART_CACHE"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "hubfleet" / "charts"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".cache" / "hubfleet" / "charts"
    return None


def plain_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as plain dicts and lists (what JSON and YAML serialise); nulls are kept, since
    Helm reads a null as "delete this key from the chart defaults"."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    result: dict[str, Any] = plain(values)
    return result


# --- one-line messages from Helm's texts ----------------------------------------------------


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
        return ConfigError(schema_error_message(chart_dir, detail) or f"{where}: {action}: {text}")
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


def schema_error_message(chart_dir: Path, detail: str) -> str | None:
    """The one-line ConfigError text for a values.schema.json failure, None if it is not one.

    Helm reports `<chart>:` then `- at '/a/b': <why>` per violation; keys are shown dotted as
    in a values file, subchart keys under the subchart's name.
    """
    root = chart_name(chart_dir)
    chart = root
    problems: list[str] = []
    for raw in str(detail).splitlines():
        line = raw.strip()
        entry = _SCHEMA_ENTRY.match(line)
        if entry:
            keys = [k for k in entry["path"].split("/") if k]
            message = entry["message"]
            missing = re.fullmatch(r"missing propert(?:y|ies) (.+)", message)
            if missing:
                names = re.findall(r"'([^']*)'", missing[1]) or [missing[1]]
                for name in names:
                    problems.append(f"{_key(chart, root, [*keys, name])}: required but missing")
                continue
            problems.append(f"{_key(chart, root, keys)}: {message}")
        elif line.endswith(":") and not line.startswith("-") and " " not in line:
            chart = line[:-1]
    if not problems:
        return None
    return f"chart {shown_path(chart_dir)}: values fail values.schema.json: {'; '.join(problems)}"


def _key(chart: str, root: str, keys: list[str]) -> str:
    dotted = ".".join(keys) or "(top level)"
    return dotted if chart == root else f"{chart}.{dotted} (subchart {chart})"


def chart_name(chart_dir: Path) -> str:
    """The name in Chart.yaml, or the directory name when it cannot be read."""
    import yaml

    try:
        meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
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


# --- dependencies, offline first --------------------------------------------------------------


def declared_dependencies(chart_dir: Path) -> list[dict[str, Any]]:
    """The dependencies Chart.yaml lists (empty when none). RenderError when unreadable."""
    import yaml

    chart_yaml = chart_dir / "Chart.yaml"
    try:
        meta = yaml.safe_load(chart_yaml.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RenderError(
            f"chart {shown_path(chart_dir)}: cannot read Chart.yaml: {one_line(str(err))}"
        ) from err
    deps = meta.get("dependencies") if isinstance(meta, dict) else None
    return [d for d in deps or [] if isinstance(d, dict)]


def cache_candidates(cache_dir: Path | None, dep: DependencyState) -> list[Path]:
    """Packaged charts in the cache that may satisfy `dep`: the exact version first."""
    if cache_dir is None or not cache_dir.is_dir():
        return []
    exact = cache_dir / f"{dep.name}-{dep.version}.tgz"
    pattern = re.compile(rf"^{re.escape(dep.name)}-v?\d[\w.+\-]*\.tgz$")
    others = sorted(
        (p for p in cache_dir.iterdir() if pattern.match(p.name) and p != exact),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.name[len(dep.name) :])],
        reverse=True,
    )
    return ([exact] if exact.is_file() else []) + others


def vendor_hint(chart_dir: Path, dep: DependencyState) -> str:
    """The command an operator runs to vendor `dep` into the chart."""
    dest = f"{shown_path(chart_dir)}/charts"
    if dep.repository.startswith("oci://"):
        return (
            f"helm pull {dep.repository.rstrip('/')}/{dep.name} --version '{dep.version}' -d {dest}"
        )
    return f"helm pull {dep.name} --repo {dep.repository} --version '{dep.version}' -d {dest}"


def missing_dependency_message(
    chart_dir: Path, dep: DependencyState, cache_dir: Path | None, fetch_error: str | None
) -> str:
    where = f"charts/ nor the chart cache {cache_dir}" if cache_dir else "charts/"
    why = (
        f"fetching it failed ({fetch_error})"
        if fetch_error is not None
        else "fetching is off (HUBFLEET_HELM_FETCH=1 allows it)"
    )
    return (
        f"chart {shown_path(chart_dir)}: dependency {dep.name} {dep.version} from {dep.repository} "
        f"is not in {where} and {why}; vendor it: {vendor_hint(chart_dir, dep)}"
    )


def resolve_dependencies(
    chart_dir: Path,
    *,
    list_dependencies: Callable[[Path], list[DependencyState]],
    package_chart: Callable[[Path, Path], None],
    pull_chart: Callable[[DependencyState, Path], None] | None,
    cache_dir: Path | None,
) -> None:
    """Fill charts/ for every declared dependency: cache, then file://, then (maybe) a pull.

    The engine supplies how to list dependency states, package a directory into charts/ and
    pull a chart into the cache; the order and the messages are the same for both engines.
    """
    if not declared_dependencies(chart_dir):
        return
    charts = chart_dir / "charts"
    for dep in list_dependencies(chart_dir):
        if dep.status in ("ok", "unpacked"):
            continue
        if dep.status != "missing":
            raise RenderError(
                f"chart {shown_path(chart_dir)}: dependency {dep.name} {dep.version} in charts/ is "
                f"{dep.status}; replace it: {vendor_hint(chart_dir, dep)}"
            )
        if _from_cache(chart_dir, dep, cache_dir, list_dependencies):
            continue
        if dep.repository.startswith("file://"):
            source = Path(dep.repository[len("file://") :])
            source = source if source.is_absolute() else chart_dir / source
            if not (source / "Chart.yaml").is_file():
                raise RenderError(
                    f"chart {shown_path(chart_dir)}: dependency {dep.name} points at "
                    f"{dep.repository}, which holds no chart"
                )
            charts.mkdir(exist_ok=True)
            package_chart(source, charts)
            if _state(chart_dir, dep, list_dependencies) in ("ok", "unpacked"):
                continue
            raise RenderError(
                f"chart {shown_path(chart_dir)}: dependency {dep.name} from {dep.repository} "
                f"does not match version {dep.version}"
            )
        fetch_error: str | None = None
        if pull_chart is not None:
            # pulled into the cache when there is one, so the next chart needing it is offline
            into = cache_dir if cache_dir is not None else charts
            try:
                into.mkdir(parents=True, exist_ok=True)
                pull_chart(dep, into)
            except HubfleetError as err:
                fetch_error = str(err)
            else:
                if cache_dir is None and _state(chart_dir, dep, list_dependencies) == "ok":
                    continue
                if _from_cache(chart_dir, dep, cache_dir, list_dependencies):
                    continue
                fetch_error = "the pulled chart does not match the version wanted"
        raise RenderError(missing_dependency_message(chart_dir, dep, cache_dir, fetch_error))


def _state(
    chart_dir: Path,
    dep: DependencyState,
    list_dependencies: Callable[[Path], list[DependencyState]],
) -> str:
    return next((d.status for d in list_dependencies(chart_dir) if d.name == dep.name), "missing")


def _from_cache(
    chart_dir: Path,
    dep: DependencyState,
    cache_dir: Path | None,
    list_dependencies: Callable[[Path], list[DependencyState]],
) -> bool:
    """Copy cache candidates into charts/ until one satisfies `dep` (Helm decides what does)."""
    for candidate in cache_candidates(cache_dir, dep):
        (chart_dir / "charts").mkdir(exist_ok=True)
        target = chart_dir / "charts" / candidate.name
        shutil.copyfile(candidate, target)
        if _state(chart_dir, dep, list_dependencies) == "ok":
            return True
        os.unlink(target)
    return False
