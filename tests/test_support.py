"""A member's support release (support/: traefik, cert-manager and its ClusterIssuers,
prometheus, grafana) with the REAL upstream charts from ../shared/charts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.deploy.manifests import parse_manifests, split_manifest, split_stream
from hubfleet.deploy.member import DeployOptions, DeployResult, deploy_member, render_member
from hubfleet.errors import ConfigError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.sdk import SdkEngine
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import check_registry, load_registry
from hubfleet.registry.support import releases, support_release
from hubfleet.secrets import sops
from tests.conftest_repo import PROJECT, MakeRepo
from tests.kube_stub import KubeStub
from tests.test_real_charts import real_charts  # noqa: F401 (fixture)
from tests.test_umbrella_chart import ALPHA_HARBOR, ALPHA_S3_REGION, harbor_keys, umbrella_repo

SUPPORT = PROJECT / "support"
EMAIL = "ops@fleet.example.org"
# what member.new generates for a binder member (else each render makes new ones)
HUB_SECRETS = {
    "jupyterhub": {
        "hub": {
            "cookieSecret": "c" * 64,
            "services": {"binder": {"apiToken": "b" * 64}},
            "config": {"CryptKeeper": {"keys": ["e" * 64]}},
        },
        "proxy": {"secretToken": "d" * 64},
    }
}


def support_repo(deploy_repo: MakeRepo, **members: dict[str, Any]) -> DeployRepo:
    """Members with the given registry records (each a binder member), the real chart/ and
    support/ copied in (never their vendored charts/)."""
    repo = umbrella_repo(
        deploy_repo,
        members={name: {"domain": f"{name}.example.org", **r} for name, r in members.items()},
        values={name: {} for name in members},
        secrets={name: {"binderhub": HUB_SECRETS} for name in members},
    )
    shutil.copytree(SUPPORT, repo.root / "support", ignore=shutil.ignore_patterns("charts"))
    return repo


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        kinds.setdefault(o["kind"], []).append(o)
    return kinds


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_real_charts_render_documents_helm_splits_but_yaml_would_not(
    real_charts: Path,  # noqa: F811
) -> None:
    import helm_python

    with helm_python.Chart.load(real_charts / "cert-manager-v1.20.2.tgz") as chart:
        rendered = chart.render({}, name="support", namespace="support", is_install=True)
    glued = [t for t in rendered.values() if "---#" in t]
    assert glued, "cert-manager renders `---#` (a separator glued to a comment)"
    objects = parse_manifests({p: t for p, t in rendered.items() if not p.endswith("NOTES.txt")})
    assert len(objects) == 46  # as ../shared/charts/README.md counts them, with Helm's splitting
    assert split_manifest("a: 1\n---# c\nkind: X\n") == [(0, "a: 1\n"), (1, "# c\nkind: X\n")]
    # each document ends with one newline, as Helm writes it into the release (a block
    # scalar at the end of a template keeps its newline, as in the release's manifest)
    assert parse_manifests({"t.yaml": "kind: A\nx: |\n  l"}) == [{"kind": "A", "x": "l\n"}]
    # a release's manifest is split as the Kubernetes client splits it: by `---` lines
    assert split_stream("---\n# Source: a\nkind: A\n---\nkind: B\n") == [
        "# Source: a\nkind: A\n",
        "kind: B\n",
    ]


def test_a_k3s_member_gets_every_part(deploy_repo: MakeRepo, real_charts: Path) -> None:  # noqa: F811
    repo = support_repo(deploy_repo, alpha={"support": {"email": EMAIL}})
    member = load_registry(repo).member("alpha")
    assert [r.part for r in releases(member)] == ["support", "member"]
    support = support_release(member)
    assert support is not None and (support.release, support.namespace) == ("support", "support")

    rendered = render_member(repo, support, SdkEngine(chart_cache=real_charts))
    assert rendered.unread == ()
    objects = rendered.objects
    issuers = {o["metadata"]["name"]: o["spec"] for o in by_kind(objects)["ClusterIssuer"]}
    assert set(issuers) == {"letsencrypt-staging", "letsencrypt-prod", "selfsigned"}
    prod = issuers["letsencrypt-prod"]["acme"]
    assert prod["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert prod["email"] == EMAIL
    assert prod["solvers"] == [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]
    assert "staging" in issuers["letsencrypt-staging"]["acme"]["server"]

    assert named(objects, "IngressClass", "traefik")
    assert named(objects, "Service", "support-traefik")["spec"]["type"] == "LoadBalancer"
    assert named(objects, "Deployment", "support-cert-manager")
    # the CRDs are not in the release: hubfleet applies them before it
    assert "CustomResourceDefinition" not in by_kind(objects)
    # prometheus with node exporter and kube-state-metrics; no alertmanager, no pushgateway
    assert named(objects, "Service", "support-prometheus-server")
    assert named(objects, "DaemonSet", "support-prometheus-node-exporter")
    assert named(objects, "Deployment", "support-kube-state-metrics")
    assert not [o for o in objects if "alertmanager" in o["metadata"]["name"]]
    assert not [o for o in objects if "pushgateway" in o["metadata"]["name"]]
    # grafana reads that prometheus, and the repo's dashboards
    datasources = named(objects, "ConfigMap", "support-grafana")["data"]["datasources.yaml"]
    assert "http://support-prometheus-server.support.svc.cluster.local" in datasources
    dashboard = named(objects, "ConfigMap", "dashboard-member")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "hubfleet-member"' in dashboard["data"]["member.json"]


def test_host_ports_a_metallb_address_and_parts_turned_off(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    repo = support_repo(
        deploy_repo,
        gpu={"support": {"email": EMAIL, "load_balancer_ip": "10.0.0.240"}},
        bare={"support": {"issuer": "selfsigned", "entrypoint": "hostports", "monitoring": False}},
        shared={
            "support": {
                "issuer": "selfsigned",
                "ingress": False,
                "cert_manager": False,
                "ingress_class": "nginx",
                "monitoring": False,
            }
        },
        none={},
    )
    registry = load_registry(repo)
    engine = SdkEngine(chart_cache=real_charts)

    def render(name: str) -> list[dict[str, Any]]:
        support = support_release(registry.member(name))
        assert support is not None
        rendered = render_member(repo, support, engine)
        assert rendered.unread == ()
        return rendered.objects

    gpu = render("gpu")
    assert named(gpu, "Service", "support-traefik")["spec"]["loadBalancerIP"] == "10.0.0.240"

    bare = render("bare")
    assert named(bare, "Service", "support-traefik")["spec"]["type"] == "ClusterIP"
    ports = named(bare, "Deployment", "support-traefik")["spec"]["template"]["spec"]["containers"][
        0
    ]["ports"]
    assert {p.get("hostPort") for p in ports} >= {80, 443}
    assert {o["metadata"]["name"] for o in by_kind(bare)["ClusterIssuer"]} == {"selfsigned"}
    assert not [
        o
        for o in bare
        if "grafana" in o["metadata"]["name"] or "prometheus" in o["metadata"]["name"]
    ]

    shared = render("shared")
    assert {o["kind"] for o in shared} == {"ClusterIssuer"}  # only the issuers are left
    vendored = sorted(p.name for p in (repo.root / "support" / "charts").iterdir())
    assert vendored == [
        "cert-manager-v1.20.2.tgz",
        "grafana-10.5.15.tgz",
        "prometheus-29.21.0.tgz",
        "traefik-41.1.1.tgz",
    ]  # from the cache, only those some member enabled

    assert support_release(registry.member("none")) is None
    assert [r.part for r in releases(registry.member("none"))] == ["member"]


def test_a_letsencrypt_issuer_needs_a_contact(deploy_repo: MakeRepo) -> None:
    repo = support_repo(deploy_repo, alpha={"support": {"issuer": "letsencrypt-staging"}})
    _, problems = check_registry(repo)
    assert [str(p) for p in problems] == [
        "config/federation.yaml:7: member alpha: key 'email': is required: the ACME contact "
        "for Let's Encrypt (or issuer: selfsigned)"
    ]


# --- deploy: CRDs, then support, then the member, by the real Helm SDK to the stub API ------


def test_deploy_applies_the_crds_then_the_support_release_then_the_hub(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
    kube_stub: KubeStub,
    kube_credentials: ClusterCredentials,
) -> None:
    repo = support_repo(deploy_repo, alpha={"support": {"email": EMAIL}})
    # Grafana's admin password, pinned as member.new does (else each render makes a new one)
    pinned = {"grafana": {"adminPassword": "g" * 32}}
    sops.write_encrypted(
        repo, repo.member_secret_values("alpha", "support"), yaml.safe_dump(pinned)
    )
    engine = SdkEngine(chart_cache=real_charts)
    lines: list[str] = []
    options = DeployOptions(yes=True, timeout_s=30)

    def deploy(**kw: Any) -> DeployResult:
        lines.clear()
        return deploy_member(
            repo, "alpha", engine, options, say=lines.append, credentials=kube_credentials, **kw
        )

    first = deploy()
    out = "\n".join(lines)
    assert (first.part, first.outcome, first.revision) == ("member", "deployed", 1)
    assert first.support is not None
    assert (first.support.outcome, first.support.revision) == ("deployed", 1)
    # the order: CRDs before the support release, the support release before the hub
    crds_at = out.index("CustomResourceDefinition(s) of cert-manager in place (6 changed)")
    assert crds_at < out.index("installing release support") < out.index("installing release alpha")
    crds = {c["metadata"]["name"] for c in kube_stub.objects("CustomResourceDefinition")}
    assert {"certificates.cert-manager.io", "clusterissuers.cert-manager.io"} <= crds
    assert kube_stub.get("ClusterIssuer", "letsencrypt-prod", "") is not None
    assert kube_stub.get("Deployment", "support-traefik", "support") is not None
    assert kube_stub.get("Deployment", "binder", "alpha") is not None

    again = deploy()
    assert again.outcome == "unchanged" and again.support is not None
    assert again.support.outcome == "unchanged"

    # a change to the support release alone upgrades it alone
    values = repo.member_values("alpha", "support")
    values.parent.mkdir(parents=True, exist_ok=True)
    values.write_text("grafana:\n  replicas: 2\n")
    bumped = deploy()
    assert bumped.support is not None
    assert (bumped.support.outcome, bumped.support.revision) == ("deployed", 2)
    assert bumped.outcome == "unchanged"
    grafana = kube_stub.get("Deployment", "support-grafana", "support")
    assert grafana is not None and grafana["spec"]["replicas"] == 2

    # a version bump of the support chart: only the support release is upgraded
    chart_yaml = repo.root / "support" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", "version: 0.1.1"))
    bumped = deploy()
    assert bumped.support is not None
    assert (bumped.support.outcome, bumped.support.revision) == ("deployed", 3)
    assert bumped.outcome == "unchanged"
    live = engine.status(kube_credentials, "support", "support")
    assert live is not None and live.chart_version == "0.1.1"

    only = deploy(only="member")
    assert only.support is None and only.outcome == "unchanged"


def test_every_ingress_of_the_hub_gets_the_issuer_and_the_class(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    repo = support_repo(
        deploy_repo,
        alpha={"support": {"email": EMAIL, "issuer": "letsencrypt-staging"}, "s3": ALPHA_S3_REGION},
        plain={},
    )
    hosts = {
        "binderhub": {
            "ingress": {"hosts": ["alpha.example.org"]},
            "jupyterhub": {"ingress": {"hosts": ["hub.alpha.example.org"]}},
        },
        "harborEnabled": True,
        "harbor": ALPHA_HARBOR,
    }
    repo.member_values("alpha").write_text(yaml.safe_dump(hosts))
    with_keys = {"binderhub": HUB_SECRETS, **harbor_keys()}
    sops.write_encrypted(repo, repo.member_secret_values("alpha"), yaml.safe_dump(with_keys))
    (repo.root / "config" / "plain.yaml").write_text(
        yaml.safe_dump({"binderhub": hosts["binderhub"]})
    )
    registry = load_registry(repo)
    engine = SdkEngine(chart_cache=real_charts)

    rendered = render_member(repo, registry.member("alpha"), engine)
    assert rendered.unread == ()
    ingresses = {o["metadata"]["name"]: o for o in by_kind(rendered.objects)["Ingress"]}
    assert {"binderhub", "jupyterhub", "alpha-harbor-ingress"} <= set(ingresses)
    for ingress in ingresses.values():
        assert ingress["spec"]["ingressClassName"] == "traefik"
        annotations = ingress["metadata"]["annotations"]
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
    # where each value came from: the registry, overridable by the member's files
    origins = {
        ".".join(map(str, p)): layer.name for p, layer in rendered.values.effective.origins.items()
    }
    assert origins["binderhub.ingress.enabled"] == "config/federation.yaml"

    # a member without a support block: its values as they were (no ingress switched on)
    plain = render_member(repo, registry.member("plain"), engine)
    assert "Ingress" not in by_kind(plain.objects)


def test_a_new_member_gets_a_support_block_with_the_federations_contact() -> None:
    from hubfleet.files.yamlfile import parse_with_lines
    from hubfleet.members.serving import support_block, with_contact
    from hubfleet.members.templates import NewMember

    said: list[str] = []
    shared = parse_with_lines(
        "members:\n  a:\n    support:\n      email: ops@x.org\n  b:\n    support: {}\n",
        Path("federation.yaml"),
        "config/federation.yaml",
    )
    k3s = with_contact(NewMember("c", "192.0.2.7", "c.x.org"), shared, said.append)
    assert support_block(k3s) == {"email": "ops@x.org"} and said == []
    mk8s = NewMember("d", "192.0.2.8", "d.x.org", provider="microk8s", email="me@x.org")
    assert support_block(with_contact(mk8s, shared, said.append)) == {
        "email": "me@x.org",
        "load_balancer_ip": "192.0.2.8",  # MetalLB's pool is the host's address
    }
    nobody = parse_with_lines("members: {}\n", Path("f.yaml"), "config/federation.yaml")
    alone = with_contact(NewMember("e", "192.0.2.9", "e.x.org"), nobody, said.append)
    assert support_block(alone) == {"issuer": "selfsigned"}
    assert said and "no --email" in said[0]
    with pytest.raises(ConfigError, match="--issuer letsencrypt-staging needs --email"):
        staging = NewMember("f", "192.0.2.10", "f.x.org", issuer="letsencrypt-staging")
        with_contact(staging, nobody, said.append)


def test_validate_checks_the_support_release_too(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    from hubfleet.deploy.validate import validate_federation

    repo = support_repo(deploy_repo, alpha={"support": {"email": EMAIL}}, plain={})
    engine = SdkEngine(chart_cache=real_charts)
    assert validate_federation(repo, engine).problems == ()

    values = repo.member_values("alpha", "support")
    values.parent.mkdir(parents=True)
    values.write_text("traefik:\n  ingressClass:\n    isDefault: true\n")
    problems = validate_federation(repo, engine).problems
    assert len(problems) == 1
    assert problems[0].startswith("member alpha (support release): ")
    assert "traefik.ingressClass" in problems[0] and "config/support/alpha.yaml:3" in problems[0]


def test_uninstall_takes_both_releases_off_the_cluster_after_a_dry_run(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
    kube_stub: KubeStub,
    kube_credentials: ClusterCredentials,
) -> None:
    from hubfleet.deploy.uninstall import UninstallOptions, uninstall_member
    from hubfleet.members.remove import Uninstall, remove_member

    repo = support_repo(deploy_repo, alpha={"support": {"email": EMAIL}})
    member = load_registry(repo).member("alpha")
    engine = SdkEngine(chart_cache=real_charts)
    options = DeployOptions(yes=True, timeout_s=30)
    deploy_member(repo, "alpha", engine, options, say=lambda _: None, credentials=kube_credentials)
    assert engine.status(kube_credentials, "support", "support") is not None
    said: list[str] = []
    off = Uninstall(repo, engine, UninstallOptions(delete_crds=True), kube_credentials)

    # the dry run: every step named, in order, nothing changed anywhere
    before = kube_stub.request_log()
    registry = repo.registry.read_text()
    remove_member(repo, "alpha", False, lambda q: False, said.append, off, dry_run=True)
    steps = [line for line in said if "would" in line]
    assert [s.split(" would ", 1)[1].split(" (")[0] for s in steps] == [
        "uninstall release alpha in alpha",
        "uninstall release support in support",
        "delete namespace alpha",
        "delete namespace support",
        "delete 6 CustomResourceDefinition(s) of cert-manager",
        "remove member alpha from config/federation.yaml",
    ]
    assert repo.registry.read_text() == registry
    assert engine.status(kube_credentials, "alpha", "alpha") is not None
    assert not [r for r in kube_stub.request_log()[len(before) :] if r.startswith("DELETE")]

    # for real, once confirmed: releases, namespaces and CRDs gone, then the registry entry
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return True

    remove_member(repo, "alpha", False, confirm, said.append, off)
    assert asked[0].startswith(
        "Uninstall member alpha's releases and delete their namespaces, and cert-manager's CRDs"
    )
    assert engine.status(kube_credentials, "alpha", "alpha") is None
    assert engine.status(kube_credentials, "support", "support") is None
    assert kube_stub.get("Namespace", "alpha", "") is None
    assert kube_stub.get("Namespace", "support", "") is None
    left = {c["metadata"]["name"] for c in kube_stub.objects("CustomResourceDefinition")}
    assert not [n for n in left if n.endswith("cert-manager.io")]
    assert "ingressroutes.traefik.io" in left  # traefik's, from its chart's crds/: kept
    assert "alpha" not in yaml.safe_load(repo.registry.read_text())["members"]

    # a second run on the cluster finds nothing left to do
    said.clear()
    again = uninstall_member(
        repo, member, engine, UninstallOptions(delete_crds=True), said.append, kube_credentials
    )
    assert again == []
    assert said == [
        "alpha: release alpha in alpha: not installed",
        "alpha: release support in support: not installed",
        "alpha: namespace alpha: not there",
        "alpha: namespace support: not there",
        "alpha: cert-manager's CustomResourceDefinitions: not there",
    ]


def test_the_e2e_workflows_repo_validates_and_serves_grafana_over_https(
    tmp_path: Path,
    real_charts: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What .github/workflows/e2e.yaml deploys to a real k3s: valid, with Grafana's Ingress
    asking the self-signed issuer for the certificate the workflow then checks."""
    import importlib.util

    from hubfleet.deploy.validate import validate_federation

    spec = importlib.util.spec_from_file_location("e2e_repo", PROJECT / "scripts" / "e2e_repo.py")
    assert spec is not None and spec.loader is not None
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    key = tmp_path / "e2e.agekey"
    repo = e2e.build(tmp_path / "repo", key)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    engine = SdkEngine(chart_cache=real_charts)
    report = validate_federation(repo, engine, strict=True)
    assert report.problems == ()
    support = support_release(load_registry(repo).member("e2e"))
    assert support is not None
    (ingress,) = by_kind(render_member(repo, support, engine).objects)["Ingress"]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "selfsigned"
    assert ingress["spec"]["tls"] == [
        {"secretName": "e2e-grafana-tls", "hosts": [e2e.GRAFANA_HOST]}
    ]
