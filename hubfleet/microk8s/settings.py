"""What a MicroK8s member should look like, as data: its settings, hosts, addons and snap.

Pure: no I/O. From the member record this decides the main node and the workers, the snap
channel and refresh hold (or window), and the addons to enable on the main node (dependencies
first; MetalLB apart, after the joins, always with its range). It also reads `snap list`.

Joins and what the cluster reports (`microk8s status`, `add-node`, `join`, nodes, GPUs) are in
hubfleet.microk8s.cluster; the API server's address and certificate, the kubelet's node IP,
Calico and ufw in hubfleet.microk8s.network. The step runner applies all of this over SSH;
WireGuard is in hubfleet.microk8s.wireguard.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.registry.members import Member

SNAP = "microk8s"

DEFAULT_ADDONS = ("dns", "helm3", "hostpath-storage", "community", "dashboard")
DEFAULT_REFRESH_HOLD = "forever"
DEFAULT_TOKEN_TTL = 120
METALLB = "metallb"
GPU_ADDON = "nvidia"

# Addons that need others enabled before them (the MicroK8s docs: nvidia needs dns and helm3).
ADDON_NEEDS: Mapping[str, tuple[str, ...]] = {GPU_ADDON: ("dns", "helm3")}


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """A member's `microk8s` block with the defaults filled in."""

    channel: str
    addons: tuple[str, ...]
    metallb: str
    gpu: bool
    refresh_hold: str | None  # None when a refresh window is set instead
    refresh_window: str | None
    token_ttl: int


@dataclass(frozen=True)
class SnapState:
    """The installed microk8s snap as `snap list microk8s` shows it."""

    version: str
    revision: str
    tracking: str
    held: bool


@dataclass(frozen=True)
class SnapDecision:
    """What the snap needs: installing, or refreshing to the pinned channel."""

    action: Literal["install", "refresh"]
    command: str
    reason: str


# --- settings, hosts and roles --------------------------------------------------------------


def settings(member: Member) -> Settings:
    """The member's MicroK8s settings; a missing block or required key is a ConfigError."""
    raw = member.microk8s
    if not raw:
        raise ConfigError(f"member {member.name}: no microk8s settings in config/federation.yaml")
    for key in ("channel", "metallb"):
        if not raw.get(key):
            raise ConfigError(f"member {member.name}: microk8s.{key} is required")
    window = raw.get("refresh_window")
    hold = raw.get("refresh_hold") or (None if window else DEFAULT_REFRESH_HOLD)
    return Settings(
        channel=str(raw["channel"]),
        addons=tuple(str(a) for a in raw.get("addons", DEFAULT_ADDONS)),
        metallb=str(raw["metallb"]),
        gpu=bool(raw.get("gpu", False)),
        refresh_hold=str(hold) if hold else None,
        refresh_window=str(window) if window else None,
        token_ttl=int(raw.get("token_ttl", DEFAULT_TOKEN_TTL)),
    )


def addon_name(addon: str) -> str:
    """The addon's name as `microk8s status` shows it: `core/dns:1.1.1.1` -> `dns`."""
    return addon.split(":", 1)[0].rsplit("/", 1)[-1]


def wanted_addons(member: Member) -> list[str]:
    """The addons to enable on the main node, in order: each after the addons it needs.

    The member's list (or the default), plus nvidia when `gpu` is true; an addon's missing
    dependencies are added. MetalLB is not here: it is enabled after the joins, with its range.
    """
    s = settings(member)
    listed = list(s.addons)
    if s.gpu and GPU_ADDON not in {addon_name(a) for a in listed}:
        listed.append(GPU_ADDON)
    if METALLB in {addon_name(a) for a in listed}:
        raise ConfigError(
            f"member {member.name}: remove metallb from microk8s.addons; it is enabled after "
            "the workers join, with the range in microk8s.metallb"
        )
    ordered: list[str] = []

    def add(addon: str) -> None:
        if addon_name(addon) in {addon_name(a) for a in ordered}:
            return
        for need in ADDON_NEEDS.get(addon_name(addon), ()):
            add(next((a for a in listed if addon_name(a) == need), need))
        ordered.append(addon)

    for addon in listed:
        add(addon)
    return ordered


def missing_addons(member: Member, enabled: Iterable[str]) -> list[str]:
    """The wanted addons not yet enabled, in order; enabled ones are left alone."""
    have = {addon_name(a) for a in enabled}
    return [a for a in wanted_addons(member) if addon_name(a) not in have]


