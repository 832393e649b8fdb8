"""The umbrella chart `chart/` with Harbor: its bucket from the registry, its keys from secrets.

The real chart/ (copied into a throwaway deploy repo with real sops/age secrets) is rendered by
the real Helm SDK, offline. Its dependencies come from a chart cache in a temp dir holding STUB
charts named binderhub, jupyterhub and harbor at exactly the versions chart/Chart.yaml pins:
each renders one ConfigMap echoing a few of the values it was given (the harbor stub also a
Secret holding the S3 keys, where the real chart puts them). They are not the real charts; they
prove which values reach each dependency and which dependencies render at all.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from invoke.context import Context

from hubfleet.cloud import s3
from hubfleet.deploy.member import DeployOptions, deploy_member, render_member
from hubfleet.errors import RenderError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm import engine_from_env
from hubfleet.helm.dependencies import declared_dependencies
from hubfleet.helm.sdk import SdkEngine
from hubfleet.registry.members import load_registry, member_from_record
from hubfleet.tasks import core as core_tasks
from hubfleet.values.harbor_storage import ACCESS_KEY_PATH
from hubfleet.values.layers import member_values, registry_layer
from tests.conftest_repo import PROJECT, MakeRepo

CHART = PROJECT / "chart"
REGISTRY = "config/federation.yaml"
STORAGE = ("harbor", "persistence", "imageChartStorage")

ACCESS_KEY = "AKIA-alpha-harbor-access-key"
SECRET_KEY = "alpha-harbor-secret-key-0123456789abcdef"

ALPHA_S3 = {"endpoint": "https://fsn1.your-objectstorage.com/", "bucket": "alpha-harbor"}
ALPHA_S3_REGION = {**ALPHA_S3, "region": "fsn1"}
ALPHA_HARBOR = {
    "externalURL": "https://registry.alpha.example.org",
    "expose": {
        "ingress": {"hosts": {"core": "registry.alpha.example.org"}},
        "tls": {"secret": {"secretName": "alpha-registry-tls"}},
    },
}


# --- stub dependency charts -----------------------------------------------------------------

STUB_VALUES: dict[str, str] = {
    "binderhub": "config:\n  BinderHub:\n    hub_url: ''\n",
    "jupyterhub": "hub:\n  baseUrl: /\n",
    # the real harbor chart's defaults for every key the stub echoes
    "harbor": """\
externalURL: https://core.harbor.domain
expose:
  type: ingress
  tls:
    enabled: true
    certSource: auto
    secret:
      secretName: ""
  ingress:
    hosts:
      core: core.harbor.domain
persistence:
  imageChartStorage:
    disableredirect: false
    type: filesystem
    s3:
      region: us-west-1
      bucket: bucketname
trivy:
  enabled: true
""",
}

STUB_TEMPLATES: dict[str, str] = {
    "binderhub": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-binderhub-stub
data:
  hubUrl: {{ .Values.config.BinderHub.hub_url | quote }}
""",
    "jupyterhub": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-jupyterhub-stub
data:
  baseUrl: {{ .Values.hub.baseUrl | quote }}
