"""`invoke adopt.mybinder PATH` on a made-up repository in the mybinder.org-deploy layout
(tests/mybinder_fixture.py): real sops/age, Helm's own parser and merge as the reference, the
task run as operators run it (a subprocess, with its own TMPDIR to search for plaintext)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from hubfleet.adopt.deploy_py import cluster_lists
from hubfleet.errors import ConfigError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import load_registry
from hubfleet.secrets import sops
from hubfleet.values.layers import member_values
from tests.conftest_repo import MakeRepo, tree_snapshot
from tests.mybinder_fixture import mybinder_repo
from tests.test_fronts import clean_env, invoke
from tests.test_values_parity import helm_merge


@pytest.fixture
def hubfleet_repo(deploy_repo: MakeRepo) -> DeployRepo:
    """A fresh deploy repo with no member and no common values (what adoption starts from)."""
    repo = deploy_repo({})
    repo.common_values().unlink()
    return repo


@pytest.fixture
def old(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "mybinder.org-deploy"
    return root, mybinder_repo(root)


def run(repo: DeployRepo, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir(exist_ok=True)
    env = clean_env(
        tmp_path,
        SOPS_AGE_KEY_FILE=str(Path(__import__("os").environ["SOPS_AGE_KEY_FILE"])),
        HUBFLEET_ROOT=str(repo.root),
        TMPDIR=str(scratch),
    )
    return invoke(args, env)


def one_line_failure(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def old_values(old_root: Path, member: str) -> dict[str, Any]:
    """What deploy.py handed Helm for `member`: its files in its order, merged by Helm's rules
    and coalesced with the chart's defaults by Helm itself."""
    files = sorted((old_root / "config/common").glob("*.yaml"))
    files += sorted((old_root / "secrets/config/common").glob("*.yaml"))
    files += [
        p
        for p in (old_root / f"config/{member}.yaml", old_root / f"secrets/config/{member}.yaml")
        if p.exists()
    ]
    merged: dict[str, Any] = {}
    for path in files:
        merged = helm_merge(merged, helm_python.values_from_yaml(path.read_text()))
    with helm_python.Chart.load(old_root / "mybinder") as chart:
        return chart.merge_values(merged)


def without_facts(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "hubfleet"}


