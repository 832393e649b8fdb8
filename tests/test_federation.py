"""The federation in the registry: its block, each member's place, and the rules they keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.registry.federation import federation_of
from hubfleet.registry.members import check_registry
from tests.conftest_repo import MakeRepo
from tests.test_real_charts import real_charts  # noqa: F401 (fixture)

FEDERATION = """\
# the federation's entry, and who runs the redirector
federation:
  domain: fleet.example.org
  redirector: gke
members:
  gke:
    stage: prod
    provider: kubeconfig
    domain: gke.example.org
    chart: charts/demo
    federation:
      weight: 60
      prime: true
      quota: 300
  ovh:
    stage: prod
    provider: kubeconfig
    domain: ovh.example.org
    chart: charts/demo
    federation:
      weight: 40
      quota: 100
      health: https://ovh.example.org/custom-health
  staging:
    stage: staging
    provider: kubeconfig
    domain: staging.example.org
    chart: charts/demo
"""


@pytest.fixture
def repo(deploy_repo: MakeRepo) -> DeployRepo:
    made = deploy_repo({"gke": {"domain": "gke.example.org"}})
    made.registry.write_text(FEDERATION)
    return made


def edited(text: str, change: Any) -> str:
    """The registry changed, written again (comment gone, so lines count from the top)."""
    data = yaml.safe_load(text)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def test_the_federation_and_each_members_place(repo: DeployRepo) -> None:
    doc, problems = check_registry(repo)
    assert problems == []
    federation = federation_of(doc.data)
    assert federation is not None
    assert (federation.domain, federation.redirector) == ("fleet.example.org", "gke")
    assert federation.image == "jupyterhub/mybinder.org-federation-redirect"
    assert [p.member for p in federation.places] == ["gke", "ovh"]  # staging has no place
    assert federation.prime is not None and federation.prime.member == "gke"
    ovh = federation.place("ovh")
    assert ovh is not None
    assert ovh.health == "https://ovh.example.org/custom-health"  # overridden
    assert ovh.versions == "https://ovh.example.org/versions"  # derived from the domain
    assert ovh.weight == 40 and ovh.quota == 100 and not ovh.prime


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["members"]["gke"]["federation"].pop("prime"),
            "config/federation.yaml:1: key 'prime': exactly one member must be prime "
            "(prime: true), not none",
        ),
        (
            lambda d: d["members"]["ovh"]["federation"].update(prime=True),
            "config/federation.yaml:23: key 'prime': exactly one member must be prime "
            "(prime: true), not gke, ovh",
        ),
        (
            lambda d: d["members"]["gke"]["federation"].update(weight=0),
            "config/federation.yaml:10: member gke: key 'weight': the prime member must have "
            "weight > 0 (all traffic falls back to it)",
        ),
        (
            lambda d: d["federation"].update(redirector="nope"),
            "config/federation.yaml:3: key 'redirector': 'nope' is not a member",
        ),
        (
            lambda d: d.pop("federation"),
            "config/federation.yaml:7: member gke: key 'federation': a member's rotation needs "
            "the registry's top-level federation block (domain, redirector)",
        ),
        (
            lambda d: d["members"]["ovh"]["federation"].update(health="not a url"),
            "config/federation.yaml:22: member ovh: key 'federation.health': 'not a url' is not "
            "a valid http(s) URL",
        ),
    ],
)
def test_each_broken_rule_is_one_line_naming_the_place(
    repo: DeployRepo, change: Any, expected: str
) -> None:
    repo.registry.write_text(edited(FEDERATION, change))
    _, problems = check_registry(repo)
    assert len(problems) >= 1
    assert str(problems[0]).startswith(expected)


def test_the_redirector_is_rendered_from_the_registry_with_the_real_charts(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    import json

    from hubfleet.deploy.member import render_member
    from hubfleet.helm.sdk import SdkEngine
    from hubfleet.registry.members import load_registry
    from tests.test_support import EMAIL, support_repo

    repo = support_repo(
        deploy_repo,
        gke={"support": {"email": EMAIL}, "federation": {"weight": 60, "prime": True}},
        ovh={"federation": {"weight": 40}},
        drained={"federation": {"weight": 0, "drained": {"weight": 20}}},
    )
    registry = yaml.safe_load(repo.registry.read_text())
    registry["federation"] = {
        "domain": "fleet.example.org",
        "redirector": "gke",
        "tag": "2026.11.1",
    }
    repo.registry.write_text(yaml.safe_dump(registry))
    engine = SdkEngine(chart_cache=real_charts)
    members = load_registry(repo)

    rendered = render_member(repo, members.member("gke"), engine)
    assert rendered.unread == ()
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    config = json.loads(objects[("ConfigMap", "federation-redirect")]["data"]["config.json"])
    assert config["hosts"] == {
        "gke": {
            "url": "https://gke.example.org",
            "weight": 60,
            "health": "https://gke.example.org/health",
            "versions": "https://gke.example.org/versions",
            "prime": True,
        },
        "ovh": {
            "url": "https://ovh.example.org",
            "weight": 40,
            "health": "https://ovh.example.org/health",
            "versions": "https://ovh.example.org/versions",
            "prime": False,
        },
    }  # the drained member (weight 0) is left out
    assert config["check"]["period"] == 15 and config["load_balancer"] == "random"
    deployment = objects[("Deployment", "federation-redirect")]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "jupyterhub/mybinder.org-federation-redirect:2026.11.1"
    ingress = objects[("Ingress", "federation-redirect")]
    assert ingress["spec"]["rules"][0]["host"] == "fleet.example.org"
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert (
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    )
    # where the host list came from: the registry, not a values file
    origins = {
        ".".join(map(str, p)): layer.name for p, layer in rendered.values.effective.origins.items()
    }
    assert origins["federationRedirect.hosts.ovh.weight"] == "config/federation.yaml"

    other = render_member(repo, members.member("ovh"), engine)
    assert not [o for o in other.objects if o["metadata"]["name"] == "federation-redirect"]


def test_the_rotation_decides_a_binder_members_launch_quota(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    from hubfleet.registry.members import load_registry
    from hubfleet.registry.rotation import drain
    from hubfleet.values.layers import member_values
    from tests.test_support import support_repo

    repo = support_repo(
        deploy_repo,
        gke={"federation": {"weight": 60, "prime": True}},
        ovh={"federation": {"weight": 40, "quota": 100}},
    )
    registry = yaml.safe_load(repo.registry.read_text())
    registry["federation"] = {"domain": "fleet.example.org", "redirector": "gke"}
    repo.registry.write_text(yaml.safe_dump(registry))
    own = {"binderhub": {"config": {"LaunchQuota": {"total_quota": 87}}}}
    repo.member_values("ovh").write_text(yaml.safe_dump(own))  # what member.new sized

    def quota() -> tuple[int, str]:
        values = member_values(repo, load_registry(repo).member("ovh")).effective
        path = ("binderhub", "config", "LaunchQuota", "total_quota")
        return values.values["binderhub"]["config"]["LaunchQuota"]["total_quota"], values.origins[
            path
        ].name

    assert quota() == (100, "config/federation.yaml (rotation)")
    change = drain(repo.registry.read_text(), "ovh")
    assert change is not None
    repo.registry.write_text(change.text)
    assert quota() == (0, "config/federation.yaml (rotation)")


def test_the_federations_grafana_shows_every_members_prometheus(
    deploy_repo: MakeRepo,
    real_charts: Path,  # noqa: F811
) -> None:
    from hubfleet.deploy.member import render_member
    from hubfleet.helm.sdk import SdkEngine
    from hubfleet.registry.members import load_registry
    from hubfleet.registry.support import support_release
    from tests.test_support import EMAIL, support_repo

    repo = support_repo(
        deploy_repo,
        gke={"support": {"email": EMAIL}, "federation": {"weight": 60, "prime": True}},
        ovh={"support": {"email": EMAIL}, "federation": {"weight": 40}},
        bare={"support": {"email": EMAIL, "monitoring": False}, "federation": {"weight": 10}},
    )
    registry = yaml.safe_load(repo.registry.read_text())
    registry["federation"] = {"domain": "fleet.example.org", "redirector": "gke"}
    repo.registry.write_text(yaml.safe_dump(registry))
    engine = SdkEngine(chart_cache=real_charts)
    members = load_registry(repo)

    def support_objects(name: str) -> dict[tuple[str, str], dict[str, Any]]:
        support = support_release(members.member(name))
        assert support is not None
        rendered = render_member(repo, support, engine)
        assert rendered.unread == ()
        return {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}

    central = support_objects("gke")
    sources = yaml.safe_load(central[("ConfigMap", "support-grafana")]["data"]["datasources.yaml"])
    assert [(s["name"], s["url"]) for s in sources["datasources"]] == [
        ("Prometheus", "http://support-prometheus-server.support.svc.cluster.local"),
        ("ovh", "https://prometheus.ovh.example.org"),  # bare runs no prometheus
    ]
    other = support_objects("ovh")
    ingress = other[("Ingress", "support-prometheus-server")]
    assert ingress["spec"]["rules"][0]["host"] == "prometheus.ovh.example.org"
    assert ingress["spec"]["tls"][0]["secretName"] == "ovh-prometheus-tls"
    assert (
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    )
    own = yaml.safe_load(other[("ConfigMap", "support-grafana")]["data"]["datasources.yaml"])
    assert [s["name"] for s in own["datasources"]] == [
        "Prometheus"
    ]  # only the central one lists all
