"""Chart dependencies, offline first, for both Helm engines.

Every dependency in Chart.yaml must end up in the chart's `charts/`: vendored there already,
else copied from a local chart cache, else packaged from a `file://` subchart, else -- only
when allowed -- pulled over the network (into the cache, so the next chart needing it is
offline). The engine supplies the Helm operations; the order, the cache's location and the
messages naming how to vendor a missing dependency are here.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError, HubfleetError, RenderError
from hubfleet.files.atomic import write_atomically
from hubfleet.files.yamlfile import MAX_BYTES, parse_bounded, read_text
from hubfleet.helm.engine import DependencyState
from hubfleet.helm.errors import one_line, shown_path
from hubfleet.helm.lock import digest_problem


def chart_cache_from_env(environ: Mapping[str, str]) -> Path | None:
    """Where packaged charts may be found offline: HUBFLEET_CHART_CACHE, else the XDG cache."""
    if environ.get("HUBFLEET_CHART_CACHE"):
        return Path(environ["HUBFLEET_CHART_CACHE"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "hubfleet" / "charts"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".cache" / "hubfleet" / "charts"
    return None


def declared_dependencies(chart_dir: Path) -> list[dict[str, Any]]:
    """The dependencies Chart.yaml lists (empty when none). RenderError when unreadable."""
    chart_yaml = chart_dir / "Chart.yaml"
    try:
        meta = parse_bounded(read_text(chart_yaml), shown_path(chart_yaml))
    except ConfigError as err:
        raise RenderError(
            f"chart {shown_path(chart_dir)}: cannot read Chart.yaml: {one_line(str(err))}"
        ) from None
    deps = meta.get("dependencies") if isinstance(meta, dict) else None
    return [d for d in deps or [] if isinstance(d, dict)]


def _lookup(values: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dotted path, and whether it is there."""
    here: Any = values
    for key in path.split("."):
        if not isinstance(here, Mapping) or key not in here:
            return False, None
        here = here[key]
    return True, here


def enabled_dependencies(declared: list[dict[str, Any]], values: Mapping[str, Any]) -> list[str]:
    """The dependencies Helm loads with these parent values (merged over the chart's
    defaults), by name, as Helm decides: enabled unless its tags say otherwise (a dependency
    with tags is on when any `tags.<tag>` is true, off when all that are set are false), and
    its condition, when one of its comma-separated paths holds a boolean, wins over the tags.
    """
    enabled = []
    for dep in declared:
        on = True
        tags = [str(t) for t in dep.get("tags") or []]
        states = [v for t in tags for found, v in [_lookup(values, f"tags.{t}")] if found]
        bools = [v for v in states if isinstance(v, bool)]
        if bools:
            on = any(bools)
        for path in str(dep.get("condition") or "").split(","):
            found, value = _lookup(values, path.strip()) if path.strip() else (False, None)
            if found and isinstance(value, bool):
                on = value
                break
        if on:
            enabled.append(str(dep.get("name")))
    return enabled


def _vendored_chart_yaml(chart_dir: Path, name: str) -> dict[str, Any]:
    """The Chart.yaml of subchart `name` as vendored in charts/ (a directory or a .tgz)."""
    import tarfile

    charts = chart_dir / "charts"
    unpacked = charts / name / "Chart.yaml"
    try:
        if unpacked.is_file():
            meta = parse_bounded(read_text(unpacked), shown_path(unpacked))
            return meta if isinstance(meta, dict) else {}
        for archive in sorted(charts.glob(f"{name}-*.tgz")):
            with tarfile.open(archive) as tar:
                member = tar.extractfile(f"{name}/Chart.yaml")
                if member is not None:
                    raw = member.read(MAX_BYTES + 1).decode("utf-8")
                    meta = parse_bounded(raw, f"{shown_path(archive)}: {name}/Chart.yaml")
                    return meta if isinstance(meta, dict) else {}
    except (OSError, KeyError, tarfile.TarError, ConfigError, UnicodeDecodeError):
        return {}
    return {}


