"""How big things should be on a member node: every sizing rule of thumb, in one place.

The rules come from the federation runbook (k3s member on a bare VM): about 450 MB of RAM per
user pod, RAM running out before CPU; kubelet maxPods about 1.75 x RAM in GB; image garbage
collection from 40% disk use down to 20%. From these follow the BinderHub values a new member
starts with: its launch quota, the resources of its Docker-in-Docker build daemon and the
thresholds of its image cleaner. Each rule is a pure function that says why it is what it is,
and each can be overridden from the member record's `sizing` block (SIZING_KEYS);
`node_sizing` puts the kubelet's together for one node, `member_sizing` the BinderHub ones for
a member. RAM is in GB as `hubfleet.hosts.facts` reports it (GiB of MemTotal, one decimal); disk
sizes are in decimal GB, as the image cleaner counts bytes.
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


# --- the Docker-in-Docker build daemon ------------------------------------------------------

DIND_CPU_REQUEST_SHARE = 1 / 8
DIND_CPU_LIMIT_SHARE = 1 / 2
DIND_MEMORY_REQUEST_SHARE = 1 / 16
DIND_MEMORY_LIMIT_SHARE = 1 / 8
DIND_MEMORY_LIMIT_CAP_GB = 16


@dataclass(frozen=True)
class DindResources:
    """Requests and limits of the dind daemonset's container: CPUs and GiB."""

    cpu_request: float
    cpu_limit: float
    memory_request_gb: float
    memory_limit_gb: float

    def as_values(self) -> dict[str, dict[str, str]]:
        """As `binderhub.dind.resources` takes them (Kubernetes quantities)."""
        return {
            "requests": {
                "cpu": cpu_quantity(self.cpu_request),
                "memory": memory_quantity(self.memory_request_gb),
            },
            "limits": {
                "cpu": cpu_quantity(self.cpu_limit),
                "memory": memory_quantity(self.memory_limit_gb),
            },
        }


def dind_resources(cpus: int, ram_gb: float) -> DindResources:
    """Resources of the build daemon (dind) on a node with `cpus` CPUs and `ram_gb` of RAM.

    Builds (repo2docker: apt, pip and conda installs) come in bursts. CPU is not what runs out
    on a binder node, so a build may use up to half the CPUs, but it reserves only an eighth
    (at least one) so user pods still schedule. Memory is what runs out: dind reserves a
    sixteenth of the RAM and may use an eighth (at least 1 and 2 GiB), both capped at 16 GiB
    since no reasonable build needs more; `launch_quota` counts that limit out of the users' RAM.
    """
    if cpus < 1:
        raise ValueError(f"CPUs must be a positive number, not {cpus!r}")
    if not ram_gb > 0:
        raise ValueError(f"RAM must be a positive number of GB, not {ram_gb!r}")
    cpu_request = max(1, math.floor(cpus * DIND_CPU_REQUEST_SHARE))
    cpu_limit = min(cpus, max(2, math.floor(cpus * DIND_CPU_LIMIT_SHARE)))
    memory_request = min(
        DIND_MEMORY_LIMIT_CAP_GB, max(1, math.floor(ram_gb * DIND_MEMORY_REQUEST_SHARE))
    )
    memory_limit = min(
        DIND_MEMORY_LIMIT_CAP_GB, max(2, math.floor(ram_gb * DIND_MEMORY_LIMIT_SHARE))
    )
    return DindResources(
        cpu_request=cpu_request,
        cpu_limit=max(cpu_request, cpu_limit),
        memory_request_gb=memory_request,
        memory_limit_gb=max(memory_request, memory_limit),
    )


