"""Building the argv of each `helm` command the CLI engine runs: pure functions."""

from __future__ import annotations

from pathlib import Path

from hubfleet.helm.engine import HISTORY_MAX, DependencyState

HISTORY_LIMIT = 256


def kube_args(kubeconfig: Path, context: str | None) -> list[str]:
    return ["--kubeconfig", str(kubeconfig)] + (["--kube-context", context] if context else [])


def render_argv(chart_dir: Path, release: str, namespace: str, *, helm: str = "helm") -> list[str]:
    return [helm, "template", release, str(chart_dir), "--namespace", namespace, "--values", "-"]


def lint_argv(chart_dir: Path, *, helm: str = "helm") -> list[str]:
    return [helm, "lint", str(chart_dir), "--values", "-"]


def dry_run_argv(
    chart_dir: Path,
    release: str,
    namespace: str,
    *,
    kubeconfig: Path,
    context: str | None,
    helm: str = "helm",
) -> list[str]:
    return [
        *[helm, "install", release, str(chart_dir), "--namespace", namespace],
        *["--dry-run=client", "--values", "-", "--output", "json"],
        *kube_args(kubeconfig, context),
    ]


def upgrade_argv(
    chart_dir: Path,
    release: str,
    namespace: str,
    *,
    kubeconfig: Path,
    context: str | None,
    timeout_s: int,
    wait: bool,
    create_namespace: bool = True,
    rollback_on_failure: bool = True,
    helm_major: int = 4,
    helm: str = "helm",
    dry_run: bool = False,
) -> list[str]:
    """`helm upgrade --install`; rollback on failure only with --wait (Helm needs to wait to
    see a failure). Helm 4 calls it --rollback-on-failure; Helm 3 called it --atomic. With
    `dry_run`, a server-side dry run (rendered against the cluster, nothing changed)."""
    argv = [
        *[helm, "upgrade", "--install", release, str(chart_dir), "--namespace", namespace],
        *["--values", "-", "--output", "json", "--history-max", str(HISTORY_MAX)],
        *["--timeout", f"{timeout_s}s"],
    ]
    if dry_run:
        argv.append("--dry-run=server")
    elif create_namespace:
        argv.append("--create-namespace")
    if wait and not dry_run:
        argv.append("--wait")
        if rollback_on_failure:
            argv.append("--rollback-on-failure" if helm_major >= 4 else "--atomic")
    return argv + kube_args(kubeconfig, context)


def status_argv(
    release: str, namespace: str, *, kubeconfig: Path, context: str | None, helm: str = "helm"
) -> list[str]:
    return [
        *[helm, "status", release, "--namespace", namespace, "--output", "json"],
        *kube_args(kubeconfig, context),
    ]


def history_argv(
    release: str, namespace: str, *, kubeconfig: Path, context: str | None, helm: str = "helm"
) -> list[str]:
    return [
        *[helm, "history", release, "--namespace", namespace, "--output", "json"],
        *["--max", str(HISTORY_LIMIT), *kube_args(kubeconfig, context)],
    ]


def rollback_argv(
    release: str,
    namespace: str,
    revision: int | None,
    *,
    kubeconfig: Path,
    context: str | None,
    helm: str = "helm",
) -> list[str]:
    target = [] if revision is None else [str(revision)]
    return [
        *[helm, "rollback", release, *target, "--namespace", namespace],
        *kube_args(kubeconfig, context),
    ]


def dependency_list_argv(chart_dir: Path, *, helm: str = "helm") -> list[str]:
    return [helm, "dependency", "list", str(chart_dir)]


def package_argv(source: Path, destination: Path, *, helm: str = "helm") -> list[str]:
    return [helm, "package", str(source), "--destination", str(destination)]


def pull_argv(dep: DependencyState, destination: Path, *, helm: str = "helm") -> list[str]:
    if dep.repository.startswith("oci://"):
        ref = [f"{dep.repository.rstrip('/')}/{dep.name}"]
    else:
        ref = [dep.name, "--repo", dep.repository]
    return [helm, "pull", *ref, "--version", dep.version, "--destination", str(destination)]


def version_argv(*, helm: str = "helm") -> list[str]:
    return [helm, "version", "--template", "{{.Version}}"]


# --- running helm -------------------------------------------------------------------------


def uninstall_argv(
    release: str,
    namespace: str,
    *,
    kubeconfig: Path,
    context: str | None,
    timeout_s: int,
    helm: str = "helm",
) -> list[str]:
    return [
        *[helm, "uninstall", release, "--namespace", namespace, "--timeout", f"{timeout_s}s"],
        *kube_args(kubeconfig, context),
    ]