def subchart_paths(chart_dir: Path, values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Where the values of each subchart the values enable sit, dotted, by the chart name
    Helm's messages use: for the umbrella with BinderHub on, `binderhub` -> ["binderhub"] and
    `jupyterhub` -> ["binderhub.jupyterhub"] (the hub nested in binderhub). Nested charts are
    read from the vendored charts (their own charts/ is inside the archive)."""
    found: dict[str, list[str]] = {}

    def walk(
        declared: list[dict[str, Any]], here: Mapping[str, Any], prefix: str, vendored: Path | None
    ) -> None:
        for name in enabled_dependencies(declared, here):
            dep = next(d for d in declared if str(d.get("name")) == name)
            key = str(dep.get("alias") or name)
            path = f"{prefix}.{key}" if prefix else key
            found.setdefault(name, []).append(path)
            if vendored is None:
                continue
            meta = _vendored_chart_yaml(vendored, name)
            nested = [d for d in meta.get("dependencies") or [] if isinstance(d, dict)]
            below = here.get(key)
            walk(nested, below if isinstance(below, Mapping) else {}, path, None)

    walk(declared_dependencies(chart_dir), values, "", chart_dir)
    return found


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
        f"is not in {where} and {why}; fetch it: invoke charts.update "
        f"(or vendor it: {vendor_hint(chart_dir, dep)})"
    )


def resolve_dependencies(
    chart_dir: Path,
    *,
    list_dependencies: Callable[[Path], list[DependencyState]],
    package_chart: Callable[[Path, Path], None],
    pull_chart: Callable[[DependencyState, Path], None] | None,
    cache_dir: Path | None,
    only: Collection[str] | None = None,
) -> None:
    """Fill charts/ for every declared dependency (or those named in `only`: a dependency its
    conditions turn off is not loaded by Helm, so it need not be there): cache, then
    file://, then (maybe) a pull.

    The engine supplies how to list dependency states, package a directory into charts/ and
    pull a chart into the cache; the order and the messages are the same for both engines.
    """
    if not declared_dependencies(chart_dir):
        return
    charts = chart_dir / "charts"
    for dep in list_dependencies(chart_dir):
        if dep.status in ("ok", "unpacked"):
            continue
        if only is not None and dep.name not in only:
            continue
        if dep.status != "missing":
            held = sorted(p.name for p in (chart_dir / "charts").glob(f"{dep.name}-*.tgz"))
            what = f" (charts/ holds {', '.join(held)})" if held else ""
            raise RenderError(
                f"chart {shown_path(chart_dir)}: dependency {dep.name}: Chart.yaml pins "
                f"{dep.version}, but charts/ has the {dep.status}{what}; remove it and run "
                f"invoke charts.update (or vendor it: {vendor_hint(chart_dir, dep)})"
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
        problem = digest_problem(chart_dir, dep.name, dep.version, candidate)
        if problem is not None:
            raise RenderError(f"chart {shown_path(chart_dir)}: {problem}")
        (chart_dir / "charts").mkdir(exist_ok=True)
        target = chart_dir / "charts" / candidate.name
        write_atomically(target, candidate.read_bytes())  # a reader never sees half a chart
        if _state(chart_dir, dep, list_dependencies) == "ok":
            return True
        os.unlink(target)
    return False


def charts_signature(chart_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What resolving a chart's dependencies reads: its Chart.yaml and Chart.lock, and each
    entry of charts/ (name, size, modification time). The same signature, the same answer."""
    paths = [chart_dir / "Chart.yaml", chart_dir / "Chart.lock"]
    charts = chart_dir / "charts"
    if charts.is_dir():
        paths += sorted(charts.iterdir())
        paths += sorted(p / "Chart.yaml" for p in paths[2:] if p.is_dir())
    signature = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class ResolvedOnce:
    """Dependencies resolved once per chart and set of enabled dependencies, while the chart's
    files stay as they were: members validated or deployed together share a chart, and
    listing its dependencies loads it whole (20 ms a member with the real charts). One
    resolution at a time, since they share the chart's charts/."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: set[tuple[Path, frozenset[str] | None, tuple[tuple[str, int, int], ...]]] = (
            set()
        )

    def run(
        self, chart_dir: Path, only: Collection[str] | None, resolve: Callable[[], None]
    ) -> None:
        wanted = None if only is None else frozenset(only)
        with self._lock:
            if (chart_dir, wanted, charts_signature(chart_dir)) in self._done:
                return
            resolve()  # raises when it cannot: nothing remembered
            self._done.add((chart_dir, wanted, charts_signature(chart_dir)))


@contextmanager
def installable(chart_dir: Path, enabled: Collection[str]) -> Iterator[Path]:
    """The chart as Helm can install it with only its `enabled` dependencies in charts/.

    Helm renders a chart whose disabled dependencies are absent, but its install and upgrade
    refuse it ("missing in charts/ directory"). When some declared dependency is not enabled,
    this is a temporary copy whose Chart.yaml lists only the enabled ones (their archives
    kept, the others' left out; no Chart.lock): it renders the same objects, since a disabled
    dependency renders none. Otherwise the chart itself."""
    import yaml

    declared = declared_dependencies(chart_dir)
    dropped = {str(d.get("name")) for d in declared} - set(enabled)
    if not dropped:
        yield chart_dir
        return

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == chart_dir:
            return {"Chart.lock"} & set(names)
        if here == chart_dir / "charts":
            return {n for n in names for d in dropped if n == d or _is_archive_of(n, d)}
        return set()

    with tempfile.TemporaryDirectory(prefix="hubfleet-chart-") as tmp:
        copy = Path(tmp) / chart_dir.name
        shutil.copytree(chart_dir, copy, ignore=ignore)
        meta = parse_bounded(read_text(chart_dir / "Chart.yaml"), shown_path(chart_dir))
        meta["dependencies"] = [d for d in declared if str(d.get("name")) not in dropped]
        (copy / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
        yield copy


def _is_archive_of(filename: str, name: str) -> bool:
    """Whether `filename` is a packaged version of chart `name` (`<name>-<version>.tgz`)."""
    return bool(re.fullmatch(re.escape(name) + r"-v?\d[^/]*\.tgz", filename))
