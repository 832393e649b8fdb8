"""The Helm engine over the `helm` CLI (v3 or v4), picked by HUBFLEET_HELM=cli.

Values go to helm on stdin (`--values -`) as YAML, never into argv or a file. A member's
kubeconfig is written to a 0600 file in a 0700 temporary directory for the length of one
helm run, passed by `--kubeconfig` and `--kube-context`, and removed afterwards, also on
failure; the child's environment loses KUBECONFIG and HELM_KUBE* so nothing else can steer it.
Release data is read with `-o json`. Building argv is pure functions in `hubfleet.helm.cli_argv`;
reading what helm prints (and its failures) is pure functions in `hubfleet.helm.cli_output`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from hubfleet.errors import HubfleetError, RenderError
from hubfleet.helm.cli_argv import (
    dependency_list_argv,
    dry_run_argv,
    history_argv,
    lint_argv,
    package_argv,
    pull_argv,
    render_argv,
    rollback_argv,
    status_argv,
    uninstall_argv,
    upgrade_argv,
    version_argv,
)
from hubfleet.helm.cli_output import (
    chart_error,
    error_text,
    helm_major_from_version,
    history_from_json,
    parse_dependency_list,
    parse_lint_output,
    parse_template_output,
    release_error,
    release_from_json,
    release_json,
    values_yaml,
)
from hubfleet.helm.dependencies import ResolvedOnce, resolve_dependencies
from hubfleet.helm.engine import (
    EMPTY_KUBECONFIG,
    DependencyState,
    LintFinding,
    ReleaseInfo,
)
from hubfleet.helm.errors import failure_kind, one_line, shown_path
from hubfleet.kube.credentials import ClusterCredentials, kubeconfig_file

MISSING_HELM = "helm CLI not found on PATH (HUBFLEET_HELM=cli); install helm or unset HUBFLEET_HELM"
# Offline commands finish in seconds; a cluster command without its own --timeout gets this.
OFFLINE_TIMEOUT_S = 300


class CliEngine:
    """HelmEngine over the `helm` binary found on the PATH of `environ`."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        chart_cache: Path | None = None,
        fetch_dependencies: bool = False,
        helm_major: int | None = None,
    ):
        self.environ = dict(environ)
        self._dependencies = ResolvedOnce()
        self.chart_cache = chart_cache
        self.fetch_dependencies = fetch_dependencies
        self._helm_major = helm_major

    # --- plumbing -------------------------------------------------------------------------

    @property
    def helm(self) -> str:
        found = shutil.which("helm", path=self.environ.get("PATH", os.defpath))
        if not found:
            raise HubfleetError(MISSING_HELM)
        return found

    def helm_major(self) -> int:
        if self._helm_major is None:
            proc = self._run(version_argv(helm=self.helm))
            self._helm_major = helm_major_from_version(proc.stdout)
        return self._helm_major

    def child_env(self) -> dict[str, str]:
        """The environment helm runs in: nothing that picks a cluster or credentials."""
        return {
            k: v
            for k, v in self.environ.items()
            if k != "KUBECONFIG" and not k.startswith("HELM_KUBE") and k != "HELM_NAMESPACE"
        }

    def _run(
        self, argv: list[str], stdin: str = "", timeout_s: int = OFFLINE_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=self.child_env(),
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise HubfleetError(f"helm {argv[1]} did not finish within {timeout_s}s") from err
        except FileNotFoundError as err:
            raise HubfleetError(MISSING_HELM) from err

    @contextlib.contextmanager
    def _kubeconfig(self, creds: ClusterCredentials | None) -> Iterator[Path]:
        with kubeconfig_file(EMPTY_KUBECONFIG if creds is None else creds.kubeconfig_yaml()) as p:
            yield p

    def _chart_present(self, chart_dir: Path) -> None:
        """Fail early, and plainly, when there is no chart where one is expected."""
        if not (chart_dir / "Chart.yaml").is_file():
            raise RenderError(
                f"chart {shown_path(chart_dir)}: cannot load the chart: no Chart.yaml there"
            )

    # --- offline: charts and values -------------------------------------------------------

    def render(
        self, chart_dir: Path, release: str, namespace: str, values: Mapping[str, Any]
    ) -> dict[str, str]:
        self._chart_present(chart_dir)
        proc = self._run(
            render_argv(chart_dir, release, namespace, helm=self.helm), values_yaml(values)
        )
        if proc.returncode != 0:
            raise chart_error(chart_dir, proc)
        return parse_template_output(proc.stdout)

    def lint(self, chart_dir: Path, values: Mapping[str, Any]) -> list[LintFinding]:
        self._chart_present(chart_dir)
        proc = self._run(lint_argv(chart_dir, helm=self.helm), values_yaml(values))
        findings = parse_lint_output(proc.stdout)
        if proc.returncode != 0 and not findings:
            raise chart_error(chart_dir, proc)
        return findings

    def validate_values_schema(self, chart_dir: Path, values: Mapping[str, Any]) -> None:
        self._chart_present(chart_dir)
        # helm has no schema-only command; `template` checks the schema before rendering.
        proc = self._run(
            render_argv(chart_dir, "schema-check", "default", helm=self.helm), values_yaml(values)
        )
        if proc.returncode != 0 and failure_kind(error_text(proc)) != "render":
            raise chart_error(chart_dir, proc)

    def build_dependencies(self, chart_dir: Path, only: Collection[str] | None = None) -> None:
        self._dependencies.run(chart_dir, only, lambda: self._build_dependencies(chart_dir, only))

    def _build_dependencies(self, chart_dir: Path, only: Collection[str] | None = None) -> None:
        def list_dependencies(chart: Path) -> list[DependencyState]:
            proc = self._run(dependency_list_argv(chart, helm=self.helm))
            if proc.returncode != 0:
                raise chart_error(chart, proc)
            return parse_dependency_list(proc.stdout)

        def package_chart(source: Path, destination: Path) -> None:
            proc = self._run(package_argv(source, destination, helm=self.helm))
            if proc.returncode != 0:
                raise chart_error(source, proc)

        def pull_chart(dep: DependencyState, cache_dir: Path) -> None:
            proc = self._run(pull_argv(dep, cache_dir, helm=self.helm))
            if proc.returncode != 0:
                raise HubfleetError(one_line(error_text(proc)))

        resolve_dependencies(
            chart_dir,
            list_dependencies=list_dependencies,
            package_chart=package_chart,
            pull_chart=pull_chart if self.fetch_dependencies else None,
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
        self._chart_present(chart_dir)
        with self._kubeconfig(creds) as kubeconfig:
            argv = dry_run_argv(
                chart_dir,
                release,
                namespace,
                kubeconfig=kubeconfig,
                context=None if creds is None else creds.context,
                helm=self.helm,
            )
            proc = self._run(argv, values_yaml(values))
        if proc.returncode != 0:
            raise release_error(proc, creds, chart_dir, release, namespace, "dry-run install")
        return release_from_json(release_json(proc, creds, release, namespace))

    def status(self, creds: ClusterCredentials, release: str, namespace: str) -> ReleaseInfo | None:
        with self._kubeconfig(creds) as kubeconfig:
            argv = status_argv(
                release, namespace, kubeconfig=kubeconfig, context=creds.context, helm=self.helm
            )
            proc = self._run(argv)
        if proc.returncode != 0:
            if failure_kind(error_text(proc)) == "not-found":
                return None
            raise release_error(proc, creds, None, release, namespace, "status")
        return release_from_json(release_json(proc, creds, release, namespace))

    def history(self, creds: ClusterCredentials, release: str, namespace: str) -> list[ReleaseInfo]:
        with self._kubeconfig(creds) as kubeconfig:
            argv = history_argv(
                release, namespace, kubeconfig=kubeconfig, context=creds.context, helm=self.helm
            )
            proc = self._run(argv)
        if proc.returncode != 0:
            if failure_kind(error_text(proc)) == "not-found":
                return []
            raise release_error(proc, creds, None, release, namespace, "history")
        return history_from_json(release_json(proc, creds, release, namespace), release, namespace)

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
        self._chart_present(chart_dir)
        major = self.helm_major() if wait and rollback_on_failure else 4
        with self._kubeconfig(creds) as kubeconfig:
            argv = upgrade_argv(
                chart_dir,
                release,
                namespace,
                kubeconfig=kubeconfig,
                context=creds.context,
                timeout_s=timeout_s,
                wait=wait,
                create_namespace=create_namespace,
                rollback_on_failure=rollback_on_failure,
                helm_major=major,
                helm=self.helm,
            )
            # helm enforces --timeout itself; the margin covers its own start and rollback.
            proc = self._run(argv, values_yaml(values), timeout_s=2 * timeout_s + 60)
        if proc.returncode != 0:
            raise release_error(proc, creds, chart_dir, release, namespace, "upgrade", timeout_s)
        return release_from_json(release_json(proc, creds, release, namespace))

    def planned_upgrade(
        self,
        creds: ClusterCredentials,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> ReleaseInfo:
        self._chart_present(chart_dir)
        with self._kubeconfig(creds) as kubeconfig:
            argv = upgrade_argv(
                chart_dir,
                release,
                namespace,
                kubeconfig=kubeconfig,
                context=creds.context,
                timeout_s=300,
                wait=False,
                helm=self.helm,
                dry_run=True,
            )
            proc = self._run(argv, values_yaml(values), timeout_s=360)
        if proc.returncode != 0:
            raise release_error(proc, creds, chart_dir, release, namespace, "dry-run upgrade", 300)
        return release_from_json(release_json(proc, creds, release, namespace))

    def uninstall(
        self, creds: ClusterCredentials, release: str, namespace: str, timeout_s: int
    ) -> None:
        with self._kubeconfig(creds) as kubeconfig:
            argv = uninstall_argv(
                release,
                namespace,
                kubeconfig=kubeconfig,
                context=creds.context,
                timeout_s=timeout_s,
                helm=self.helm,
            )
            proc = self._run(argv, timeout_s=timeout_s + 60)
        if proc.returncode != 0:
            raise release_error(proc, creds, None, release, namespace, "uninstall", timeout_s)

    def rollback(
        self,
        creds: ClusterCredentials,
        release: str,
        namespace: str,
        revision: int | None = None,
    ) -> None:
        with self._kubeconfig(creds) as kubeconfig:
            argv = rollback_argv(
                release,
                namespace,
                revision,
                kubeconfig=kubeconfig,
                context=creds.context,
                helm=self.helm,
            )
            proc = self._run(argv)
        if proc.returncode != 0:
            raise release_error(proc, creds, None, release, namespace, "rollback")