""",
    "harbor": """\
{{- $storage := .Values.persistence.imageChartStorage }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-harbor-stub
data:
  externalURL: {{ .Values.externalURL | quote }}
  exposeType: {{ .Values.expose.type | quote }}
  ingressHost: {{ .Values.expose.ingress.hosts.core | quote }}
  tlsCertSource: {{ .Values.expose.tls.certSource | quote }}
  tlsSecretName: {{ .Values.expose.tls.secret.secretName | quote }}
  storageType: {{ $storage.type | quote }}
  disableredirect: {{ $storage.disableredirect | quote }}
  bucket: {{ $storage.s3.bucket | quote }}
  region: {{ $storage.s3.region | quote }}
  regionendpoint: {{ $storage.s3.regionendpoint | default "" | quote }}
  trivy: {{ .Values.trivy.enabled | quote }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-harbor-stub-registry
type: Opaque
data:
  REGISTRY_STORAGE_S3_ACCESSKEY: {{ $storage.s3.accesskey | default "" | b64enc | quote }}
  REGISTRY_STORAGE_S3_SECRETKEY: {{ $storage.s3.secretkey | default "" | b64enc | quote }}
""",
}


def pinned_versions() -> dict[str, str]:
    return {str(d["name"]): str(d["version"]) for d in declared_dependencies(CHART)}


def package_stub(name: str, version: str, sources: Path, cache: Path) -> None:
    """Package the stub chart `name` at `version` into the chart cache (`<name>-<version>.tgz`)."""
    chart = sources / name
    (chart / "templates").mkdir(parents=True)
    meta = {
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "description": f"Stub of the {name} chart for hubfleet's tests: one ConfigMap echoing "
        "some of its values. Not the real chart.",
    }
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    (chart / "values.yaml").write_text(STUB_VALUES[name])
    (chart / "templates" / "stub.yaml").write_text(STUB_TEMPLATES[name])
    helm_python.package(chart, destination=cache)


def stub_cache(root: Path, names: tuple[str, ...] = ("binderhub", "jupyterhub", "harbor")) -> Path:
    cache = root / "chart-cache"
    cache.mkdir(parents=True)
    versions = pinned_versions()
    for name in names:
        package_stub(name, versions[name], root / "stub-sources", cache)
    return cache


@pytest.fixture(scope="module")
def chart_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chart cache with all three stubs, at the versions chart/Chart.yaml pins."""
    return stub_cache(tmp_path_factory.mktemp("stubs"))


# --- deploy repos using the umbrella chart --------------------------------------------------


def harbor_keys() -> dict[str, Any]:
    keys = {"s3": {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}
    return {"harbor": {"persistence": {"imageChartStorage": keys}}}


def umbrella_repo(
    deploy_repo: MakeRepo,
    members: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
) -> DeployRepo:
    """A deploy repo whose members use a copy of the real chart/ (never its vendored charts/)."""
    repo = deploy_repo(
        members={name: {"chart": "chart", **record} for name, record in members.items()},
        values=values,
        secrets=secrets,
        common={"binderhubEnabled": True},  # the chart's default, said once for every member
    )
    shutil.copytree(CHART, repo.root / "chart", ignore=shutil.ignore_patterns("charts"))
    return repo


def alpha_and_beta(
    deploy_repo: MakeRepo, alpha_values: Mapping[str, Any] | None = None
) -> DeployRepo:
    """alpha: an s3 block and Harbor on. beta: neither, and JupyterHub instead of BinderHub."""
    return umbrella_repo(
        deploy_repo,
        members={
            "alpha": {"domain": "alpha.example.org", "s3": ALPHA_S3_REGION},
            "beta": {"domain": "beta.example.org"},
        },
        values={
            "alpha": alpha_values or {"harborEnabled": True, "harbor": ALPHA_HARBOR},
            "beta": {"binderhubEnabled": False, "jupyterhubEnabled": True},
        },
        secrets={"alpha": harbor_keys(), "beta": {"hub": {"cookieSecret": "b" * 64}}},
    )


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


# --- the chart ------------------------------------------------------------------------------


def test_the_umbrella_pins_harbor_behind_its_condition_and_leaves_it_off() -> None:
    deps = {d["name"]: d for d in declared_dependencies(CHART)}
    # `harbor` is the name onboarding's harbor-secrets step looks for in Chart.yaml
    assert set(deps) == {"binderhub", "jupyterhub", "harbor"}
    harbor = deps["harbor"]
    assert harbor["repository"] == "https://helm.goharbor.io"
    assert harbor["condition"] == "harborEnabled"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(harbor["version"])), "pin an exact version"
    # switched by top-level keys: the real binderhub/jupyterhub schemas refuse `enabled`
    assert deps["binderhub"]["condition"] == "binderhubEnabled"
    assert deps["jupyterhub"]["condition"] == "jupyterhubEnabled"

    top = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (top["binderhubEnabled"], top["jupyterhubEnabled"], top["harborEnabled"]) == (
        True,
        False,
        False,
    )
    defaults = top["harbor"]
    assert "enabled" not in defaults
    assert defaults["expose"]["type"] == "ingress"
    storage = defaults["persistence"]["imageChartStorage"]
    assert storage["type"] == "s3" and storage["disableredirect"] is True
    assert "s3" not in storage, "the bucket is written in the registry, the keys in secrets"


# --- the registry layer ---------------------------------------------------------------------


def test_the_registry_layer_gives_harbor_the_bucket_of_the_s3_block() -> None:
    record = {"stage": "prod", "provider": "kubeconfig", "domain": "alpha.example.org"}
    with_region = member_from_record("alpha", {**record, "s3": ALPHA_S3_REGION})
    assert registry_layer(with_region, REGISTRY).data == {
        "hubfleet": {"member": "alpha", "stage": "prod", "domain": "alpha.example.org"},
        "harbor": {
            "persistence": {
                "imageChartStorage": {
                    "s3": {
                        "bucket": "alpha-harbor",
                        "region": "fsn1",
                        "regionendpoint": "https://fsn1.your-objectstorage.com",
                    }
                }
            }
        },
    }
    default_region = registry_layer(
        member_from_record("alpha", {**record, "s3": ALPHA_S3}), REGISTRY
    )
    assert default_region.data["harbor"]["persistence"]["imageChartStorage"]["s3"]["region"] == (
        "us-east-1"
    )
    without = registry_layer(member_from_record("beta", record), REGISTRY)
    assert set(without.data) == {"hubfleet"}
    assert not without.secret


def test_values_with_origins_name_the_registry_and_mask_the_keys(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = alpha_and_beta(deploy_repo)
    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))

    core_tasks.values(Context(), "alpha", show_origin=True)
    out = capsys.readouterr().out
    assert f"bucket: alpha-harbor  # {REGISTRY}" in out
    assert f"region: fsn1  # {REGISTRY}" in out
    assert f"regionendpoint: https://fsn1.your-objectstorage.com  # {REGISTRY}" in out
    assert "accesskey: '********'  # secrets/config/alpha.yaml" in out
    assert "secretkey: '********'  # secrets/config/alpha.yaml" in out
    assert "type: s3  # chart/values.yaml" in out
    assert "harborEnabled: true  # config/alpha.yaml" in out  # turned on by the member
    assert ACCESS_KEY not in out and SECRET_KEY not in out

    # the s3.* tasks read the keys from exactly there
    member = load_registry(repo).member("alpha")
    merged = member_values(repo, member).effective
    assert merged.origins[ACCESS_KEY_PATH].secret
    keys = s3.member_keys(repo, member, merged)
    assert (keys.access_key, keys.secret_key) == (ACCESS_KEY, SECRET_KEY)

    core_tasks.values(Context(), "beta", show_origin=True)
    out = capsys.readouterr().out
    assert "bucket:" not in out and "regionendpoint" not in out
    assert REGISTRY in out  # hubfleet.* still comes from the registry


def test_a_members_own_values_override_what_the_registry_gives_harbor(
    deploy_repo: MakeRepo,
) -> None:
    moved = {"persistence": {"imageChartStorage": {"s3": {"bucket": "alpha-harbor-2"}}}}
    repo = alpha_and_beta(
        deploy_repo, alpha_values={"harborEnabled": True, "harbor": {**ALPHA_HARBOR, **moved}}
    )
    merged = member_values(repo, load_registry(repo).member("alpha")).effective
    bucket = (*STORAGE, "s3", "bucket")
    assert merged.values["harbor"]["persistence"]["imageChartStorage"]["s3"]["bucket"] == (
        "alpha-harbor-2"
    )
    assert merged.origins[bucket].name == "config/alpha.yaml"
    assert merged.origins[(*STORAGE, "s3", "region")].name == REGISTRY


# --- rendering the real umbrella chart ------------------------------------------------------


def test_harbor_renders_only_when_enabled_and_gets_the_registry_bucket_and_secret_keys(
    deploy_repo: MakeRepo, chart_cache: Path
) -> None:
    repo = alpha_and_beta(deploy_repo)
    registry = load_registry(repo)
    engine = SdkEngine(chart_cache=chart_cache)

    alpha = by_name(render_member(repo, registry.member("alpha"), engine).objects)
    assert set(alpha) == {
        "ConfigMap/alpha-hubfleet-member",
        "ConfigMap/alpha-binderhub-stub",
        "ConfigMap/alpha-harbor-stub",
        "Secret/alpha-harbor-stub-registry",
        "Secret/harbor-token",  # the umbrella's: the key Harbor's core signs tokens with
    }
    assert alpha["ConfigMap/alpha-harbor-stub"]["data"] == {
        "externalURL": "https://registry.alpha.example.org",
        "exposeType": "ingress",
        "ingressHost": "registry.alpha.example.org",
        "tlsCertSource": "secret",
        "tlsSecretName": "alpha-registry-tls",
        "storageType": "s3",
        "disableredirect": "true",
        "bucket": "alpha-harbor",
        "region": "fsn1",
        "regionendpoint": "https://fsn1.your-objectstorage.com",
        "trivy": "false",
    }
    keys = alpha["Secret/alpha-harbor-stub-registry"]["data"]
    assert base64.b64decode(keys["REGISTRY_STORAGE_S3_ACCESSKEY"]).decode() == ACCESS_KEY
    assert base64.b64decode(keys["REGISTRY_STORAGE_S3_SECRETKEY"]).decode() == SECRET_KEY
    assert alpha["ConfigMap/alpha-hubfleet-member"]["data"]["domain"] == "alpha.example.org"

    # Harbor off by default; binderhubEnabled false and jupyterhubEnabled true are honoured
    beta = by_name(render_member(repo, registry.member("beta"), engine).objects)
    assert set(beta) == {"ConfigMap/beta-hubfleet-member", "ConfigMap/beta-jupyterhub-stub"}


def test_a_dry_run_of_the_umbrella_shows_the_bucket_and_masks_the_keys(
    deploy_repo: MakeRepo, chart_cache: Path
) -> None:
    repo = alpha_and_beta(deploy_repo)
    lines: list[str] = []
    engine = engine_from_env({"HUBFLEET_CHART_CACHE": str(chart_cache)})
    result = deploy_member(repo, "alpha", engine, DeployOptions(dry_run=True), say=lines.append)
    out = "\n".join(lines)
    assert result.outcome == "planned"
    assert "chart:     hubfleet 0.1.0 (chart)" in out
    assert "objects:   5" in out
    assert "bucket: alpha-harbor" in out
    assert "accesskey: '********'" in out
    assert ACCESS_KEY not in out and SECRET_KEY not in out


def test_a_missing_harbor_chart_names_its_repository_only_where_harbor_is_on(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = alpha_and_beta(deploy_repo)
    cache = stub_cache(tmp_path / "partial", names=("binderhub", "jupyterhub"))
    registry = load_registry(repo)
    engine = SdkEngine(chart_cache=cache)
    # beta runs no Harbor: its chart renders without the harbor chart anywhere
    beta = by_name(render_member(repo, registry.member("beta"), engine).objects)
    assert set(beta) == {"ConfigMap/beta-hubfleet-member", "ConfigMap/beta-jupyterhub-stub"}
    assert not list((repo.root / "chart" / "charts").glob("harbor-*"))
    with pytest.raises(RenderError) as err:
        render_member(repo, registry.member("alpha"), engine)
    version = pinned_versions()["harbor"]
    message = str(err.value)
    assert f"dependency harbor {version} from https://helm.goharbor.io is not in" in message
    assert f"helm pull harbor --repo https://helm.goharbor.io --version '{version}'" in message


def test_harbor_enabled_without_its_bucket_or_keys_stops_deploy_and_validate(
    deploy_repo: MakeRepo, chart_cache: Path
) -> None:
    from hubfleet.deploy.validate import validate_federation
    from hubfleet.errors import ConfigError

    repo = umbrella_repo(
        deploy_repo,
        members={
            "nobucket": {"domain": "nobucket.example.org"},
            "nokeys": {"domain": "nokeys.example.org", "s3": ALPHA_S3},
            "off": {"domain": "off.example.org"},
        },
        values={
            "nobucket": {"harborEnabled": True, "harbor": ALPHA_HARBOR},
            "nokeys": {"harborEnabled": True, "harbor": ALPHA_HARBOR},
            "off": {"harborEnabled": False},
        },
        secrets={
            name: {"hub": {"cookieSecret": "c" * 64}} for name in ("nobucket", "nokeys", "off")
        },
    )
    engine = engine_from_env({"HUBFLEET_CHART_CACHE": str(chart_cache)})
    with pytest.raises(
        ConfigError, match=r"member nobucket: Harbor is enabled but has no S3 bucket"
    ):
        deploy_member(repo, "nobucket", engine, DeployOptions(dry_run=True), say=lambda _: None)
    with pytest.raises(
        ConfigError,
        match=r"member nokeys: Harbor's bucket alpha-harbor has no accesskey/secretkey .*"
        r"invoke tofu.apply nokeys s3 --save-outputs",
    ):
        deploy_member(repo, "nokeys", engine, DeployOptions(dry_run=True), say=lambda _: None)
    planned = deploy_member(repo, "off", engine, DeployOptions(dry_run=True), say=lambda _: None)
    assert planned.outcome == "planned"
    report = validate_federation(repo, engine)
    harbor_lines = [p for p in report.problems if "Harbor" in p]
    assert [line.split(":")[0] for line in harbor_lines] == ["member nobucket", "member nokeys"]
