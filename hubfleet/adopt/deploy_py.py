"""What a mybinder.org-deploy `deploy.py` says about its clusters, read as Python syntax (`ast`),
never run: the module-level literals KUBECONFIG_CLUSTERS (members deployed with
secrets/<member>-kubeconfig.yaml), GCP_PROJECTS and GCP_ZONES (GKE members), AWS_DEPLOYMENTS
(member -> EKS cluster) and AZURE_RGs (cluster -> resource group)."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubfleet.errors import ConfigError

NAMES = ("KUBECONFIG_CLUSTERS", "GCP_PROJECTS", "GCP_ZONES", "AWS_DEPLOYMENTS", "AZURE_RGs")


@dataclass(frozen=True)
class ClusterLists:
    kubeconfig: frozenset[str] = frozenset()
    gcp_projects: Mapping[str, str] = field(default_factory=dict)
    gcp_zones: Mapping[str, str] = field(default_factory=dict)
    aws: Mapping[str, str] = field(default_factory=dict)
    azure: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return {*self.kubeconfig, *self.gcp_projects, *self.gcp_zones, *self.aws, *self.azure}


def _literal(node: ast.expr, name: str, shown: str) -> Any:
    call = node.func if isinstance(node, ast.Call) and not node.args and not node.keywords else None
    if isinstance(call, ast.Name) and call.id in ("set", "dict"):  # set() or dict(): empty
        return set() if call.id == "set" else {}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ConfigError(
            f"{shown}:{node.lineno}: {name} is not a literal set or dict; write it out, "
            "then adopt again"
        ) from None


def _strings(value: Any, name: str, shown: str, line: int, mapping: bool) -> Any:
    if mapping:
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ConfigError(f"{shown}:{line}: {name} is not a dict of names to names")
    if isinstance(value, set | list | tuple | frozenset) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise ConfigError(f"{shown}:{line}: {name} is not a set of member names")


def cluster_lists(text: str, shown: str) -> ClusterLists:
    """The cluster lists of deploy.py's text; a name it does not set is empty."""
    try:
        tree = ast.parse(text, shown)
    except (SyntaxError, ValueError) as err:
        line = getattr(err, "lineno", None) or 1
        raise ConfigError(f"{shown}:{line}: not Python that parses; is this deploy.py?") from None
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in NAMES:
                raw = _literal(value, target.id, shown)
                mapping = target.id != "KUBECONFIG_CLUSTERS"
                found[target.id] = _strings(raw, target.id, shown, node.lineno, mapping)
    return ClusterLists(
        kubeconfig=found.get("KUBECONFIG_CLUSTERS", frozenset()),
        gcp_projects=found.get("GCP_PROJECTS", {}),
        gcp_zones=found.get("GCP_ZONES", {}),
        aws=found.get("AWS_DEPLOYMENTS", {}),
        azure=found.get("AZURE_RGs", {}),
    )
