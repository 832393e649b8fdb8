"""charts.check and charts.update: a chart's dependencies in the chart cache, pinned by version
(Chart.yaml) and by digest (charts.lock). Thin: flags in, hubfleet.helm.lock out."""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task

CHART_HELP = "the chart whose dependencies to look at (default: chart, the umbrella chart)"


@task(help={"chart": CHART_HELP, "debug": DEBUG_HELP})
def check(c: Context, chart: str = "chart", debug: bool = False) -> None:
    """Say, offline, whether the chart cache holds every dependency as pinned and locked.

    For each dependency in Chart.yaml: there at the pinned version with the digest charts.lock
    records (ok), missing (or only other versions), or a different digest. Exits 1 unless
    every one is there; the fix is invoke charts.update.
    """

    def body() -> None:
        import os

        from hubfleet.errors import ConfigError
        from hubfleet.files.repo import find_repo
        from hubfleet.helm.dependencies import chart_cache_from_env, declared_dependencies
        from hubfleet.helm.lock import check_charts

        repo = find_repo()
        chart_dir = repo.root / chart
        cache = chart_cache_from_env(os.environ)
        states = check_charts(chart_dir, declared_dependencies(chart_dir), cache)
        print(f"chart {chart}: dependencies in the chart cache {cache}")
        for state in states:
            print(f"  {state.line()}")
        bad = [s for s in states if s.state not in ("ok", "unlocked")]
        if bad:
            names = ", ".join(f"{s.name} {s.version}" for s in bad)
            raise ConfigError(f"chart {chart}: {names} not as pinned; run invoke charts.update")

    run_front(body, debug)


@task(help={"chart": CHART_HELP, "debug": DEBUG_HELP})
def update(c: Context, chart: str = "chart", debug: bool = False) -> None:
    """Fetch the chart's pinned dependencies into the chart cache and verify them (network).

    Each dependency of Chart.yaml at its pinned version, from its repository, unless the cache
    has it. Its digest is recorded in charts.lock beside Chart.yaml the first time (commit
    it), and checked against it after: a chart whose digest changed is refused, not recorded.
    """

    def body() -> None:
        import os

        from hubfleet.errors import ConfigError
        from hubfleet.files.repo import find_repo
        from hubfleet.helm.dependencies import chart_cache_from_env, declared_dependencies
        from hubfleet.helm.lock import update_charts
        from hubfleet.helm.sdk import pull_chart

        repo = find_repo()
        chart_dir = repo.root / chart
        cache = chart_cache_from_env(os.environ)
        if cache is None:
            raise ConfigError("no chart cache: set HUBFLEET_CHART_CACHE (or HOME)")
        entries = update_charts(
            chart_dir, declared_dependencies(chart_dir), cache, pull_chart, print
        )
        print(f"chart {chart}: {len(entries)} dependencies in {cache}, as {chart}/charts.lock says")

    run_front(body, debug)
