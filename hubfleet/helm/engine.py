"""The Helm engine: one small interface, its records, and the pick of an implementation.

Two implementations exist: `hubfleet.helm.sdk` (the default: the embedded Helm Go SDK, values
and kubeconfig passed in memory) and `hubfleet.helm.cli` (the `helm` binary, values on stdin),
picked by `hubfleet.helm.engine_from_env` from `HUBFLEET_HELM`. Neither is imported until it
is picked, so importing this module stays cheap.

What both engines share beyond the interface lives beside it: `hubfleet.helm.errors` turns
Helm's multi-line error texts into hubfleet's one-line messages, `hubfleet.helm.dependencies`
resolves chart dependencies offline first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hubfleet.kube.credentials import ClusterCredentials

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

    def build_dependencies(self, chart_dir: Path, only: Collection[str] | None = None) -> None:
        """Make sure every Chart.yaml dependency (or those named in `only`: the ones the
        member's values enable) is in charts/, offline first. Raises RenderError naming the
        dependency, its repository and how to vendor it."""
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

    def planned_upgrade(
        self,
        creds: ClusterCredentials,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> ReleaseInfo:
        """What an upgrade of the installed release would store (its manifest), rendered
        against the cluster, as the upgrade itself renders: `lookup` sees the live objects
        (secrets a chart generated once and keeps) and capabilities are the cluster's (which
        API versions a chart picks). A server-side dry run: nothing is changed."""
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

    def uninstall(
        self, creds: ClusterCredentials, release: str, namespace: str, timeout_s: int
    ) -> None:
        """Remove the release and every object it made (its history too)."""
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
