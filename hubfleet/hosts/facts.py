"""What a host is (OS, arch, CPUs, RAM, disk, systemd, clock, ports, privileges) and whether it
can become a member node: one gathering script run in one round trip, and pure functions
that parse its output and judge it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The script prints `key=value` lines; every probe tolerates a missing tool. It runs on every
# host at the start of every run, so it starts few processes (uname, nproc, df, systemctl,
# timedatectl, ss, awk): the rest is read by the shell itself.
GATHER_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "os_name=${PRETTY_NAME:-unknown}"
echo "arch=$(uname -m)"
c=$(nproc 2>/dev/null); echo "cpus=${c:-0}"
while read -r k v _; do [ "$k" = MemTotal: ] && echo "mem_kb=$v" && break; done 2>/dev/null </proc/meminfo
[ -d /var/lib/rancher ] || mkdir -p /var/lib/rancher 2>/dev/null
set -- $(df -Pk /var/lib/rancher 2>/dev/null)
[ $# -ge 10 ] && eval "echo disk_free_kb=\${$(($# - 2))}"
echo "systemd=$(systemctl is-system-running 2>/dev/null)"
t=$(timedatectl show -p NTPSynchronized --value 2>/dev/null); echo "time_synced=${t:-unknown}"
echo "listening=$(ss -Hltn 2>/dev/null | awk '{n=$4; sub(/.*:/, "", n); if (!(n in s)) {s[n]; printf "%s ", n}}')"
while read -r k _ u _; do [ "$k" = Uid: ] && echo "uid=$u" && break; done 2>/dev/null </proc/self/status
read -r h 2>/dev/null </proc/sys/kernel/hostname || h=$(hostname); echo "hostname=$h"
k=; [ -d /var/snap/microk8s ] && k=microk8s; [ -x /usr/local/bin/k3s ] && k=k3s
echo "kubernetes=$k"
set --
"""

SUPPORTED_OS = {"ubuntu": "22.04", "debian": "11"}
SUPPORTED_ARCH = {"x86_64", "aarch64"}
NEEDED_PORTS = (6443, 80, 443)
MIN_CPUS = 2
MIN_RAM_GB = 4.0
MIN_DISK_GB = 20.0


@dataclass(frozen=True)
class HostFacts:
    os_id: str
    os_version: str
    os_name: str
    arch: str
    cpus: int
    ram_gb: float
    disk_free_gb: float
    systemd: str
    time_synced: str
    listening: frozenset[int]
    uid: int
    hostname: str
    kubernetes: str = ""  # "k3s" or "microk8s" when already installed


def _int(text: str | None) -> int:
    try:
        return int((text or "").strip() or 0)
    except ValueError:
        return 0


def parse_facts(output: str) -> HostFacts:
    """HostFacts from the gathering script's `key=value` lines."""
    raw: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    ports = frozenset(int(p) for p in raw.get("listening", "").split() if p.isdigit())
    return HostFacts(
        os_id=raw.get("os_id", "unknown"),
        os_version=raw.get("os_version", "unknown"),
        os_name=raw.get("os_name", "unknown"),
        arch=raw.get("arch", "unknown"),
        cpus=_int(raw.get("cpus")),
        ram_gb=round(_int(raw.get("mem_kb")) / 1024 / 1024, 1),
        disk_free_gb=round(_int(raw.get("disk_free_kb")) / 1024 / 1024, 1),
        systemd=raw.get("systemd", ""),
        time_synced=raw.get("time_synced", "unknown"),
        listening=ports,
        uid=_int(raw.get("uid")),
        hostname=raw.get("hostname", ""),
        kubernetes=raw.get("kubernetes", ""),
    )


def _version_at_least(version: str, minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    return parts(version) >= parts(minimum)


def preflight_problems(
    facts: HostFacts, ports: Iterable[int] = NEEDED_PORTS, k3s_running: bool = False
) -> list[str]:
    """What stops this host from becoming a node, one short phrase each (empty: fine).

    Ports taken by k3s itself on an already bootstrapped host are not a problem.
    """
    problems: list[str] = []
    minimum = SUPPORTED_OS.get(facts.os_id)
    if minimum is None:
        problems.append(f"OS {facts.os_name} is not Ubuntu >= 22.04 or Debian >= 11")
    elif not _version_at_least(facts.os_version, minimum):
        problems.append(f"OS {facts.os_name} is older than {facts.os_id} {minimum}")
    if facts.arch not in SUPPORTED_ARCH:
        problems.append(f"architecture {facts.arch} is not x86_64 or aarch64")
    if facts.cpus < MIN_CPUS:
        problems.append(f"{facts.cpus} CPU(s), need at least {MIN_CPUS}")
    if facts.ram_gb < MIN_RAM_GB:
        problems.append(f"{facts.ram_gb} GB RAM, need at least {MIN_RAM_GB:.0f}")
    if facts.disk_free_gb < MIN_DISK_GB:
        problems.append(
            f"{facts.disk_free_gb} GB free for /var/lib/rancher, need at least {MIN_DISK_GB:.0f}"
        )
    if facts.systemd not in {"running", "degraded"}:
        problems.append(f"systemd is not running (state: {facts.systemd or 'none'})")
    if facts.time_synced != "yes":
        problems.append("clock not synchronised by NTP (timedatectl: NTPSynchronized != yes)")
    if not k3s_running:
        taken = sorted(p for p in ports if p in facts.listening)
        if taken:
            problems.append(f"port(s) {', '.join(map(str, taken))} already in use")
    if facts.uid != 0:
        problems.append("not root and sudo -n did not give root")
    return problems
