"""The nodes of a cluster as `kubectl get nodes -o json` lists them: ready, version, role."""

from __future__ import annotations

from dataclasses import dataclass

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.jsonfile import parse_json


@dataclass(frozen=True)
class NodeStatus:
    """One node as `kubectl get nodes -o json` shows it."""

    name: str
    ready: bool
    version: str
    control_plane: bool = False
    schedulable: bool = True


def parse_nodes(output: str, command: str = "kubectl get nodes -o json") -> list[NodeStatus]:
    """The nodes in `kubectl get nodes -o json` output (k3s's and MicroK8s's kubectl alike);
    `command` names what printed it, for the error."""
    try:
        data = parse_json(output, command)
    except ConfigError as err:
        raise HubfleetError(f"{command} did not print JSON ({err})") from None
    nodes = []
    for item in data.get("items", []) if isinstance(data, dict) else []:
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        labels = meta.get("labels") or {}
        nodes.append(
            NodeStatus(
                name=str(meta.get("name", "")),
                ready=conditions.get("Ready") == "True",
                version=str(status.get("nodeInfo", {}).get("kubeletVersion", "")),
                control_plane=labels.get("node-role.kubernetes.io/control-plane") == "true",
                schedulable=not spec.get("unschedulable", False),
            )
        )
    return nodes
