"""A member's support release (support/: traefik, cert-manager and its ClusterIssuers,
prometheus, grafana) with the REAL upstream charts from ../shared/charts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hubfleet.deploy.manifests import parse_manifests, split_manifest
from hubfleet.deploy.member import render_member
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.sdk import SdkEngine
from hubfleet.registry.members import check_registry, load_registry
from hubfleet.registry.support import releases, support_release
from tests.conftest_repo import PROJECT, MakeRepo
from tests.test_real_charts import real_charts  # noqa: F401 (fixture)
from tests.test_umbrella_chart import umbrella_repo

SUPPORT = PROJECT / "support"
EMAIL = "ops@fleet.example.org"


def support_repo(deploy_repo: MakeRepo, **members: dict[str, Any]) -> DeployRepo:
    """Members with the given registry records (each a binder member), the real chart/ and
    support/ copied in (never their vendored charts/)."""
    repo = umbrella_repo(
        deploy_repo,
        members={name: {"domain": f"{name}.example.org", **r} for name, r in members.items()},
        values={name: {} for name in members},
        secrets={
            name: {"binderhub": {"jupyterhub": {"hub": {"cookieSecret": "c" * 64}}}}
            for name in members
        },
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
    assert split_manifest("a: 1\n---# c\nkind: X\n") == [(0, "a: 1"), (1, "# c\nkind: X\n")]


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
