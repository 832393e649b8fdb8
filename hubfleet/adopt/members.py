"""The members of the adopted federation: every name deploy.py, config/*.yaml or a kubeconfig
file gives, with its stage (the CD workflow, or --stage), how hubfleet reaches its cluster
(kubeconfig, or gke with project and zone) and its domain (the binder's ingress host). Members
hubfleet cannot deploy are leftovers, each with why and what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubfleet.adopt.deploy_py import ClusterLists
from hubfleet.adopt.leftovers import Leftover
from hubfleet.adopt.source import CHART, SourceRepo
from hubfleet.helm.values_yaml import parse_values
from hubfleet.registry.members import registry_schema
from hubfleet.values.merge import ValuesLayer, get_path, merge_layers

DOMAIN_PATH = ("binderhub", "ingress", "hosts")
NOT_MEMBERS = frozenset({"cert-manager"})  # config/<name>.yaml of other releases


@dataclass(frozen=True)
class GkeCluster:
    project: str
    location: str
    cluster: str


@dataclass(frozen=True)
class FoundMember:
    """A member hubfleet adopts, and its values layers in the order deploy.py passed them."""

    name: str
    stage: str
    provider: str  # kubeconfig or gke
    domain: str
    layers: tuple[str, ...]  # relative paths, plain and secret, deploy.py's order
    gke: GkeCluster | None = None

    def record(self) -> dict[str, Any]:
        """Its registry entry (the federation block is added by hubfleet.adopt.federation)."""
        record: dict[str, Any] = {
            "stage": self.stage,
            "provider": self.provider,
            "domain": self.domain,
            "chart": CHART,
        }
        if self.gke is not None:
            record["gke"] = {
                "project": self.gke.project,
                "location": self.gke.location,
                "cluster": self.gke.cluster,
            }
        return record


@dataclass(frozen=True)
class ValuesFiles(Mapping[str, Mapping[str, Any]]):
    """The adopted repository's values files, each read by Helm's parser when first asked for."""

    source: SourceRepo
    read: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def __getitem__(self, relative: str) -> Mapping[str, Any]:
        if relative not in self.read:
            text = self.source.read_text(relative)
            self.read[relative] = parse_values(text, self.source.shown(relative))
        return self.read[relative]

    def __iter__(self) -> Iterator[str]:
        return iter(self.read)

    def __len__(self) -> int:
        return len(self.read)


def common_layers(source: SourceRepo) -> list[str]:
    """deploy.py's common files: config/common/*.yaml, then secrets/config/common/*.yaml."""
    return source.files("config/common", "*.yaml") + source.files("secrets/config/common", "*.yaml")


def member_layers(source: SourceRepo, name: str) -> list[str]:
    own = [f"config/{name}.yaml", f"secrets/config/{name}.yaml"]
    return common_layers(source) + [p for p in own if source.exists(p)]


def merged_values(
    defaults: Mapping[str, Any], layers: list[str], parsed: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    chain = [ValuesLayer("chart", defaults), *(ValuesLayer(p, parsed[p]) for p in layers)]
    return merge_layers(chain).values


def candidate_names(source: SourceRepo, lists: ClusterLists) -> list[str]:
    names = set(lists.names)
    names |= {
        p.removeprefix("config/").removesuffix(".yaml") for p in source.files("config", "*.yaml")
    }
    names |= {
        p.removeprefix("secrets/").removesuffix("-kubeconfig.yaml")
        for p in source.files("secrets", "*-kubeconfig.yaml")
    }
    return sorted(names - NOT_MEMBERS)  # config/cert-manager.yaml: hubfleet.adopt.leftovers


def _domain(values: Mapping[str, Any]) -> str | None:
    hosts = get_path(values, DOMAIN_PATH)
    if isinstance(hosts, list) and hosts and isinstance(hosts[0], str):
        return hosts[0]
    return None


def find_member(
    source: SourceRepo,
    name: str,
    lists: ClusterLists,
    stages: Mapping[str, str],
    defaults: Mapping[str, Any],
    parsed: Mapping[str, Mapping[str, Any]],
) -> FoundMember | Leftover:
    """One name: the member hubfleet adopts, or why it cannot (checked in deploy.py's order:
    a kubeconfig, Azure, GKE, EKS)."""
    kubeconfig = f"secrets/{name}-kubeconfig.yaml"
    redo = f"then adopt again (or add it with invoke member.new {name})"
    if not re.fullmatch(registry_schema()["$defs"]["name"]["pattern"], name):
        return Leftover(name, "not a DNS label hubfleet can name a member by", "rename it, " + redo)
    gke = None
    if name in lists.kubeconfig or source.exists(kubeconfig):
        if not source.exists(kubeconfig):
            return Leftover(
                f"member {name}",
                f"no {kubeconfig} (a development cluster?)",
                f"save its kubeconfig there, {redo}",
            )
        provider = "kubeconfig"
    elif name in lists.azure:
        return Leftover(
            f"member {name}",
            f"an Azure AKS cluster (resource group {lists.azure[name]}): hubfleet has no Azure "
            "provider",
            f"save a kubeconfig of it (az aks get-credentials --file FILE) and run invoke member.new "
            f"{name} --provider kubeconfig --kubeconfig FILE",
        )
    elif name in lists.gcp_projects:
        zone = lists.gcp_zones.get(name)
        if zone is None:
            return Leftover(f"member {name}", "GCP_PROJECTS names it but GCP_ZONES does not", redo)
        provider, gke = "gke", GkeCluster(lists.gcp_projects[name], zone, name)
    elif name in lists.aws:
        return Leftover(
            f"member {name}",
            f"an AWS EKS cluster ({lists.aws[name]}): hubfleet has no EKS provider",
            f"save a kubeconfig of it (aws eks update-kubeconfig --name {lists.aws[name]} "
            f"--kubeconfig FILE) and run invoke member.new {name} --provider kubeconfig "
            "--kubeconfig FILE",
        )
    else:
        return Leftover(
            f"config/{name}.yaml",
            f"deploy.py names no cluster {name} and there is no {kubeconfig}",
            "values of another release? move what is needed by hand",
        )
    stage = stages.get(name)
    if stage is None:
        return Leftover(
            f"member {name}",
            "no stage: not in the CD workflow's matrix",
            f"pass --stage {name}=staging (or prod), {redo}",
        )
    layers = member_layers(source, name)
    domain = _domain(merged_values(defaults, layers, parsed))
    pattern = registry_schema()["$defs"]["domain"]["pattern"]
    if domain is None or not re.fullmatch(pattern, domain):
        return Leftover(
            f"member {name}",
            f"no usable domain at binderhub.ingress.hosts[0] of its values ({domain!r})",
            f"set it in config/{name}.yaml, {redo}",
        )
    return FoundMember(name, stage, provider, domain, tuple(layers), gke)