def enable_command(addon: str) -> str:
    """`microk8s enable <addon>`; a bare metallb is refused, since it would prompt for a range."""
    if addon_name(addon) == METALLB and ":" not in addon:
        raise HubfleetError("metallb needs its address range (metallb:<range>); it would prompt")
    return f"microk8s enable {shlex.quote(addon)}"


def _check_pool(member: Member, pool: str) -> None:
    for part in pool.split(","):
        try:
            if "/" in part:
                ipaddress.ip_network(part, strict=False)
                continue
            first, _, last = part.partition("-")
            start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
        except ValueError:
            raise ConfigError(
                f"member {member.name}: microk8s.metallb {part!r} is not A.B.C.D-E.F.G.H or a CIDR"
            ) from None
        if start.version != end.version or int(start) > int(end):
            raise ConfigError(
                f"member {member.name}: microk8s.metallb {part!r} ends before it starts"
            )


def metallb_argument(member: Member) -> str:
    """`metallb:<range>` from the record's microk8s.metallb, checked."""
    pool = settings(member).metallb
    _check_pool(member, pool)
    return f"{METALLB}:{pool}"


# --- snap -----------------------------------------------------------------------------------


def snap_install_command(channel: str) -> str:
    return f"snap install {SNAP} --classic --channel={shlex.quote(channel)}"


def snap_refresh_command(channel: str) -> str:
    return f"snap refresh {SNAP} --channel={shlex.quote(channel)}"


def refresh_hold_command(hold: str = DEFAULT_REFRESH_HOLD) -> str:
    """Hold automatic refreshes of microk8s: `forever` or a duration such as 720h."""
    return f"snap refresh --hold={shlex.quote(hold)} {SNAP}"


def refresh_window_command(window: str) -> str:
    """Let snapd refresh only in this window (refresh.timer is system-wide: every snap)."""
    return f"snap set system refresh.timer={shlex.quote(window)}"


def parse_snap_list(output: str) -> SnapState | None:
    """`snap list microk8s` output; None when the snap is not installed."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == SNAP:
            notes = fields[5].split(",") if len(fields) >= 6 else []
            return SnapState(fields[1], fields[2], fields[3], "held" in notes)
    return None


def _track(channel: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)/", channel)
    return (int(match.group(1)), int(match.group(2))) if match else None


def snap_decision(state: SnapState | None, channel: str) -> SnapDecision | None:
    """Install, refresh to the pinned channel, or None when the snap already tracks it.

    Kubernetes goes up one minor version at a time and never down: a pin further ahead or
    behind the installed track is refused, naming the channel to pin instead.
    """
    if state is None:
        return SnapDecision("install", snap_install_command(channel), f"installing {channel}")
    if state.tracking == channel:
        return None
    have, want = _track(state.tracking), _track(channel)
    if have and want and have[0] == want[0]:
        if want[1] < have[1]:
            raise ConfigError(
                f"microk8s tracks {state.tracking}, newer than the pinned {channel}; MicroK8s "
                f"cannot be downgraded: pin {state.tracking} or later"
            )
        if want[1] > have[1] + 1:
            step = f"{have[0]}.{have[1] + 1}/{channel.split('/', 1)[1]}"
            raise ConfigError(
                f"microk8s tracks {state.tracking}; upgrade one minor version at a time: "
                f"pin {step} first"
            )
    reason = f"tracking {state.tracking}, {channel} wanted"
    return SnapDecision("refresh", snap_refresh_command(channel), reason)


def refresh_commands(
    member: Member, state: SnapState, refresh_timer: str | None = None
) -> list[str]:
    """The commands that make snapd leave microk8s alone as the record says ([] when it does).

    A hold already in place is kept as it is (renewing a duration every run would never settle);
    a window is set only when `refresh_timer` (`snap get system refresh.timer`) differs.
    """
    s = settings(member)
    if s.refresh_window:
        unhold = [f"snap refresh --unhold {SNAP}"] if state.held else []
        timer = (
            [] if refresh_timer == s.refresh_window else [refresh_window_command(s.refresh_window)]
        )
        return [*unhold, *timer]
    return [] if state.held else [refresh_hold_command(s.refresh_hold or DEFAULT_REFRESH_HOLD)]
