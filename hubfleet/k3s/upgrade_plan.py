"""k3s automatic upgrades: the system-upgrade-controller Plans of a member, and applying them.

Two Plans per member, as the k3s automated-upgrade docs lay them out: one for the servers
(control-plane nodes, cordoned, `concurrency` at a time) and one for the agents, which waits
for the server plan (`prepare`) and drains each node first. Both follow the member record's
`k3s.upgrade`: a channel (default: the install's channel, else stable) or a pinned version
(default: the install's pinned version, so a pin is not upgraded past), and a maintenance
window, by default Sunday (UTC) as the federation runbook has it ("k3s should self-update
every Sunday; if there's a problem, we'll see it Monday").

`apply_plans` writes them through `hubfleet.kube.apply.apply_custom_objects`, a thin
create-or-replace over the Kubernetes API (CustomObjectsApi).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from hubfleet.registry.members import Member

if TYPE_CHECKING:
    from hubfleet.kube.apply import ApplyOutcome
    from hubfleet.kube.client import KubeClient

GROUP = "upgrade.cattle.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
NAMESPACE = "system-upgrade"
SERVICE_ACCOUNT = "system-upgrade"
UPGRADE_IMAGE = "rancher/k3s-upgrade"
CHANNEL_URL = "https://update.k3s.io/v1-release/channels/{channel}"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
DEFAULT_CHANNEL = "stable"
# two hours early on Sunday (UTC): upgrades start only inside it, when the fewest users launch
DEFAULT_WINDOW: Mapping[str, Any] = {
    "days": ["sunday"],
    "start": "02:00",
    "end": "04:00",
    "timezone": "UTC",
}
MANAGED_BY = {"app.kubernetes.io/managed-by": "hubfleet"}


# --- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradeSettings:
    """What the Plans follow: a channel or a version, how many nodes at once, and when."""

    channel: str | None
    version: str | None
    concurrency: int
    window: Mapping[str, Any]


def upgrade_settings(member: Member) -> UpgradeSettings:
    """The member's `k3s.upgrade`, defaults filled in from its install settings."""
    k3s = member.k3s
    upgrade = k3s.get("upgrade") or {}
    version = upgrade.get("version")
    channel = upgrade.get("channel")
    if not version and not channel:
        version = k3s.get("version")
        channel = None if version else k3s.get("channel") or DEFAULT_CHANNEL
    window = {**DEFAULT_WINDOW, **(upgrade.get("window") or {})}
    return UpgradeSettings(
        channel=str(channel) if channel else None,
        version=str(version) if version else None,
        concurrency=int(upgrade.get("concurrency", 1)),
        window=window,
    )


def plan_names(member: Member) -> tuple[str, str]:
    """The names of the member's (server, agent) Plans."""
    return f"{member.name}-k3s-server", f"{member.name}-k3s-agent"


def _common_spec(settings: UpgradeSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "concurrency": settings.concurrency,
        "serviceAccountName": SERVICE_ACCOUNT,
        "upgrade": {"image": UPGRADE_IMAGE},
    }
    if settings.version:
        spec["version"] = settings.version
    else:
        spec["channel"] = CHANNEL_URL.format(channel=settings.channel)
    window = settings.window
    spec["window"] = {
        "days": list(window["days"]),
        "startTime": window["start"],
        "endTime": window["end"],
        "timeZone": window.get("timezone") or "UTC",
    }
    return spec


def _plan(member: Member, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Plan",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {**MANAGED_BY, "hubfleet/member": member.name},
        },
        "spec": spec,
    }


def server_plan(member: Member) -> dict[str, Any]:
    """The Plan for the control-plane nodes: one at a time (by default), cordoned, never
    drained: a single-server member's user pods have no other node to go to, and a drain
    would only end them before the upgrade does."""
    name, _ = plan_names(member)
    spec = _common_spec(upgrade_settings(member))
    spec["nodeSelector"] = {
        "matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "In", "values": ["true"]}]
    }
    spec["cordon"] = True
    return _plan(member, name, spec)


def agent_plan(member: Member) -> dict[str, Any]:
    """The Plan for the agents: after the servers are done, each node drained first.

    User pods are bare pods with emptyDir volumes and binder runs daemonsets, so the drain
    forces, deletes emptyDir data and leaves daemonset pods; in the window, users lose their
    sessions on that node, as they would on any reboot.
    """
    server, name = plan_names(member)
    spec = _common_spec(upgrade_settings(member))
    spec["nodeSelector"] = {
        "matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "DoesNotExist"}]
    }
    spec["prepare"] = {"image": UPGRADE_IMAGE, "args": ["prepare", server]}
    spec["drain"] = {"force": True, "ignoreDaemonSets": True, "deleteEmptydirData": True}
    return _plan(member, name, spec)


def render_plans(member: Member) -> list[dict[str, Any]]:
    """The member's Plans: server first (the agent plan waits for it)."""
    return [server_plan(member), agent_plan(member)]


def plans_yaml(plans: Iterable[Mapping[str, Any]]) -> str:
    """The Plans as one multi-document YAML stream, as `kubectl apply -f` takes it."""
    return yaml.safe_dump_all([dict(p) for p in plans], sort_keys=False, explicit_start=True)


def apply_plans(
    api: KubeClient, plans: Iterable[Mapping[str, Any]], where: str = "cluster"
) -> list[ApplyOutcome]:
    """Apply a member's Plans through the Kubernetes adapter (see `kube_apply.apply_custom_objects`)."""
    from hubfleet.kube.apply import apply_custom_objects

    hint = "install system-upgrade-controller (it creates the namespace) first"
    return apply_custom_objects(api, plans, where, missing_namespace_hint={NAMESPACE: hint})
