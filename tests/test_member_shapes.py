"""Every member shape `member.new` scaffolds, with the REAL charts from ../shared/charts: a
k3s binder member, a MicroK8s JupyterHub-only member with a GPU profile and a MetalLB address,
a GKE binder member, and a member that turns its support release off. Each renders with nothing
unread, is deployed in order (CRDs, support, hub) by the real Helm SDK to the stub API, and
every object Helm created is checked against the OpenAPI schema of the stub's Kubernetes
version (kubernetes-validate), custom resources against their CRD's schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from hubfleet.deploy.manifests import parse_manifests
from hubfleet.deploy.member import DeployOptions, deploy_member, render_member
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import load_mapping
from hubfleet.helm.sdk import SdkEngine
from hubfleet.members.new import plan_new_member
from hubfleet.members.templates import NewMember, NodeShape
from hubfleet.registry.members import load_registry
from hubfleet.registry.support import releases
from hubfleet.secrets import sops
from tests.conftest_kube import credentials_for
from tests.conftest_repo import PROJECT, MakeRepo
from tests.kube_stub import KubeStub
from tests.kube_stub.resources import KUBE_VERSION
from tests.test_real_charts import real_charts  # noqa: F401 (fixture)
from tests.test_support import EMAIL, support_repo
from tests.test_umbrella_chart import ALPHA_S3_REGION, harbor_keys

KUBE = f"{KUBE_VERSION['major']}.{KUBE_VERSION['minor']}"
HOST = NodeShape(16, 64.0, 200.0, "a test host")


def scaffold(repo: DeployRepo, request: NewMember, shape: NodeShape = HOST) -> dict[str, Any]:
    """What member.new writes for `request` (no host contacted: the shape is given), written
    into the repo; the record it registered."""
    doc = load_mapping(repo.registry, "config/federation.yaml")
    plan = plan_new_member(repo, request, shape, doc)
    repo.registry.write_text(plan.registry_text)
    for planned in plan.files:
        planned.path.parent.mkdir(parents=True, exist_ok=True)
        if planned.encrypted:
            sops.write_encrypted(repo, planned.path, planned.content)
        else:
            planned.path.write_text(planned.content)
    return dict(yaml.safe_load(plan.registry_text)["members"][request.name])


def set_record(repo: DeployRepo, name: str, **changes: Any) -> None:
    registry = yaml.safe_load(repo.registry.read_text())
    registry["members"][name].update(changes)
    repo.registry.write_text(yaml.safe_dump(registry))


def with_harbor_keys(repo: DeployRepo, name: str) -> None:
    """The Harbor bucket's keys, added by hand (or by tofu.apply --save-outputs)."""
    stored = sops.decrypt_yaml(repo, repo.member_secret_values(name))
    stored["harbor"]["persistence"] = harbor_keys()["harbor"]["persistence"]
    sops.write_encrypted(repo, repo.member_secret_values(name), yaml.safe_dump(stored))
    set_record(repo, name, s3=ALPHA_S3_REGION)


