"""A new member's registry entry, by provider: k3s and MicroK8s members list their host (a
MicroK8s one its MetalLB pool too), a GKE member names its cluster, a kubeconfig member (an
existing cluster) has neither; each has its support block."""

from __future__ import annotations

import ipaddress
from typing import Any

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.members.serving import support_block
from hubfleet.members.templates import NewMember

MICROK8S_CHANNEL = "1.32/stable"


def _base_record(request: NewMember) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stage": request.stage,
        "provider": request.provider,
        "domain": request.domain,
    }
    if request.chart:
        record["chart"] = request.chart
    record["support"] = support_block(request)
    return record


def member_record(request: NewMember) -> dict[str, Any]:
    """The entry `member.new` appends to the registry for `request`."""
    if request.provider == "gke":
        return _gke_record(request)
    if request.provider == "kubeconfig":  # an existing cluster: no hosts, its kubeconfig
        return _base_record(request)
    host: dict[str, Any] = {"address": request.address}
    if request.user != "root":
        host["user"] = request.user
    if request.port != 22:
        host["port"] = request.port
    record = _base_record(request)
    if request.provider == "microk8s":
        host["role"] = "main"
        record["microk8s"] = {"channel": MICROK8S_CHANNEL, "metallb": _metallb_pool(request)}
    record["hosts"] = [host]
    return record


def _gke_record(request: NewMember) -> dict[str, Any]:
    """A GKE member: where its cluster is, no hosts (credentials: secrets/NAME-gke.yaml)."""
    if request.gke is None:
        raise ConfigError(f"member {request.name}: a gke member needs its project and location")
    record = _base_record(request)
    record["gke"] = {
        "project": request.gke.project,
        "location": request.gke.location,
        "cluster": request.gke.name,
    }
    return record


def _metallb_pool(request: NewMember) -> str:
    try:
        address = ipaddress.IPv4Address(request.address)
    except ValueError:
        raise HubfleetError(
            f"member {request.name}: a microk8s member's MetalLB pool starts as its host's IPv4 "
            f"address, and {request.address!r} is not one; pass --host as an IPv4 address"
        ) from None
    return f"{address}/32"
