"""The umbrella chart with the REAL upstream charts (../shared/charts as the chart cache):
binderhub (its jupyterhub inside), jupyterhub, harbor, at the versions chart/Chart.yaml pins.

What the stub-chart tests cannot show: the real schemas accept what the umbrella hands them
(and refuse what they should), a member's stack is rendered whole, nested charts included,
and `invoke validate` does not say ok where a deploy would fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.deploy.member import DeployOptions, deploy_member, render_member
from hubfleet.deploy.validate import validate_federation
from hubfleet.errors import ConfigError, RenderError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.dependencies import declared_dependencies
from hubfleet.helm.sdk import SdkEngine
from hubfleet.registry.members import load_registry
from tests.conftest_repo import PROJECT, MakeRepo
from tests.test_umbrella_chart import ALPHA_HARBOR, ALPHA_S3_REGION, harbor_keys, umbrella_repo

SHARED_CHARTS = PROJECT.parent / "shared" / "charts"
HUB_SECRETS = {"jupyterhub": {"hub": {"cookieSecret": "a" * 64}}}


@pytest.fixture(scope="module")
def real_charts() -> Path:
    # beside the repo in every development checkout and in CI: its absence is a failure,
    # never a skip (these tests are the evidence for every claim about the real charts)
    assert SHARED_CHARTS.is_dir(), f"{SHARED_CHARTS} is missing: the real upstream charts"
    return SHARED_CHARTS


def test_the_umbrella_pins_the_versions_of_the_real_charts(real_charts: Path) -> None:
    for dep in declared_dependencies(PROJECT / "chart"):
        packaged = real_charts / f"{dep['name']}-{dep['version']}.tgz"
        assert packaged.is_file(), f"chart/Chart.yaml pins {dep['name']} {dep['version']}"


def stack_repo(deploy_repo: MakeRepo) -> DeployRepo:
    """binder: BinderHub (the default); hub: JupyterHub alone; registry: BinderHub and Harbor."""
    return umbrella_repo(
        deploy_repo,
        members={
            "binder": {"domain": "binder.example.org"},
            "hub": {"domain": "hub.example.org"},
            "registry": {"domain": "registry.example.org", "s3": ALPHA_S3_REGION},
        },
        values={
            "binder": {},
            "hub": {"binderhubEnabled": False, "jupyterhubEnabled": True},
            "registry": {"harborEnabled": True, "harbor": ALPHA_HARBOR},
        },
        secrets={
            "binder": {"binderhub": HUB_SECRETS},
            "hub": {"jupyterhub": {"hub": {"cookieSecret": "b" * 64}}},
            "registry": {"binderhub": HUB_SECRETS, **harbor_keys()},
        },
    )


def kinds_and_names(objects: list[dict[str, Any]]) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in objects}


def test_each_member_shape_renders_with_the_real_charts(
    deploy_repo: MakeRepo, real_charts: Path
) -> None:
    repo = stack_repo(deploy_repo)
    registry = load_registry(repo)
    engine = SdkEngine(chart_cache=real_charts)

    binder = kinds_and_names(render_member(repo, registry.member("binder"), engine).objects)
    assert "Deployment/binder" in binder  # BinderHub itself
    assert "Deployment/hub" in binder  # the jupyterhub chart nested inside binderhub
    assert not any("harbor" in name for name in binder)
    vendored = sorted(p.name for p in (repo.root / "chart" / "charts").iterdir())
    assert vendored == ["binderhub-1.0.0-0.dev.git.3959.hb9fad995.tgz"]  # no harbor, no jupyterhub

    hub = kinds_and_names(render_member(repo, registry.member("hub"), engine).objects)
    assert "Deployment/hub" in hub and "Deployment/binder" not in hub

    with_harbor = kinds_and_names(render_member(repo, registry.member("registry"), engine).objects)
    assert "Deployment/binder" in with_harbor
    assert {"Deployment/registry-harbor-core", "Deployment/registry-harbor-registry"} <= with_harbor


def test_validate_passes_the_real_stacks_and_agrees_with_a_dry_run(
    deploy_repo: MakeRepo, real_charts: Path
) -> None:
    repo = stack_repo(deploy_repo)
    engine = SdkEngine(chart_cache=real_charts)
    report = validate_federation(repo, engine)
    assert report.problems == ()
    assert report.members_checked == ("binder", "hub", "registry")
    for name in report.members_checked:
        planned = deploy_member(repo, name, engine, DeployOptions(dry_run=True), say=lambda _: None)
        assert planned.outcome == "planned"


def test_a_key_the_real_binderhub_schema_refuses_fails_validate_and_deploy_alike(
    deploy_repo: MakeRepo, real_charts: Path
) -> None:
    repo = umbrella_repo(
        deploy_repo,
        members={"old": {"domain": "old.example.org"}},
        # the umbrella's switch as it used to be: inside binderhub's own values
        values={"old": {"binderhub": {"enabled": True}}},
        secrets={"old": {"binderhub": HUB_SECRETS}},
    )
    engine = SdkEngine(chart_cache=real_charts)
    (problem,) = validate_federation(repo, engine).problems
    assert problem.startswith("member old: ")
    assert problem == (
        "member old: chart chart/: values fail values.schema.json: "
        "binderhub.enabled: not a key this chart has (config/old.yaml:2)"
    )
    with pytest.raises(ConfigError) as err:
        deploy_member(repo, "old", engine, DeployOptions(dry_run=True), say=lambda _: None)
    assert str(err.value) in problem


def test_validate_is_not_green_without_the_charts(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = stack_repo(deploy_repo)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    report = validate_federation(repo, SdkEngine(chart_cache=empty))
    assert len(report.problems) == 3
    for problem in report.problems:
        assert "is not in charts/ nor the chart cache" in problem
    binder, hub, registry = report.problems
    assert binder.startswith("member binder: ")
    assert "dependency binderhub 1.0.0-0.dev.git.3959.hb9fad995" in binder
    assert hub.startswith("member hub: ") and "dependency jupyterhub 4.2.0" in hub
    assert registry.startswith("member registry: ") and "dependency binderhub" in registry


def test_keys_no_chart_reads_are_warnings_with_file_and_line(
    deploy_repo: MakeRepo, real_charts: Path
) -> None:
    repo = umbrella_repo(
        deploy_repo,
        members={"typo": {"domain": "typo.example.org"}},
        values={
            "typo": {
                "binderhubb": {"replicas": 2},  # a typo'd top-level key
                "jupyterhub": {"hub": {"config": {"X": 1}}},  # the standalone hub is off
                "harbor": {"externalURL": "https://registry.typo.example.org"},  # Harbor is off
                "binderhub": {"config": {"BinderHub": {"hub_url": "https://hub.typo"}}},
            }
        },
        secrets={"typo": {"binderhub": HUB_SECRETS}},
    )
    engine = SdkEngine(chart_cache=real_charts)
    report = validate_federation(repo, engine)
    assert report.problems == ()
    # in the file's order (the fixture writes keys sorted); hub_url is under a map the
    # binderhub schema leaves open, so it is binderhub's to read
    assert report.warnings == (
        "config/typo.yaml:5: binderhubb: no chart of member typo reads it",
        "config/typo.yaml:8: harbor.externalURL: no chart of member typo reads it "
        "(harbor is off for this member)",
        "config/typo.yaml:9: jupyterhub: no chart of member typo reads it "
        "(jupyterhub is off for this member)",
    )
    strict = validate_federation(repo, engine, strict=True)
    assert strict.problems == report.warnings and strict.warnings == ()
    said: list[str] = []
    deploy_member(repo, "typo", engine, DeployOptions(dry_run=True), say=said.append)
    assert [line for line in said if line.startswith("warning: ")] == [
        f"warning: {line}" for line in report.warnings
    ]


def test_the_real_stacks_read_every_key_their_files_set(
    deploy_repo: MakeRepo, real_charts: Path
) -> None:
    report = validate_federation(stack_repo(deploy_repo), SdkEngine(chart_cache=real_charts))
    assert report.warnings == ()


def repackaged(source: Path, into: Path, change: Any) -> Path:
    """A real chart, unpacked, changed by `change(chart_dir)`, archived again into `into` as
    `<name>-<version>.tgz` (tar itself: `helm package` refuses a chart missing a subchart)."""
    import tarfile

    work = into / "work"
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source) as tar:
        tar.extractall(work, filter="data")
    (chart_dir,) = [p for p in work.iterdir() if p.is_dir()]
    change(chart_dir)
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    packaged = into / f"{meta['name']}-{meta['version']}.tgz"
    with tarfile.open(packaged, "w:gz") as tar:
        tar.add(chart_dir, arcname=chart_dir.name)
    shutil.rmtree(work)
    return packaged


def test_a_binderhub_package_without_its_jupyterhub_is_named(
    deploy_repo: MakeRepo, real_charts: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("jupyterhub-4.2.0.tgz", "harbor-1.18.1.tgz"):
        shutil.copy(real_charts / name, cache / name)
    binderhub = repackaged(
        real_charts / "binderhub-1.0.0-0.dev.git.3959.hb9fad995.tgz",
        tmp_path / "binderhub",
        lambda chart: shutil.rmtree(chart / "charts" / "jupyterhub"),
    )
    shutil.copy(binderhub, cache / binderhub.name)
    repo = stack_repo(deploy_repo)
    with pytest.raises(RenderError) as err:
        render_member(repo, load_registry(repo).member("binder"), SdkEngine(chart_cache=cache))
    assert str(err.value).endswith(
        "binderhub declares jupyterhub 4.2.0 but its package carries no such chart; the "
        "package is incomplete: remove it from the chart cache and run invoke charts.update"
    )


def test_a_wrong_version_in_charts_says_which(
    deploy_repo: MakeRepo, real_charts: Path, tmp_path: Path
) -> None:
    def older(chart: Path) -> None:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        meta["version"] = "4.1.0"
        (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))

    old = repackaged(real_charts / "jupyterhub-4.2.0.tgz", tmp_path / "old", older)
    repo = stack_repo(deploy_repo)
    (repo.root / "chart" / "charts").mkdir()
    shutil.copy(old, repo.root / "chart" / "charts" / old.name)
    with pytest.raises(RenderError) as err:
        render_member(repo, load_registry(repo).member("hub"), SdkEngine(chart_cache=real_charts))
    message = str(err.value)
    assert (
        "dependency jupyterhub: Chart.yaml pins 4.2.0, but charts/ has the wrong version" in message
    )
    assert "(charts/ holds jupyterhub-4.1.0.tgz); remove it and run invoke charts.update" in message