def openapi_problems(objects: list[dict[str, Any]], crds: list[dict[str, Any]]) -> list[str]:
    """Each object against its kind's schema: built-in kinds in Kubernetes KUBE's OpenAPI,
    custom ones in their CRD's openAPIV3Schema."""
    custom = {
        (f"{c['spec']['group']}/{v['name']}", c["spec"]["names"]["kind"]): v["schema"][
            "openAPIV3Schema"
        ]
        for c in crds
        for v in c["spec"]["versions"]
    }
    problems = []
    for obj in objects:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        key = (obj["apiVersion"], obj["kind"])
        try:
            if key in custom:
                jsonschema.validate(obj, custom[key])
            else:
                kubernetes_validate.validate(obj, KUBE, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {obj['apiVersion']} in Kubernetes {KUBE}")
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
            problems.append(f"{where}: {str(err).splitlines()[0]}")
    return problems


Shape = Callable[[DeployRepo], str]


def k3s_binder(repo: DeployRepo) -> str:
    scaffold(repo, NewMember("edge", "192.0.2.5", "edge.example.org", email=EMAIL))
    with_harbor_keys(repo, "edge")
    return "edge"


def microk8s_gpu_jupyterhub(repo: DeployRepo) -> str:
    request = NewMember(
        "lab",
        "192.0.2.6",
        "lab.example.org",
        provider="microk8s",
        email=EMAIL,
        kind="jupyterhub",
        gpus=2,
        github_orgs=("physics-lab",),
    )
    record = scaffold(repo, request)
    assert record["support"]["load_balancer_ip"] == "192.0.2.6"  # MetalLB's address
    return "lab"


def gke_binder(repo: DeployRepo) -> str:
    from hubfleet.cloud.gke import GkeCluster

    request = NewMember(
        "cloud",
        "",
        "cloud.example.org",
        provider="gke",
        email=EMAIL,
        gke=GkeCluster("fleet-project-1", "us-central1", "cloud"),
    )
    scaffold(repo, request, NodeShape(8, 30.0, 100.0, "GKE user nodes"))
    with_harbor_keys(repo, "cloud")
    return "cloud"


def support_off(repo: DeployRepo) -> str:
    scaffold(repo, NewMember("shared", "192.0.2.7", "shared.example.org", email=EMAIL))
    with_harbor_keys(repo, "shared")
    set_record(repo, "shared", support={"enabled": False})
    return "shared"


@pytest.mark.parametrize("shape", [k3s_binder, microk8s_gpu_jupyterhub, gke_binder, support_off])
def test_each_shape_renders_deploys_and_every_object_fits_its_schema(
    shape: Shape,
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
    kube_stub: KubeStub,
) -> None:
    repo = support_repo(deploy_repo, seed={"support": {"email": EMAIL}})
    import shutil

    shutil.copytree(PROJECT / "config" / "templates", repo.root / "config" / "templates")
    name = shape(repo)
    member = load_registry(repo).member(name)
    engine = SdkEngine(chart_cache=real_charts)
    parts = [r.part for r in releases(member)]
    assert parts == (["member"] if shape is support_off else ["support", "member"])
    for release in releases(member):
        assert render_member(repo, release, engine).unread == (), release.part

    creds = credentials_for(kube_stub, name)
    options = DeployOptions(yes=True, timeout_s=30)
    result = deploy_member(repo, name, engine, options, say=lambda _: None, credentials=creds)
    assert result.outcome == "deployed"
    crds = kube_stub.objects("CustomResourceDefinition")
    for release in releases(member):
        live = engine.status(creds, release.release, release.namespace)
        assert live is not None
        objects = parse_manifests([live.manifest])
        assert objects and openapi_problems(objects, crds) == [], release.part
    if render_member(repo, member, engine).values.effective.values.get("harborEnabled"):
        # as onboarding does: pin what Harbor generated, deploy once more with the pins
        from hubfleet.cloud.harbor import stabilize_secrets

        stabilize_secrets(repo, name, say=lambda _: None, credentials=creds)
        deploy_member(repo, name, engine, options, say=lambda _: None, credentials=creds)
    said: list[str] = []
    again = deploy_member(repo, name, engine, options, say=said.append, credentials=creds)
    assert again.outcome == "unchanged", "\n".join(said)
    assert again.support is None or again.support.outcome == "unchanged"


def test_the_jupyterhub_member_logs_in_with_github_offers_a_gpu_and_culls(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    import shutil

    repo = support_repo(deploy_repo, seed={"support": {"email": EMAIL}})
    shutil.copytree(PROJECT / "config" / "templates", repo.root / "config" / "templates")
    name = microk8s_gpu_jupyterhub(repo)
    member = load_registry(repo).member(name)
    values = render_member(repo, member, SdkEngine(chart_cache=real_charts)).values.effective
    hub = values.values["jupyterhub"]
    github = hub["hub"]["config"]["GitHubOAuthenticator"]
    assert hub["hub"]["config"]["JupyterHub"]["authenticator_class"] == "github"
    assert github["allowed_organizations"] == ["physics-lab"]
    assert github["oauth_callback_url"] == "https://lab.example.org/hub/oauth_callback"
    assert github["client_secret"].startswith("REPLACE-WITH-THE-OAUTH-APP-SECRET-")
    assert values.origins[
        ("jupyterhub", "hub", "config", "GitHubOAuthenticator", "client_secret")
    ].secret
    profiles = hub["singleuser"]["profileList"]
    assert [p["display_name"] for p in profiles] == ["Standard", "GPU"]
    gpu = profiles[1]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert hub["singleuser"]["memory"] == {"guarantee": "450M", "limit": "900M"}
    assert hub["singleuser"]["storage"]["capacity"] == "1Gi"  # 100 GB shared by its users
    assert hub["cull"]["enabled"] is True and hub["cull"]["timeout"] == 3600


def test_the_schema_check_finds_what_is_wrong() -> None:
    bad_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    removed = {
        "apiVersion": "policy/v1beta1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "y"},
    }
    crd = {
        "spec": {
            "group": "example.org",
            "names": {"kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "required": ["size"]}},
                        }
                    },
                }
            ],
        }
    }
    widget = {
        "apiVersion": "example.org/v1",
        "kind": "Widget",
        "metadata": {"name": "z"},
        "spec": {},
    }
    problems = openapi_problems([bad_deployment, removed, widget], [crd])
    assert len(problems) == 3
    assert problems[0].startswith("Deployment x: ")
    assert (
        problems[1] == f"PodDisruptionBudget y: no schema for policy/v1beta1 in Kubernetes {KUBE}"
    )
    assert problems[2] == "Widget z: 'size' is a required property"