def cpu_quantity(cores: float) -> str:
    """A CPU count as a Kubernetes quantity: "2", or millicores ("1500m") for fractions."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{round(cores * 1000)}m"


def memory_quantity(gb: float) -> str:
    """GiB as a Kubernetes quantity: "8Gi", or MiB ("1536Mi") for fractions."""
    if float(gb).is_integer():
        return f"{int(gb)}Gi"
    return f"{round(gb * 1024)}Mi"


# --- BinderHub's launch quota ---------------------------------------------------------------

# What the chart itself keeps: kube-system, ingress, hub, proxy, binder, dind and image cleaner
# daemonsets, Harbor, monitoring (the same ~25 pods MAX_PODS_FLOOR is about).
SYSTEM_PODS = 25
# RAM those pods and the OS use (k3s, Harbor's database and registry, Prometheus, ...).
SYSTEM_RESERVED_GB = 4.0


def launch_quota(
    ram_gb: float,
    max_pods: int,
    dind_memory_limit_gb: float = 0.0,
    per_user_mb: int = RAM_PER_USER_MB,
) -> int:
    """BinderHub's `LaunchQuota.total_quota`: how many user pods the member runs at once.

    Every launch is one user pod of ~450 MB, and RAM runs out first: the quota is what fits in
    the RAM left after the system (SYSTEM_RESERVED_GB) and the build daemon's memory limit.
    It must also fit in the node's pod slots: maxPods less the chart's own ~25 pods. The
    smaller of the two, and at least 1 (a member with a quota of 0 refuses every launch).
    """
    users = users_per_node(ram_gb, SYSTEM_RESERVED_GB + dind_memory_limit_gb, per_user_mb)
    return max(1, min(users, max_pods - SYSTEM_PODS))


# --- BinderHub's image cleaner ----------------------------------------------------------------

IMAGE_CLEANER_HIGH_SHARE = 0.30
IMAGE_CLEANER_LOW_SHARE = 0.20
BYTES_PER_GB = 1_000_000_000


def image_cleaner_thresholds(
    disk_gb: float, high_gb: float | None = None, low_gb: float | None = None
) -> tuple[float, float]:
    """When the image cleaner deletes built images from dind: (high, low) in decimal GB.

    Built images are used once or twice and then sit on the disk, which they share with the
    kubelet's image cache (collected from 40% to 20%, `image_gc_thresholds`) and the users'
    scratch space. The cleaner counts absolute bytes (`imageGCThresholdType: absolute`, as
    mybinder.org's members do), so its share does not depend on what else fills the disk:
    from 30% of the disk down to 20%, whole GB. Either can be overridden; high stays above low.
    """
    if not disk_gb > 0:
        raise ValueError(f"disk must be a positive number of GB, not {disk_gb!r}")
    high = float(math.floor(disk_gb * IMAGE_CLEANER_HIGH_SHARE)) if high_gb is None else high_gb
    low = float(math.floor(disk_gb * IMAGE_CLEANER_LOW_SHARE)) if low_gb is None else low_gb
    if not low > 0:
        raise ValueError(f"image cleaner low threshold must be above 0 GB, not {low!r}")
    if high <= low:
        raise ValueError(
            f"image cleaner high threshold ({high} GB) must be above the low ({low} GB)"
        )
    return high, low


# --- overrides from the member record, and the whole sizing -----------------------------------

# The keys of a member's `sizing` block (hubfleet/schemas/federation.schema.json), each
# replacing one computed value.
SIZING_KEYS = (
    "ram_per_user_mb",
    "max_pods",
    "launch_quota",
    "dind_cpu_request",
    "dind_cpu_limit",
    "dind_memory_request_gb",
    "dind_memory_limit_gb",
    "image_cleaner_high_gb",
    "image_cleaner_low_gb",
    "image_gc_high_percent",
    "image_gc_low_percent",
)


def _number(overrides: Mapping[str, Any], key: str) -> float | None:
    value = overrides.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"sizing.{key} must be a positive number, not {value!r}")
    return value


def _integer(overrides: Mapping[str, Any], key: str) -> int | None:
    value = _number(overrides, key)
    if value is not None and not isinstance(value, int):
        raise ValueError(f"sizing.{key} must be a whole number, not {value!r}")
    return value


def _check_keys(overrides: Mapping[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(SIZING_KEYS))
    if unknown:
        raise ValueError(
            f"unknown sizing key(s) {', '.join(unknown)} (known: {', '.join(SIZING_KEYS)})"
        )


@dataclass(frozen=True)
class NodeSizing:
    """Everything sized for one node."""

    ram_gb: float
    max_pods: int
    image_gc_high: int
    image_gc_low: int
    users: int


def node_sizing(
    ram_gb: float,
    k3s_settings: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeSizing:
    """The kubelet's sizing of one node from its RAM and the member's overrides: its `sizing`
    block first (`max_pods`, `image_gc_*_percent`, `ram_per_user_mb`), then `k3s.max_pods`."""
    settings = k3s_settings or {}
    chosen = overrides or {}
    _check_keys(chosen)
    max_pods_override = _integer(chosen, "max_pods")
    if max_pods_override is None:
        max_pods_override = settings.get("max_pods")
    high, low = image_gc_thresholds(
        _integer(chosen, "image_gc_high_percent"), _integer(chosen, "image_gc_low_percent")
    )
    return NodeSizing(
        ram_gb=ram_gb,
        max_pods=max_pods_for(ram_gb, max_pods_override),
        image_gc_high=high,
        image_gc_low=low,
        users=users_per_node(
            ram_gb, per_user_mb=_integer(chosen, "ram_per_user_mb") or RAM_PER_USER_MB
        ),
    )


@dataclass(frozen=True)
class MemberSizing:
    """What a (single-node) member's BinderHub values are sized to, from its host's facts."""

    cpus: int
    ram_gb: float
    disk_gb: float
    ram_per_user_mb: int
    max_pods: int
    launch_quota: int
    dind: DindResources
    image_cleaner_high_gb: float
    image_cleaner_low_gb: float
    overridden: tuple[str, ...]  # the sizing keys the member record set


def member_sizing(
    cpus: int,
    ram_gb: float,
    disk_gb: float,
    overrides: Mapping[str, Any] | None = None,
    k3s_settings: Mapping[str, Any] | None = None,
) -> MemberSizing:
    """Every sizing rule for a member whose node has `cpus`, `ram_gb` and `disk_gb`, each
    replaced by the member record's `sizing` override where it has one. The launch quota is
    computed from the values actually used (an overridden maxPods or dind limit counts)."""
    chosen = overrides or {}
    _check_keys(chosen)
    node = node_sizing(ram_gb, k3s_settings, chosen)
    computed = dind_resources(cpus, ram_gb)
    dind = DindResources(
        cpu_request=_number(chosen, "dind_cpu_request") or computed.cpu_request,
        cpu_limit=_number(chosen, "dind_cpu_limit") or computed.cpu_limit,
        memory_request_gb=_number(chosen, "dind_memory_request_gb") or computed.memory_request_gb,
        memory_limit_gb=_number(chosen, "dind_memory_limit_gb") or computed.memory_limit_gb,
    )
    if dind.cpu_request > dind.cpu_limit:
        raise ValueError(
            f"dind CPU request ({dind.cpu_request}) is above its limit ({dind.cpu_limit})"
        )
    if dind.memory_request_gb > dind.memory_limit_gb:
        raise ValueError(
            f"dind memory request ({dind.memory_request_gb} GB) is above its limit "
            f"({dind.memory_limit_gb} GB)"
        )
    per_user_mb = _integer(chosen, "ram_per_user_mb") or RAM_PER_USER_MB
    quota = _integer(chosen, "launch_quota") or launch_quota(
        ram_gb, node.max_pods, dind.memory_limit_gb, per_user_mb
    )
    high, low = image_cleaner_thresholds(
        disk_gb, _number(chosen, "image_cleaner_high_gb"), _number(chosen, "image_cleaner_low_gb")
    )
    return MemberSizing(
        cpus=cpus,
        ram_gb=ram_gb,
        disk_gb=disk_gb,
        ram_per_user_mb=per_user_mb,
        max_pods=node.max_pods,
        launch_quota=quota,
        dind=dind,
        image_cleaner_high_gb=high,
        image_cleaner_low_gb=low,
        overridden=tuple(k for k in SIZING_KEYS if chosen.get(k) is not None),
    )
