"""charts.update and charts.check against a real chart repository on loopback: the real
upstream charts (../shared/charts) served over HTTP with an index the Helm SDK made, fetched by
the Helm SDK, pinned by digest in charts.lock, and refused when they change."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import helm_python
import pytest
import yaml

from hubfleet.deploy.member import render_member
from hubfleet.errors import ConfigError, RenderError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.dependencies import declared_dependencies
from hubfleet.helm.lock import LOCK_FILE, archive_digest, check_charts, read_lock, update_charts
from hubfleet.helm.sdk import SdkEngine, pull_chart
from hubfleet.registry.members import load_registry
from tests.conftest_repo import PROJECT, MakeRepo
from tests.test_real_charts import SHARED_CHARTS
from tests.test_umbrella_chart import umbrella_repo

PINNED = (
    "binderhub-1.0.0-0.dev.git.3959.hb9fad995.tgz",
    "jupyterhub-4.2.0.tgz",
    "harbor-1.18.1.tgz",
)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The pinned real charts served on 127.0.0.1 as a Helm chart repository."""
    served = tmp_path / "served"
    served.mkdir()
    for name in PINNED:
        shutil.copy(SHARED_CHARTS / name, served / name)
    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm_python.repo_index_generate(served, base_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, served
    finally:
        server.shutdown()
        server.server_close()


def repo_on(deploy_repo: MakeRepo, url: str) -> DeployRepo:
    repo = umbrella_repo(
        deploy_repo,
        members={"binder": {"domain": "binder.example.org"}},
        values={"binder": {}},
        secrets={"binder": {"binderhub": {"jupyterhub": {"hub": {"cookieSecret": "a" * 64}}}}},
    )
    chart_yaml = repo.root / "chart" / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    for dep in meta["dependencies"]:
        dep["repository"] = url  # the same charts, from the loopback repository
    chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    return repo


def test_update_fetches_the_pins_records_their_digests_and_is_idempotent(
    deploy_repo: MakeRepo, chart_repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = chart_repository
    repo = repo_on(deploy_repo, url)
    chart_dir = repo.root / "chart"
    cache = tmp_path / "cache"
    said: list[str] = []
    entries = update_charts(
        chart_dir, declared_dependencies(chart_dir), cache, pull_chart, said.append
    )
    assert sorted(p.name for p in cache.iterdir()) == sorted(PINNED)
    for name in PINNED:
        assert (cache / name).read_bytes() == (served / name).read_bytes()
    lock = read_lock(chart_dir)
    assert {e.name: e.digest for e in entries} == {n: e.digest for n, e in lock.items()}
    assert lock["harbor"].digest == archive_digest(served / "harbor-1.18.1.tgz")
    assert all("fetched" in line and "recorded" in line for line in said)
    states = check_charts(chart_dir, declared_dependencies(chart_dir), cache)
    assert [s.state for s in states] == ["ok", "ok", "ok"]

    before = (chart_dir / LOCK_FILE).read_bytes()
    again: list[str] = []
    update_charts(chart_dir, declared_dependencies(chart_dir), cache, pull_chart, again.append)
    assert all("in the cache" in line and "as locked" in line for line in again)
    assert (chart_dir / LOCK_FILE).read_bytes() == before

    # the locked charts render the member
    member = load_registry(repo).member("binder")
    render_member(repo, member, SdkEngine(chart_cache=cache))


def test_a_chart_that_changed_is_refused_by_deploy_check_and_update(
    deploy_repo: MakeRepo, chart_repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = chart_repository
    repo = repo_on(deploy_repo, url)
    chart_dir = repo.root / "chart"
    cache = tmp_path / "cache"
    update_charts(chart_dir, declared_dependencies(chart_dir), cache, pull_chart, lambda _: None)
    tampered = cache / PINNED[0]
    tampered.write_bytes(tampered.read_bytes() + b"\0")  # another archive, same name
    states = check_charts(chart_dir, declared_dependencies(chart_dir), cache)
    assert states[0].state == "wrong-digest" and "remove it from the cache" in states[0].line()
    member = load_registry(repo).member("binder")
    with pytest.raises(RenderError, match=r"digest sha256:[0-9a-f]+ is not the sha256:"):
        render_member(repo, member, SdkEngine(chart_cache=cache))
    with pytest.raises(ConfigError, match=r"the chart changed since it was reviewed"):
        update_charts(chart_dir, declared_dependencies(chart_dir), cache, pull_chart, print)


def test_check_names_what_is_missing_and_exits_1(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = repo_on(deploy_repo, "https://charts.example.org")
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(SHARED_CHARTS / "jupyterhub-4.2.0.tgz", cache / "jupyterhub-4.1.0.tgz")
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "charts.check"],
        cwd=PROJECT,
        env={
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(tmp_path),
            "HUBFLEET_ROOT": str(repo.root),
            "HUBFLEET_CHART_CACHE": str(cache),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[1] == (
        "  missing: binderhub 1.0.0-0.dev.git.3959.hb9fad995 from https://charts.example.org; "
        "fetch it: invoke charts.update"
    )
    assert lines[2] == (
        "  missing: jupyterhub 4.2.0 from https://charts.example.org (the cache has 4.1.0); "
        "fetch it: invoke charts.update"
    )
    assert done.stderr == (
        "error: chart chart: binderhub 1.0.0-0.dev.git.3959.hb9fad995, jupyterhub 4.2.0, "
        "harbor 1.18.1 not as pinned; run invoke charts.update\n"
    )