def test_a_kubeconfig_member_is_imported_encrypted_and_deployed_through_it(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
    kube_stub: KubeStub,
    tmp_path: Path,
) -> None:
    import shutil

    repo = support_repo(deploy_repo, seed={"support": {"email": EMAIL}})
    shutil.copytree(PROJECT / "config" / "templates", repo.root / "config" / "templates")
    # an operator's kubeconfig with two contexts: the existing cluster's, and another
    theirs = kube_stub.kubeconfig(cluster="campus", user="campus-admin", context="campus")
    other = kube_stub.kubeconfig(cluster="elsewhere", user="someone", context="elsewhere")
    for section in ("clusters", "users", "contexts"):
        theirs[section] += other[section]
    source = tmp_path / "campus.kubeconfig"
    source.write_text(yaml.safe_dump(theirs))
    before = source.read_bytes()
    request = NewMember(
        "campus",
        "",
        "campus.example.org",
        provider="kubeconfig",
        email=EMAIL,
        kind="jupyterhub",
        kubeconfig=source,
        kube_context="campus",
        nodes=NodeShape(8, 32.0, 200.0, "its nodes"),
    )
    doc = load_mapping(repo.registry, "config/federation.yaml")
    plan = plan_new_member(repo, request, request.nodes or HOST, doc)
    (imported,) = [f for f in plan.files if f.path == repo.member_kubeconfig("campus")]
    assert imported.encrypted
    token = theirs["users"][0]["user"].get("token") or theirs["users"][0]["user"].get(
        "client-key-data"
    )
    assert token and token not in imported.shown and "credentials ********" in imported.shown
    record = scaffold(repo, request, request.nodes or HOST)
    assert record == {
        "stage": "staging",
        "provider": "kubeconfig",
        "domain": "campus.example.org",
        "support": {"email": EMAIL},
    }
    assert sops.is_encrypted(repo.member_kubeconfig("campus"))
    assert source.read_bytes() == before  # the operator's file as it was
    stored = sops.decrypt_yaml(repo, repo.member_kubeconfig("campus"))
    assert [c["name"] for c in stored["contexts"]] == ["campus"]  # only the chosen context

    # deployed with no credentials given: through the imported kubeconfig
    engine = SdkEngine(chart_cache=real_charts)
    options = DeployOptions(yes=True, timeout_s=30)
    result = deploy_member(repo, "campus", engine, options, say=lambda _: None)
    assert result.outcome == "deployed" and result.support is not None
    assert kube_stub.get("Deployment", "hub", "campus") is not None


def test_every_public_host_of_a_new_binder_member_gets_its_tls_secret_and_issuer(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    import shutil

    repo = support_repo(deploy_repo, seed={"support": {"email": EMAIL}})
    shutil.copytree(PROJECT / "config" / "templates", repo.root / "config" / "templates")
    name = k3s_binder(repo)
    member = load_registry(repo).member(name)
    engine = SdkEngine(chart_cache=real_charts)
    hosts = {}
    for release in releases(member):
        for ingress in render_member(repo, release, engine).objects:
            if ingress["kind"] != "Ingress":
                continue
            annotations = ingress["metadata"]["annotations"]
            assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
            for tls in ingress["spec"]["tls"]:
                for host in tls["hosts"]:
                    hosts[host] = tls["secretName"]
    assert hosts == {
        "edge.example.org": "edge-binder-tls",
        "hub.edge.example.org": "edge-hub-tls",
        "registry.edge.example.org": "edge-registry-tls",
        "grafana.edge.example.org": "edge-grafana-tls",
    }
