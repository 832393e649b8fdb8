"""The test-host harness's plumbing in this machine's own namespaces (see tests/harness.py).

Whether hosts can run here at all, running a tool with a clean environment, finding a lab's
processes in /proc (by network namespace) and a free subnet for its bridge. No pytest here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_PREFIX = "hubfleet-"
# Where the lab looks for a free /24, in order: second octets 213..254 then 200..212 of 10/8.
SUBNET_SECOND_OCTETS = (*range(213, 255), *range(200, 213))
LOCK_FILE = Path("/run/lock/hubfleet-lab.lock")
STEP_TIMEOUT_S = 10.0


class LabError(RuntimeError):
    """The harness could not build, change or tear down a lab; the message says what failed."""


def skip_reason() -> str | None:
    """Why test hosts cannot run here (one line), or None when they can."""
    if os.geteuid() != 0:
        return "test hosts need root (network, mount and UTS namespaces, sshd on port 22)"
    for tool in ("ip", "nsenter", "unshare", "losetup", "mount"):
        if shutil.which(tool) is None:
            return f"test hosts need `{tool}` (apt: iproute2, util-linux, mount)"
    if not os.access(SSHD, os.X_OK):
        return f"test hosts need {SSHD} (apt: openssh-server)"
    if not os.access("/usr/bin/python3", os.X_OK):
        return "test hosts need /usr/bin/python3 (their init and the stand-ins run with it)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return (
            f"`ip netns` is unavailable: {probe.stderr.strip() or 'exit ' + str(probe.returncode)}"
        )
    return None


def wireguard_skip_reason() -> str | None:
    """Why real WireGuard cannot run in test hosts here (one line), or None when it can:
    wg-quick (apt wireguard-tools) with wireguard-go (apt wireguard-go) on /dev/net/tun."""
    for tool, package in (
        ("wg", "wireguard-tools"),
        ("wg-quick", "wireguard-tools"),
        ("wireguard-go", "wireguard-go"),
    ):
        if shutil.which(tool, path=HOST_PATH) is None:
            return f"WireGuard in test hosts needs `{tool}` (apt: {package})"
    if not os.path.exists("/dev/net/tun"):
        return "WireGuard in test hosts needs /dev/net/tun (wireguard-go's TUN device)"
    return None


# --- tools -----------------------------------------------------------------------------------


def _run(
    args: list[str], *, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_tool_env())
    if check and proc.returncode != 0:
        raise LabError(
            f"`{shlex.join(args)}` failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def _tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for what the lab starts: nothing of this process's leaks in."""
    env = {"PATH": HOST_PATH, "LANG": "C.UTF-8", "HOME": "/root", "USER": "root", "LOGNAME": "root"}
    env.update(extra or {})
    return env


# --- processes -------------------------------------------------------------------------------


def _ns_id(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _pids_in(netns_ids: set[str]) -> list[int]:
    """Every process whose network namespace is one of `netns_ids` ("net:[inode]").

    Only network namespaces the lab still holds (mounted under /run/netns) may be asked
    about: the kernel reuses a freed namespace's inode number for the next new namespace.
    Every process of a host is in its network namespace (the harness always enters it).
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _ns_id(entry, "net") in netns_ids:
            found.append(int(entry))
    return found


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state is [0], ppid [1], start time [19]."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int, started: str) -> bool:
    """Still that process (pids are reused) and not a zombie (init reaps in its own time)."""
    fields = _stat(pid)
    return bool(fields) and fields[19] == started and fields[0] != "Z"


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent:
                found.append(int(entry))
    return found


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _readline(stream: Any, timeout: float) -> bytes:
    """One line from a pipe, or what arrived before EOF or the timeout."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


# --- links and subnets -----------------------------------------------------------------------


def _disable_ipv6(interface: str) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6").write_text("1\n")


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network a route (any table, but not a default route) or address here uses."""
    taken: list[ipaddress.IPv4Network] = []
    routes = json.loads(_run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default":
            continue
        with contextlib.suppress(ValueError):
            taken.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    for link in json.loads(_run(["ip", "-4", "-j", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                taken.append(
                    ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                )
    return taken


def _choose_subnet(requested: str | None) -> ipaddress.IPv4Network:
    """The lab's network: `requested` when it overlaps nothing here, else the first free /24
    of SUBNET_SECOND_OCTETS. Hold LOCK_FILE from choosing it until its bridge has it."""
    taken = _taken_networks()
    if requested:
        wanted = ipaddress.ip_network(requested, strict=True)
        if not isinstance(wanted, ipaddress.IPv4Network) or wanted.prefixlen > 24:
            raise LabError(f"subnet {wanted}: want an IPv4 network of /24 or larger")
        clash = [str(n) for n in taken if n.overlaps(wanted)]
        if clash:
            raise LabError(
                f"subnet {wanted} overlaps routes or addresses of this machine: {', '.join(clash)}"
            )
        return wanted
    for second in SUBNET_SECOND_OCTETS:
        for third in range(256):
            candidate = ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
            if not any(candidate.overlaps(n) for n in taken):
                return candidate
    raise LabError(
        "no free /24 in 10.200.0.0-10.254.255.255: every one overlaps a route or address of this machine; pass subnet="
    )