def test_adoption_end_to_end(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, secret_strings = old
    repo = hubfleet_repo
    done = run(repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # the task checked its own result: each member's values are the ones deploy.py passed
    assert (
        "checked: the values of 3 member(s) are the ones deploy.py passed Helm (registry facts "
        "aside)"
    ) in out
    assert "warning:" not in out

    # the registry: stage from the CD matrix, provider from deploy.py, domain from the ingress
    registry = load_registry(repo)
    assert sorted(registry.members) == ["alpha", "prod", "staging"]
    staging, alpha, prod = (registry.member(n) for n in ("staging", "alpha", "prod"))
    assert (staging.stage, staging.provider, staging.domain) == (
        "staging",
        "kubeconfig",
        "staging.binder.example.org",
    )
    assert (alpha.stage, alpha.provider, alpha.chart) == ("prod", "kubeconfig", "mybinder")
    assert (prod.provider, dict(prod.gke)) == (
        "gke",
        {"project": "fixture-binder-1234", "location": "europe-west1", "cluster": "prod"},
    )
    data = yaml.safe_load(repo.registry.read_text())
    assert data["federation"] == {
        "domain": "binder.example.org",
        "redirector": "prod",
        "image": "example/federation-redirect",
        "tag": "set-by-chartpress",
    }
    assert data["members"]["alpha"]["federation"] == {"weight": 60, "prime": True}
    assert data["members"]["prod"]["federation"] == {"weight": 40, "prime": False}

    # not adopted, each with why and what to do
    report = out.split("not adopted:", 1)[1]
    assert "member cloudy: an AWS EKS cluster (binderhub-eks)" in report
    assert "member azzy: an Azure AKS cluster" in report
    assert "member localhost: no secrets/localhost-kubeconfig.yaml" in report
    for leftover in (
        "mybinder-kube-system/",
        "cert-manager.env",
        "secrets/ban.py",
        "secrets/allowed_ips.txt",
        "config/cert-manager.yaml",
        "federationRedirect.hosts.cloudy",
        "secrets/prod-gke.yaml",
    ):
        assert leftover in report, leftover

    # plain files byte for byte; the chart as it was
    for relative in (
        "config/common/00-base.yaml",
        "config/common/10-limits.yaml",
        "config/alpha.yaml",
        "config/prod.yaml",
        "mybinder/Chart.yaml",
        "mybinder/values.yaml",
        "mybinder/templates/values.yaml",
        "secrets/alpha.key.pub",
    ):
        assert (repo.root / relative).read_bytes() == (old_root / relative).read_bytes(), relative
    assert not (repo.root / "config/cloudy.yaml").exists()

    # every secret encrypted to .sops.yaml's recipients, and reading back the same
    for relative in (
        "secrets/config/common/common.yaml",
        "secrets/config/common/cryptnono.yaml",
        "secrets/config/alpha.yaml",
        "secrets/staging-kubeconfig.yaml",
        "secrets/alpha.key",
        "secrets/prod-gke.yaml",
    ):
        assert sops.is_encrypted(repo.root / relative), relative
    assert (
        sops.decrypt(repo, repo.root / "secrets/alpha.key")
        == (old_root / "secrets/alpha.key").read_text()
    )
    gke = sops.decrypt_yaml(repo, repo.member_gke_credentials("prod"))
    assert gke["service_account"]["client_email"].startswith("deployer@")
    assert "secrets/config/alpha.yaml from secrets/config/alpha.yaml" in out
    assert "encrypted from its values" in out  # `debug: yes` would have changed under sops

    # the same values deploy.py passed, from the same files in the same order
    for name in ("staging", "alpha", "prod"):
        ours = member_values(repo, registry.member(name)).effective.values
        assert without_facts(ours) == old_values(old_root, name), name
    alpha_values = member_values(repo, alpha).effective.values
    assert alpha_values["binderhub"]["debug"] is True
    assert alpha_values["binderhub"]["config"]["BinderHub"]["build_memory_limit"] == 40e9
    assert alpha_values["binderhub"]["user"] == {"cpu": 0.5, "memory": "2G"}

    # no plaintext secret anywhere: the repo, and the temp dir the task ran with
    scratch = tmp_path / "scratch-tmp"
    for root in (repo.root, scratch):
        for path in (p for p in root.rglob("*") if p.is_file()):
            content = path.read_bytes()
            for secret in secret_strings:
                assert secret.encode() not in content, f"{secret[:8]}... in {path}"
    for secret in secret_strings:
        assert secret not in out + done.stderr

    # the adopted members validate and render
    checked = run(repo, ["validate"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in ("staging", "alpha", "prod"):
        planned = run(repo, ["deploy", name, "--dry-run"], tmp_path)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert f"{name}: dry run, nothing was changed" in planned.stdout

    # a second adoption changes nothing, and says so
    before = tree_snapshot(repo.root)
    again = run(repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to adopt" in again.stdout
    assert tree_snapshot(repo.root) == before

    # a change in the old repo is adopted alone
    (old_root / "config/alpha.yaml").write_text(
        (old_root / "config/alpha.yaml").read_text() + "  imageCleaner: {}\n"
    )
    third = run(repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    changed = {k for k, v in tree_snapshot(repo.root).items() if before.get(k) != v}
    assert changed == {"config/alpha.yaml"}
    assert "updated config/alpha.yaml" in third.stdout

    # a chart file gone from the old repo goes here too; what charts.update vendored stays
    (old_root / "mybinder/templates/gone.yaml").write_text("# a template\n")
    fourth = run(repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert fourth.returncode == 0 and (repo.root / "mybinder/templates/gone.yaml").is_file()
    (repo.root / "mybinder/charts").mkdir(exist_ok=True)
    (repo.root / "mybinder/charts/binderhub-1.0.0.tgz").write_bytes(b"vendored")
    (repo.root / "mybinder/charts.lock").write_text("dependencies: []\n")
    (old_root / "mybinder/templates/gone.yaml").unlink()
    planned = run(repo, ["adopt.mybinder", str(old_root), "--dry-run"], tmp_path)
    assert "would remove mybinder/templates/gone.yaml (no longer in the adopted mybinder/)" in (
        planned.stdout
    )
    assert (repo.root / "mybinder/templates/gone.yaml").is_file()
    fifth = run(repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert fifth.returncode == 0, fifth.stdout + fifth.stderr
    assert "removed mybinder/templates/gone.yaml" in fifth.stdout
    assert not (repo.root / "mybinder/templates/gone.yaml").exists()
    assert (repo.root / "mybinder/charts/binderhub-1.0.0.tgz").read_bytes() == b"vendored"
    assert (repo.root / "mybinder/charts.lock").is_file()


def test_dry_run_lists_every_file_masked_and_writes_nothing(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, secret_strings = old
    hubfleet_repo.common_values().write_text("demo:\n  greeting: hello\n")
    before = tree_snapshot(hubfleet_repo.root)
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config/common.yaml (this repo): its values apply to the adopted members too" in (
        done.stdout
    )
    assert tree_snapshot(hubfleet_repo.root) == before
    for relative in (
        "config/common/00-base.yaml",
        "config/staging.yaml",
        "mybinder/Chart.yaml",
        "secrets/config/common/common.yaml",
        "secrets/alpha-kubeconfig.yaml",
        "secrets/prod-gke.yaml",
        "secrets/alpha.key",
    ):
        assert f"would write {relative} from" in done.stdout, relative
    assert (
        "secrets/alpha-kubeconfig.yaml from secrets/alpha-kubeconfig.yaml (encrypted with sops; contents masked)"
        in done.stdout
    )
    assert "would update config/federation.yaml from deploy.py" in done.stdout
    assert "dry run: nothing was written" in done.stdout
    for secret in secret_strings:
        assert secret not in done.stdout + done.stderr


def test_stage_flag_adopts_a_member_the_workflow_does_not_name(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, _ = old
    cd = old_root / ".github/workflows/cd.yml"
    cd.write_text(cd.read_text().replace("          - federation_member: alpha\n", ""))
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--dry-run"], tmp_path)
    assert (
        "member alpha: no stage: not in the CD workflow's matrix; pass --stage alpha=staging"
        in done.stdout
    )
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--stage", "alpha=prod"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_registry(hubfleet_repo).member("alpha").stage == "prod"
    bad = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--stage", "alpha=live"], tmp_path)
    assert "--stage 'alpha=live': want NAME=staging or NAME=prod" in one_line_failure(bad)


def test_a_locked_checkout_is_refused_in_one_line_and_nothing_is_written(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, _ = old
    (old_root / "secrets/config/alpha.yaml").write_bytes(b"\x00GITCRYPT\x00" + b"\x8f\x02" * 40)
    before = tree_snapshot(hubfleet_repo.root)
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root)], tmp_path)
    line = one_line_failure(done)
    assert "secrets/config/alpha.yaml: still locked by git-crypt; run `git-crypt unlock`" in line
    assert tree_snapshot(hubfleet_repo.root) == before


def test_a_path_that_is_not_such_a_repository_is_refused(
    hubfleet_repo: DeployRepo, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "not-a-deploy-repo"
    elsewhere.mkdir()
    (elsewhere / "README.md").write_text("hello\n")
    before = tree_snapshot(hubfleet_repo.root)
    line = one_line_failure(run(hubfleet_repo, ["adopt.mybinder", str(elsewhere)], tmp_path))
    assert "not a mybinder.org-deploy style checkout" in line
    assert tree_snapshot(hubfleet_repo.root) == before


def test_a_symlink_out_of_the_checkout_is_refused(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, _ = old
    outside = tmp_path / "outside.yaml"
    outside.write_text("binderhub: {}\n")
    (old_root / "config/common/20-link.yaml").symlink_to(outside)
    before = tree_snapshot(hubfleet_repo.root)
    line = one_line_failure(run(hubfleet_repo, ["adopt.mybinder", str(old_root)], tmp_path))
    assert "config/common/20-link.yaml: a symlink to" in line and "outside" in line
    assert tree_snapshot(hubfleet_repo.root) == before


def test_deploy_py_is_read_not_run() -> None:
    lists = cluster_lists(
        'raise SystemExit("ran")\nKUBECONFIG_CLUSTERS = {"a", "b"}\nAZURE_RGs = {}\n'
        'AWS_DEPLOYMENTS = dict()\nGCP_PROJECTS = {"p": "proj-12345"}\n',
        "deploy.py",
    )
    assert lists.kubeconfig == {"a", "b"}
    assert dict(lists.gcp_projects) == {"p": "proj-12345"}
    assert lists.azure == {} and lists.aws == {}
    with pytest.raises(ConfigError, match=r"deploy.py:2: GCP_ZONES is not a literal"):
        cluster_lists("import os\nGCP_ZONES = {k: os.environ[k] for k in 'ab'}\n", "deploy.py")


def test_common_folders_come_after_their_single_file(deploy_repo: MakeRepo) -> None:
    repo = deploy_repo(
        {"m": {"domain": "m.example.org"}}, secrets={"m": {"order": ["member-secret"]}}
    )
    config = repo.root / "config"
    (config / "common.yaml").write_text("order: [common]\nfrom_common: 1\n")
    (config / "common").mkdir()
    (config / "common" / "b.yaml").write_text("order: [folder-b]\n")
    (config / "common" / "a.yaml").write_text("order: [folder-a]\nfrom_a: 1\n")
    (config / "m.yaml").write_text("from_member: 1\n")
    sops.write_encrypted(repo, repo.root / "secrets/config/common/z.yaml", "secret_folder: 1\n")
    values = member_values(repo, load_registry(repo).member("m"))
    names = [layer.name for layer in values.layers]
    assert names[2:] == [
        "config/common.yaml",
        "config/common/a.yaml",
        "config/common/b.yaml",
        "secrets/config/common/z.yaml",
        "config/m.yaml",
        "secrets/config/m.yaml",
    ]
    assert values.effective.values["order"] == ["member-secret"]
    assert values.effective.origins[("secret_folder",)].secret


def test_unvendored_chart_dependencies_are_reported_with_what_to_do(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, _ = old
    chart_yaml = old_root / "mybinder/Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text()
        + "dependencies:\n"
        + "  - {name: binderhub, version: 1.0.0, repository: https://example.org/charts}\n"
        + "  - {name: grafana, version: 10.5.15, repository: https://example.org/charts}\n"
    )
    (old_root / "mybinder/charts").mkdir()
    (old_root / "mybinder/charts/grafana-10.5.15.tgz").write_bytes(b"vendored there")
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "mybinder/Chart.yaml: its dependencies binderhub are not vendored; run invoke "
        "charts.update --chart mybinder (it fetches them and pins their digests in charts.lock) "
        "before deploying"
    ) in done.stdout


def test_a_redirect_entry_without_health_or_versions_is_reported(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    old_root, _ = old
    prod = old_root / "config/prod.yaml"
    prod.write_text(
        prod.read_text().replace("      versions: https://alpha.binder.example.org/versions\n", "")
    )
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root), "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "federationRedirect.hosts.alpha: has no versions: the registry's rotation adds "
        "https://alpha.binder.example.org/versions, so the redirector's values are not quite the "
        "old ones; check those URLs answer on the member (invoke federation.status)"
    ) in done.stdout


def test_values_that_differ_from_the_old_deploy_are_named_by_key_path_only(
    hubfleet_repo: DeployRepo, old: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from hubfleet.adopt.same_values import first_difference

    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1}}) is None
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1.0}}) == "a.b"
    assert first_difference({"a": {"b": 1}}, {"a": {}}) == "a.b"
    assert first_difference({"a": [1]}, {"a": [1, 2]}) == "a"
    old_root, secret_strings = old
    prod = old_root / "config/prod.yaml"
    prod.write_text(
        prod.read_text().replace("      versions: https://alpha.binder.example.org/versions\n", "")
    )
    done = run(hubfleet_repo, ["adopt.mybinder", str(old_root)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "warning: member prod: its values differ from the old deploy's at "
        "federationRedirect.hosts.alpha.versions; see invoke values prod --show-origin"
    ) in done.stdout
    assert "checked:" not in done.stdout
    for secret in secret_strings:
        assert secret not in done.stdout + done.stderr
