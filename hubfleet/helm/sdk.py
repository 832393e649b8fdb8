"""The default Helm engine: the Helm Go SDK embedded through `helm-python-sdk` (`helm_python`).

Values go to Helm in memory as dicts; a member's kubeconfig goes inline
(`kubeconfig_content`), never through ~/.kube/config or KUBECONFIG. Every cluster call gets
its own `helm_python.Config`, closed when the call ends, so members deploy concurrently
(the native calls release the GIL). Helm's typed errors become hubfleet's one-line errors here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import helm_python as helm

from hubfleet.errors import ClusterError, ConfigError, HubfleetError, RenderError
from hubfleet.helm.dependencies import ResolvedOnce, resolve_dependencies
from hubfleet.helm.engine import (
    EMPTY_KUBECONFIG,
    HISTORY_MAX,
    DependencyState,
    LintFinding,
    ReleaseInfo,
    plain_values,
)
from hubfleet.helm.errors import (
    cluster_label,
    one_line,
    release_failure,
    render_error_message,
    schema_error,
    shown_path,
)
from hubfleet.kube.credentials import ClusterCredentials, kubeconfig_file

_SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


class SdkEngine:
    """HelmEngine on the embedded Helm SDK."""

    def __init__(self, *, chart_cache: Path | None = None, fetch_dependencies: bool = False):
        self.chart_cache = chart_cache
        self.fetch_dependencies = fetch_dependencies
        self._dependencies = ResolvedOnce()

    # --- offline: charts and values -------------------------------------------------------

    def render(
        self, chart_dir: Path, release: str, namespace: str, values: Mapping[str, Any]
    ) -> dict[str, str]:
        with _chart_errors(chart_dir), helm.Chart.load(chart_dir) as chart:
            rendered = chart.render(
                plain_values(values), name=release, namespace=namespace, is_install=True
            )
        return {
            path: text
            for path, text in rendered.items()
            if text.strip() and not path.endswith("/NOTES.txt")
        }

    def lint(self, chart_dir: Path, values: Mapping[str, Any]) -> list[LintFinding]:
        with _chart_errors(chart_dir):
            report = helm.lint(chart_dir, plain_values(values))
        return [
            LintFinding(
                severity=_SEVERITY.get(int(m.get("severity", 0)), "unknown"),
                path=str(m.get("path", "")),
                message=one_line(str(m.get("error", ""))),
            )
            for m in report.get("messages", [])
        ]

    def validate_values_schema(self, chart_dir: Path, values: Mapping[str, Any]) -> None:
        with _chart_errors(chart_dir), helm.Chart.load(chart_dir) as chart:
            chart.validate_schema(plain_values(values))

    def build_dependencies(self, chart_dir: Path, only: Collection[str] | None = None) -> None:
        self._dependencies.run(chart_dir, only, lambda: self._build_dependencies(chart_dir, only))

    def _build_dependencies(self, chart_dir: Path, only: Collection[str] | None = None) -> None:
        resolve_dependencies(
            chart_dir,
            list_dependencies=_dependency_states,
            package_chart=_package,
            pull_chart=_pull if self.fetch_dependencies else None,
            cache_dir=self.chart_cache,
            only=only,
        )

    # --- releases -------------------------------------------------------------------------

    def dry_run_install(
        self,
        creds: ClusterCredentials | None,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> ReleaseInfo:
        # memory storage: a client dry run must not even read release storage.
        with (
            _loaded(chart_dir) as chart,
            _config(creds, namespace, storage_driver="memory") as cfg,
            _release_errors(creds, chart_dir, release, namespace, "dry-run install"),
        ):
            summary = cfg.install(
                chart, release, plain_values(values), namespace=namespace, dry_run="client"
            )
        return release_from_summary(summary)

    def planned_upgrade(
        self,
        creds: ClusterCredentials,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> ReleaseInfo:
        with (
            _loaded(chart_dir) as chart,
            _config(creds, namespace) as cfg,
            _release_errors(creds, chart_dir, release, namespace, "dry-run upgrade"),
        ):
            summary = cfg.upgrade(
                chart, release, plain_values(values), namespace=namespace, dry_run="server"
            )
        return release_from_summary(summary)

    def status(self, creds: ClusterCredentials, release: str, namespace: str) -> ReleaseInfo | None:
        # `get all` rather than `status`: the same latest revision, plus its description,
        # without Helm 4 fetching every live object of the release.
        with (
            _config(creds, namespace) as cfg,
            _release_errors(creds, None, release, namespace, "status"),
        ):
            try:
                stored = cfg.get_all(release)
            except helm.HelmNotFoundError:
                return None
        return release_from_summary(stored["summary"], stored.get("info"))

    def history(self, creds: ClusterCredentials, release: str, namespace: str) -> list[ReleaseInfo]:
        with (
            _config(creds, namespace) as cfg,
            _release_errors(creds, None, release, namespace, "history"),
        ):
            try:
                summaries = cfg.history(release)
            except helm.HelmNotFoundError:
                return []
            revisions = []
            for summary in summaries:
                # history summaries carry no description; each revision's record does.
                try:
                    info = cfg.get_all(release, revision=int(summary["revision"])).get("info")
                except helm.HelmNotFoundError:
                    info = None
                entry = release_from_summary(summary, info)
                revisions.append(replace(entry, manifest=""))
        return revisions

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
        strategy = "watcher" if wait else "hookOnly"
        rollback = rollback_on_failure and wait
        with _loaded(chart_dir) as chart, _config(creds, namespace) as cfg:
            with _release_errors(creds, None, release, namespace, "history"):
                try:
                    exists = bool(cfg.history(release, max_revisions=1))
                except helm.HelmNotFoundError:
                    exists = False
            action = "upgrade" if exists else "install"
            with _release_errors(creds, chart_dir, release, namespace, action, timeout_s):
                if exists:
                    summary = cfg.upgrade(
                        chart,
                        release,
                        plain_values(values),
                        namespace=namespace,
                        timeout=timeout_s,
                        wait=strategy,
                        max_history=HISTORY_MAX,
                        rollback_on_failure=rollback,
                    )
                else:
                    summary = cfg.install(
                        chart,
                        release,
                        plain_values(values),
                        namespace=namespace,
                        timeout=timeout_s,
                        wait=strategy,
                        create_namespace=create_namespace,
                        rollback_on_failure=rollback,
                    )
        return release_from_summary(summary)

    def rollback(
        self,
        creds: ClusterCredentials,
        release: str,
        namespace: str,
        revision: int | None = None,
    ) -> None:
        with (
            _config(creds, namespace) as cfg,
            _release_errors(creds, None, release, namespace, "rollback"),
        ):
            cfg.rollback(release, version=revision)

    def uninstall(
        self, creds: ClusterCredentials, release: str, namespace: str, timeout_s: int
    ) -> None:
        with (
            _config(creds, namespace) as cfg,
            _release_errors(creds, None, release, namespace, "uninstall", timeout_s),
        ):
            cfg.uninstall(release, timeout=timeout_s)


# --- records ------------------------------------------------------------------------------


def release_from_summary(
    summary: Mapping[str, Any], info: Mapping[str, Any] | None = None
) -> ReleaseInfo:
    """ReleaseInfo from the SDK's release summary (and the stored record's `info`, if any)."""
    info = info or {}
    return ReleaseInfo(
        name=str(summary.get("name", "")),
        namespace=str(summary.get("namespace", "")),
        revision=int(summary.get("revision", 0)),
        status=str(summary.get("status", info.get("status", ""))),
        chart=str(summary.get("chart_name", "")),
        chart_version=str(summary.get("chart_version", "")),
        app_version=str(summary.get("app_version", "")),
        updated=str(summary.get("deployed_at", info.get("last_deployed", ""))),
        description=str(info.get("description", "")),
        manifest=str(summary.get("manifest", "")),
    )


# --- dependencies -------------------------------------------------------------------------


def _dependency_states(chart_dir: Path) -> list[DependencyState]:
    with _chart_errors(chart_dir):
        listed = helm.dependency_list(chart_dir)
    return [
        DependencyState(
            name=str(d.get("name", "")),
            version=str(d.get("version", "")),
            repository=str(d.get("repository", "")),
            status=str(d.get("status", "")),
        )
        for d in listed
    ]


def _package(source: Path, destination: Path) -> None:
    with _chart_errors(source):
        helm.package(source, destination=destination)


def pull_chart(name: str, version: str, repository: str, destination: Path) -> None:
    """Fetch chart `name` `version` from `repository` (HTTP or oci://) into `destination`."""
    _pull(DependencyState(name, version, repository, "missing"), destination)


def _pull(dep: DependencyState, cache_dir: Path) -> None:
    try:
        if dep.repository.startswith("oci://"):
            ref = f"{dep.repository.rstrip('/')}/{dep.name}"
            helm.pull(ref, version=dep.version, destination=cache_dir)
        else:
            helm.pull(dep.name, repo_url=dep.repository, version=dep.version, destination=cache_dir)
    except helm.HelmError as err:
        raise HubfleetError(one_line(str(err))) from err


# --- configs and errors -------------------------------------------------------------------


@contextlib.contextmanager
def _config(
    creds: ClusterCredentials | None, namespace: str, *, storage_driver: str | None = None
) -> Iterator[helm.Config]:
    """A Config for one call. A member's kubeconfig is handed over as a 0600 file in a private
    0700 directory that is removed when the call ends (the SDK's own inline option would
    leave it loose in $TMPDIR)."""
    with contextlib.ExitStack() as stack:
        path = (
            None if creds is None else stack.enter_context(kubeconfig_file(creds.kubeconfig_yaml()))
        )
        try:
            cfg = helm.Config(
                kubeconfig_content=EMPTY_KUBECONFIG if path is None else None,
                kubeconfig_path=path,
                kube_context=None if creds is None else creds.context,
                namespace=namespace,
                storage_driver=storage_driver,
            )
        except helm.HelmError as err:
            raise ClusterError(
                f"{cluster_label(creds)}: kubeconfig rejected by Helm: {one_line(str(err))}"
            ) from err
        with cfg:
            yield cfg


@contextlib.contextmanager
def _loaded(chart_dir: Path) -> Iterator[helm.Chart]:
    """The chart loaded once for a release action (load errors name the chart directory)."""
    with _chart_errors(chart_dir):
        chart = helm.Chart.load(chart_dir)
    with chart:
        yield chart


@contextlib.contextmanager
def _chart_errors(chart_dir: Path) -> Iterator[None]:
    """Offline chart operations: Helm errors become RenderError / ConfigError."""
    try:
        yield
    except helm.HelmError as err:
        _raise_chart_error(chart_dir, err)


def _raise_chart_error(chart_dir: Path, err: helm.HelmError) -> NoReturn:
    detail = str(err)
    shown = shown_path(chart_dir)
    if isinstance(err, helm.HelmValuesError):
        raise schema_error(chart_dir, detail) or ConfigError(
            f"chart {shown}: values rejected: {one_line(detail)}"
        ) from err
    if isinstance(err, helm.HelmRenderError):
        raise RenderError(render_error_message(chart_dir, detail)) from err
    if isinstance(err, helm.HelmChartLoadError | helm.HelmChartInvalidError | helm.HelmIOError):
        raise RenderError(f"chart {shown}: cannot load the chart: {one_line(detail)}") from err
    raise RenderError(f"chart {shown}: helm failed: {one_line(detail)}") from err


@contextlib.contextmanager
def _release_errors(
    creds: ClusterCredentials | None,
    chart_dir: Path | None,
    release: str,
    namespace: str,
    action: str,
    timeout_s: int | None = None,
) -> Iterator[None]:
    """Release operations: unreachable clusters, refusals and timeouts become one line."""
    try:
        yield
    except helm.HelmError as err:
        if chart_dir is not None and isinstance(
            err, helm.HelmValuesError | helm.HelmRenderError | helm.HelmChartLoadError
        ):
            _raise_chart_error(chart_dir, err)
        if isinstance(err, helm.HelmKubeError) and "unreachable" not in str(err).lower():
            raise ClusterError(f"{cluster_label(creds)}: {action}: {one_line(str(err))}") from err
        if isinstance(err, helm.HelmCancelledError):
            raise HubfleetError(
                f"{cluster_label(creds)}: release {release}: {action} cancelled"
            ) from err
        raise release_failure(
            str(err),
            creds=creds,
            chart_dir=chart_dir,
            release=release,
            namespace=namespace,
            action=action,
            timeout_s=timeout_s,
        ) from err
