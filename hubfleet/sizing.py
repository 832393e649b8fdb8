"""How big things should be on a member node: every sizing rule of thumb, in one place.

The rules come from the federation runbook (k3s member on a bare VM): about 450 MB of RAM per
user pod, RAM running out before CPU; kubelet maxPods about 1.75 x RAM in GB; image garbage
collection from 40% disk use down to 20%. Each rule is a pure function that says why it is what
it is, and each can be overridden from the member record; `node_sizing` puts them together for
one node. RAM is in GB as `hubfleet.hostfacts` reports it (GiB of MemTotal, one decimal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PODS_PER_GB = 1.75
# A binder member runs ~25 pods of its own before any user (kube-system, ingress, hub, proxy,
# binder, dind and image cleaner daemonsets, Harbor, monitoring): fewer slots than that and the
# chart itself does not fit.
MAX_PODS_FLOOR = 30
# k3s gives every node a /24 of the pod network (cluster-cidr 10.42.0.0/16, node-cidr-mask-size
# 24): 254 pod addresses. More pods than that are admitted by the kubelet and then fail to get
# an address.
MAX_PODS_CEILING = 250

IMAGE_GC_HIGH_PERCENT = 40
IMAGE_GC_LOW_PERCENT = 20

RAM_PER_USER_MB = 450


def max_pods(ram_gb: float) -> int:
    """The kubelet's maxPods for a node with `ram_gb` of RAM: round(1.75 x RAM in GB).

    A user pod is guaranteed ~450 MB and RAM is what runs out first, so a node holds about
    2.2 user pods per GB; 1.75 per GB leaves room for the system pods and for users who use
    more than their guarantee. Kept within [MAX_PODS_FLOOR, MAX_PODS_CEILING]: below the floor
    the chart's own pods do not fit, above the ceiling the node's /24 pod network runs out of
    addresses.
    """
    if not ram_gb > 0:
        raise ValueError(f"RAM must be a positive number of GB, not {ram_gb!r}")
    return max(MAX_PODS_FLOOR, min(MAX_PODS_CEILING, round(MAX_PODS_PER_GB * ram_gb)))


def max_pods_for(ram_gb: float, override: int | None = None) -> int:
    """maxPods for this node: the member record's `k3s.max_pods` when set, else `max_pods`.

    An override is taken as given (the schema bounds it to 10..1000): an operator who sets it
    knows their node, e.g. one whose pod network was widened beyond a /24.
    """
    if override is None:
        return max_pods(ram_gb)
    if isinstance(override, bool) or not isinstance(override, int) or override < 1:
        raise ValueError(f"max_pods override must be a positive integer, not {override!r}")
    return override


def image_gc_thresholds(high: int | None = None, low: int | None = None) -> tuple[int, int]:
    """The kubelet's image garbage collection thresholds, (high, low) percent of disk use.

    Binder nodes pull and build many large images that are used once; collecting from 40%
    down to 20% (the kubelet defaults are 85/80) keeps room for builds and for the next pulls,
    and does the cleaning in fewer, larger passes. Either value can be overridden; high must
    stay above low.
    """
    chosen_high = IMAGE_GC_HIGH_PERCENT if high is None else high
    chosen_low = IMAGE_GC_LOW_PERCENT if low is None else low
    for name, value in (("high", chosen_high), ("low", chosen_low)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"image GC {name} threshold must be a percentage, not {value!r}")
    if chosen_high <= chosen_low:
        raise ValueError(
            f"image GC high threshold ({chosen_high}%) must be above the low one ({chosen_low}%)"
        )
    return chosen_high, chosen_low


def users_per_node(
    ram_gb: float, reserved_gb: float = 0.0, per_user_mb: int = RAM_PER_USER_MB
) -> int:
    """How many user pods fit in a node's RAM at ~450 MB each (RAM is the limit, not CPU).

    `reserved_gb` is RAM kept for everything that is not a user pod; the rule of thumb itself
    reserves nothing, which is why maxPods (1.75/GB) stays below this (about 2.2/GB).
    GB and MB are both binary here (GiB, MiB), as the host reports RAM.
    """
    if not ram_gb > 0:
        raise ValueError(f"RAM must be a positive number of GB, not {ram_gb!r}")
    if per_user_mb <= 0:
        raise ValueError(f"RAM per user must be positive, not {per_user_mb!r}")
    usable_mb = max(0.0, ram_gb - reserved_gb) * 1024
    return math.floor(usable_mb / per_user_mb)


@dataclass(frozen=True)
class NodeSizing:
    """Everything sized for one node."""

    ram_gb: float
    max_pods: int
    image_gc_high: int
    image_gc_low: int
    users: int


def node_sizing(ram_gb: float, k3s_settings: Mapping[str, Any] | None = None) -> NodeSizing:
    """The sizing of one node from its RAM and the member's `k3s` settings (overrides)."""
    settings = k3s_settings or {}
    high, low = image_gc_thresholds()
    return NodeSizing(
        ram_gb=ram_gb,
        max_pods=max_pods_for(ram_gb, settings.get("max_pods")),
        image_gc_high=high,
        image_gc_low=low,
        users=users_per_node(ram_gb),
    )
