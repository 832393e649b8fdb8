"""The federation in the registry: its block, each member's place, and the rules they keep."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.registry.federation import federation_of
from hubfleet.registry.members import check_registry
from tests.conftest_repo import MakeRepo

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
