"""Test hosts for hubfleet's host steps: Linux namespaces that look like small VMs over SSH.

A `HostLab` owns a bridge in the root network namespace (with an address of its own, so this
process can connect) and any number of `TestHost`s. Each host is:

- a network namespace with a veth into the lab's bridge and one IPv4 address on a /24 that no
  route or address of this machine uses (hosts reach each other and this process, nothing
  else: they have no default route, and IPv6 is off on every lab link);
- a UTS namespace (its own hostname), a PID namespace (its own init, which reaps orphans; a
  host cannot see or signal this machine's processes) and a mount namespace in which the real
  root is read-only and everything a host may write is private: /etc, /var and /usr are
  overlays on tmpfs (so /etc/fstab, /etc/passwd, /etc/sudoers.d, ... are private copies that
  rename-over writes work on), and /run, /tmp, /root, /home, /mnt, /opt, /srv, /dev/shm,
  /usr/local/bin, /etc/rancher, /etc/sysctl.d, /etc/systemd/system, /etc/wireguard,
  /var/lib/rancher, /var/snap, /var/log and /var/lib/hubfleet-standin are tmpfs of their own
  (64 MiB by default). Guards: the real machine's disks are hidden (a read-only empty file is
  bound over each non-loop block device), /proc/sys and /dev are read-only, /usr/bin/systemctl
  (also reboot, poweroff, halt, shutdown) is always the stand-in, and the machine's own
  Kubernetes tools (HIDDEN_COMMANDS, e.g. a kubectl in /usr/bin) are removed, as on a fresh VM;
- the real OpenSSH sshd on the host's address, port 22, with a host key made for it, root login
  by the lab's client key (`PermitRootLogin prohibit-password`, `UsePAM no`).

The stand-ins in tests/standins/ (systemctl, sysctl, timedatectl, journalctl, curl, modprobe,
nproc, k3s and the k3s install script; snap, microk8s, ufw, nvidia-smi for MicroK8s hosts) are
bound read-only at /run/hubfleet-standins in every host and copied to /usr/local/bin
(`HostOptions.standins`, `TestHost.install_standins`); they keep their state in
/var/lib/hubfleet-standin and log every call to /var/lib/hubfleet-standin/calls.log
(`TestHost.calls`). Hosts of a lab share /var/lib/hubfleet-lab, which plays the network between
k3s servers and agents, and between MicroK8s nodes (add-node tokens, joins, addons).

WireGuard is real: wireguard-tools' wg-quick falls back to wireguard-go (the kernel here has no
wireguard module) on /dev/net/tun, which works inside a host; `wireguard_skip_reason()` says
when it cannot.

Teardown (`close`, also from `__exit__` and atexit) kills only the processes inside the lab's
own namespaces, then detaches its loop devices and deletes its veths, namespaces, bridge and
temp dir. Needs root and `ip netns`; `skip_reason()` says why not, in one line.

Core module: no pytest here, so scripts under bench/ can use it too (see conftest_hosts.py).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import io
import ipaddress
import itertools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko
    from fabric import Connection

from hubfleet.ssh import new_ed25519_key

STANDINS_DIR = Path(__file__).resolve().parent / "standins"
SSHD = "/usr/sbin/sshd"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_PREFIX = "hubfleet-"
# Where the lab looks for a free /24, in order: second octets 213..254 then 200..212 of 10/8.
SUBNET_SECOND_OCTETS = (*range(213, 255), *range(200, 213))
LOCK_FILE = Path("/run/lock/hubfleet-lab.lock")
STEP_TIMEOUT_S = 10.0

# What a host's /usr/local/bin gets from install_standins() when no list is given.
DEFAULT_STANDINS = ("systemctl", "sysctl", "timedatectl", "journalctl", "curl", "modprobe")
K3S_DEFAULT_VERSION = "v1.32.5+k3s1"
# Tools this machine may have that a fresh server has not (removed from a host's private /usr).
HIDDEN_COMMANDS = ("kubectl", "crictl", "ctr", "k3s", "helm", "microk8s", "snap", "k9s")

OS_RELEASES = {
    "ubuntu-24.04": (
        'PRETTY_NAME="Ubuntu 24.04.2 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
        'VERSION="24.04.2 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\n'
        "ID_LIKE=debian\nUBUNTU_CODENAME=noble\n"
    ),
    "ubuntu-22.04": (
        'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
        'VERSION="22.04.5 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\n'
        "ID_LIKE=debian\nUBUNTU_CODENAME=jammy\n"
    ),
    "ubuntu-20.04": (
        'PRETTY_NAME="Ubuntu 20.04.6 LTS"\nNAME="Ubuntu"\nVERSION_ID="20.04"\n'
        'VERSION="20.04.6 LTS (Focal Fossa)"\nVERSION_CODENAME=focal\nID=ubuntu\n'
        "ID_LIKE=debian\nUBUNTU_CODENAME=focal\n"
    ),
    "debian-12": (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
    ),
    "debian-11": (
        'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="11"\nVERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'
    ),
    "centos-7": (
        'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\n'
        'VERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n'
    ),
}

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_USER = re.compile(r"^[a-z_][-a-z0-9_]{0,31}$")
_lab_numbers = itertools.count(1)


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


# --- small helpers --------------------------------------------------------------------------


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


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _kill_all(namespace_ids: set[str], children: Iterable[subprocess.Popen[Any]]) -> list[int]:
    """SIGKILL everything in the namespaces until nothing is left (bounded: ~3 s); returns
    what could not be killed."""
    children = list(children)
    left: list[int] = []
    deadline = time.monotonic() + 3.0
    for _ in range(300):
        left = _pids_in(namespace_ids) if namespace_ids else []
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(Exception):
                child.poll()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for child in children:
        with contextlib.suppress(Exception):
            child.wait(timeout=1.0)
    return _pids_in(namespace_ids) if namespace_ids else []


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


def fingerprint_of(public_line: str) -> str:
    """SHA256:<base64, no padding> of a public key line, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


# --- stand-in artefacts -----------------------------------------------------------------------


def k3s_binary(version: str = K3S_DEFAULT_VERSION) -> str:
    """The k3s stand-in "binary" of a given version (what INSTALL_K3S_SKIP_DOWNLOAD expects at
    /usr/local/bin/k3s; the install script installs the same thing with the version it chose)."""
    text = (STANDINS_DIR / "k3s").read_text()
    line = f'STANDIN_VERSION = "{K3S_DEFAULT_VERSION}"'
    if line not in text:
        raise LabError(f"{STANDINS_DIR / 'k3s'} lost its `{line}` line")
    return text.replace(line, f'STANDIN_VERSION = "{version}"', 1)


def k3s_install_script() -> str:
    """The stand-in for https://get.k3s.io: a POSIX sh script carrying the k3s stand-in and
    the installer (tests/standins/k3s-install.sh.in, k3s, k3s-install.py)."""
    template = (STANDINS_DIR / "k3s-install.sh.in").read_text()
    parts = {
        "@K3S_STANDIN_SOURCE@\n": (k3s_binary(), "HUBFLEET_K3S_STANDIN_EOF"),
        "@K3S_INSTALLER_SOURCE@\n": (
            (STANDINS_DIR / "k3s-install.py").read_text(),
            "HUBFLEET_K3S_INSTALLER_EOF",
        ),
    }
    for placeholder, (text, delimiter) in parts.items():
        if delimiter in text:
            raise LabError(f"a stand-in must not contain the heredoc delimiter {delimiter}")
        template = template.replace(placeholder, text if text.endswith("\n") else text + "\n")
    return template


# --- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostOptions:
    """What makes a test host differ from the machine it runs on.

    user: a non-root login (home on tmpfs, passwordless sudo, the lab's key authorised).
    mem_gb / cpus / os_release: faked facts (/proc/meminfo bound over, `nproc` stand-in, a
    private /etc/os-release; os_release is a key of OS_RELEASES or the file's text).
    disk_gb: size of the tmpfs at /var/lib/rancher (df's answer there); other tmpfs: tmpfs_mb.
    time_synced: what `timedatectl show -p NTPSynchronized` says.
    standins: copy DEFAULT_STANDINS into /usr/local/bin at start.
    node_ready / node_ready_delay_s: how this host's k3s node shows in `kubectl get nodes`
    (node_ready also for its MicroK8s node).
    snapd: the host has snap (the stand-in; `snap install microk8s` installs the microk8s one).
    microk8s_ready_delay_s: seconds from MicroK8s' (re)start until `microk8s status` says it is
    running and its node is Ready (math.inf: never).
    ufw / ufw_active: the host has ufw (the stand-in), inactive / active at start.
    gpus / gpu_model: nvidia-smi lists that many GPUs of that model (0: no nvidia-smi at all).
    """

    user: str | None = None
    mem_gb: float | None = None
    cpus: int | None = None
    os_release: str | None = None
    disk_gb: float | None = None
    tmpfs_mb: int = 64
    time_synced: bool = True
    standins: bool = True
    node_ready: bool = True
    node_ready_delay_s: float = 0.0
    snapd: bool = False
    microk8s_ready_delay_s: float = 0.0
    ufw: bool = False
    ufw_active: bool = False
    gpus: int = 0
    gpu_model: str = "NVIDIA A100-SXM4-40GB"

    def checked(self) -> HostOptions:
        if self.user is not None and (not _USER.match(self.user) or self.user == "root"):
            raise LabError(f"user {self.user!r}: want a plain login name other than root")
        if self.cpus is not None and self.cpus < 1:
            raise LabError(f"cpus={self.cpus}: want 1 or more")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise LabError(f"mem_gb={self.mem_gb}: want more than 0")
        if self.tmpfs_mb < 4:
            raise LabError(f"tmpfs_mb={self.tmpfs_mb}: want 4 or more")
        if self.gpus < 0:
            raise LabError(f"gpus={self.gpus}: want 0 or more")
        if self.microk8s_ready_delay_s < 0:
            raise LabError(f"microk8s_ready_delay_s={self.microk8s_ready_delay_s}: want 0 or more")
        return self

    def os_release_text(self) -> str | None:
        if self.os_release is None:
            return None
        if "=" in self.os_release:
            return self.os_release if self.os_release.endswith("\n") else self.os_release + "\n"
        try:
            return OS_RELEASES[self.os_release]
        except KeyError:
            raise LabError(
                f"os_release={self.os_release!r}: one of {', '.join(OS_RELEASES)}, or the file's text"
            ) from None


# The host's setup, run by the system python as the process that holds the host's namespaces
# (nsenter into its netns, unshare mount+UTS), then `exec sleep`. One process doing mount(2)
# itself: a shell script forking `mount` ~100 times took 4x as long. Paths under
# /run/hubfleet-host are the host's own dir of the lab (sshd files, faked facts); it is bound
# there before /tmp, where the lab's dir is, gets covered.
SETUP_PROGRAM = r"""
import ctypes, os, shutil, signal, socket, stat, subprocess, sys

env = os.environ
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_RELATIME, MNT_DETACH = 1024, 2048, 4096, 1 << 21, 2
KEPT = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME, 2048: MS_NODIRATIME, 4096: MS_RELATIME}


def mount(source, target, fstype=None, flags=0, data=None):
    args = [source.encode(), target.encode(), fstype.encode() if fstype else None, flags]
    if libc.mount(*args, data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def read_only(target):
    # a bind remount sets the mount's flags: keep the ones it has (nosuid, nodev, ...)
    have = os.statvfs(target).f_flag
    kept = sum(flag for bit, flag in KEPT.items() if have & bit)
    mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def bind(source, target, ro=False):
    mount(source, target, None, MS_BIND)
    if ro:
        read_only(target)


def private(target, mode, size_mb=None):
    os.makedirs(target, exist_ok=True)
    mount("tmpfs", target, "tmpfs", 0, f"size={size_mb or env['HF_TMPFS_MB']}m,mode={mode}")


def write(path, text, mode=0o644):
    with open(path, "w") as out:
        out.write(text)
    os.chmod(path, mode)


# copies of every other network namespace's mount would keep those alive: drop them here
libc.umount2(b"/run/netns", MNT_DETACH)
mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
for d in ("hubfleet-host", "hubfleet-standins", "sshd", "lock", "user"):
    os.mkdir(f"/run/{d}", 0o755)
os.chmod("/run/lock", 0o1777)
bind(env["HF_HOSTDIR"], "/run/hubfleet-host")
bind(env["HF_STANDINS"], "/run/hubfleet-standins", ro=True)
for d in ("etc", "var", "usr"):
    scratch = f"/run/.hubfleet-{d}"
    private(scratch, "0755")
    os.mkdir(f"{scratch}/upper")
    os.mkdir(f"{scratch}/work")
    layers = f"lowerdir=/{d},upperdir={scratch}/upper,workdir={scratch}/work"
    mount("overlay", f"/{d}", "overlay", 0, layers)
os.makedirs("/var/lib/hubfleet-lab", exist_ok=True)
bind(env["HF_SHARED"], "/var/lib/hubfleet-lab")
for target, mode in (
    ("/tmp", "1777"), ("/root", "0700"), ("/home", "0755"), ("/mnt", "0755"), ("/opt", "0755"),
    ("/srv", "0755"), ("/dev/shm", "1777"), ("/usr/local/bin", "0755"), ("/etc/rancher", "0755"),
    ("/etc/sysctl.d", "0755"), ("/etc/systemd/system", "0755"), ("/etc/wireguard", "0700"),
    ("/var/snap", "0755"), ("/var/lib/hubfleet-standin", "0755"), ("/var/log", "0755"),
):
    private(target, mode)
private("/var/lib/rancher", "0755", env["HF_RANCHER_MB"])
write("/var/lib/hubfleet-standin/calls.log", "", 0o666)

# identity: hostname, hosts, host keys, the lab's key for root (and the user)
name = env["HF_NAME"]
socket.sethostname(name)
write("/etc/hostname", name + "\n")
shutil.copyfile("/run/hubfleet-host/hosts", "/etc/hosts")
for entry in os.listdir("/etc/ssh"):
    if entry.startswith("ssh_host_"):
        os.unlink(f"/etc/ssh/{entry}")
for key, mode in (("ssh_host_ed25519_key", 0o600), ("ssh_host_ed25519_key.pub", 0o644)):
    shutil.copyfile(f"/run/hubfleet-host/{key}", f"/etc/ssh/{key}")
    os.chmod(f"/etc/ssh/{key}", mode)
os.mkdir("/root/.ssh", 0o700)
shutil.copyfile("/run/hubfleet-host/authorized_keys", "/root/.ssh/authorized_keys")
os.chmod("/root/.ssh/authorized_keys", 0o600)
user = env["HF_USER"]
if user:
    subprocess.run(["useradd", "-m", "-d", f"/home/{user}", "-s", "/bin/bash", "-p", "*", "-U", user], check=True)
    home_ssh = f"/home/{user}/.ssh"
    os.mkdir(home_ssh, 0o700)
    shutil.copyfile("/run/hubfleet-host/authorized_keys", f"{home_ssh}/authorized_keys")
    os.chmod(f"{home_ssh}/authorized_keys", 0o600)
    pw = subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True)
    uid = int(pw.stdout)
    for path in (home_ssh, f"{home_ssh}/authorized_keys"):
        os.chown(path, uid, uid)
    write(f"/etc/sudoers.d/90-{user}", f"{user} ALL=(ALL:ALL) NOPASSWD:ALL\n", 0o440)

# a fresh server has none of the machine's Kubernetes tools
for tool in env["HF_HIDDEN_COMMANDS"].split():
    for directory in ("/usr/bin", "/usr/sbin", "/usr/local/sbin"):
        if os.path.lexists(f"{directory}/{tool}"):
            os.unlink(f"{directory}/{tool}")

# faked facts, stand-ins
if os.path.exists("/run/hubfleet-host/meminfo"):
    bind("/run/hubfleet-host/meminfo", "/proc/meminfo")
if os.path.exists("/run/hubfleet-host/os-release"):
    os.unlink("/etc/os-release")
    shutil.copyfile("/run/hubfleet-host/os-release", "/etc/os-release")
if env["HF_INSTALL_STANDINS"] == "1":
    for tool in env["HF_STANDIN_TOOLS"].split():
        shutil.copyfile(f"/run/hubfleet-standins/{tool}", f"/usr/local/bin/{tool}")
        os.chmod(f"/usr/local/bin/{tool}", 0o755)

# network: no IPv6 (no router solicitations, no DAD), one address, no default route
for scope in ("all", "default"):
    with open(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6", "w") as knob:
        knob.write("1\n")
batch = f"link set lo up\naddr add {env['HF_ADDRESS']} dev eth0\nlink set eth0 up\n"
subprocess.run(["ip", "-batch", "-"], input=batch, text=True, check=True)
mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

# guards: nothing in here may reboot, reconfigure or format the real machine
bind("/run/hubfleet-standins/systemctl", "/usr/bin/systemctl")
write("/run/.hubfleet-nodisk", "", 0)
for directory in ["/dev"] + [e.path for e in os.scandir("/dev") if e.is_dir(follow_symlinks=False)]:
    for entry in os.scandir(directory):
        if entry.is_symlink() or entry.name.startswith("loop"):
            continue
        if stat.S_ISBLK(entry.stat(follow_symlinks=False).st_mode):
            bind("/run/.hubfleet-nodisk", entry.path, ro=True)
bind("/proc/sys", "/proc/sys", ro=True)
if os.path.exists("/proc/sysrq-trigger"):
    bind("/proc/sysrq-trigger", "/proc/sysrq-trigger", ro=True)
read_only("/dev")
read_only("/")
print("ready", flush=True)
sys.stdout.close()
# the host's init: reap orphans until the lab kills it (which ends everything in the host)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigwait([signal.SIGCHLD])
"""

SSHD_CONFIG = """\
# sshd of test host {name} (hubfleet test harness)
ListenAddress {address}:22
HostKey /run/hubfleet-host/ssh_host_ed25519_key
PidFile /run/hubfleet-host/sshd.pid
LogLevel {log_level}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
AcceptEnv LANG LC_*
PrintMotd no
UseDNS no
X11Forwarding no
MaxStartups 50:30:100
Subsystem sftp /usr/lib/openssh/sftp-server
"""


# --- hosts ------------------------------------------------------------------------------------


@dataclass
class _Fill:
    mount: str
    file: str
    size: str
    inodes: str


@dataclass
class TestHost:
    """One test host of a lab. Made by `HostLab.add_host`, never directly."""

    __test__ = False  # not a pytest test class

    lab: HostLab
    name: str
    index: int
    address: str
    options: HostOptions
    netns: str
    veth: str
    dir: Path
    host_public_key: str
    port: int = 22
    holder: subprocess.Popen[bytes] | None = None  # `unshare`, parent of the host's init
    init_pid: int = 0  # the host's pid 1, as this machine numbers it
    sshd_pid: int = 0  # the sshd listener, as this machine numbers it
    _init_started: str = ""
    sshd: subprocess.Popen[bytes] | None = None
    _fills: dict[str, _Fill] = field(default_factory=dict)
    _disks: int = 0

    # identity

    @property
    def host_key_fingerprint(self) -> str:
        """SHA256:... of the host's sshd key, as OpenSSH prints it."""
        return fingerprint_of(self.host_public_key)

    @property
    def host_key_line(self) -> str:
        """This host's known_hosts line (no newline)."""
        return self.host_key_line_for(self.address, self.port)

    def host_key_line_for(self, address: str, port: int = 22) -> str:
        """A known_hosts line naming this host's key at another address (e.g. a proxy)."""
        kind, blob = self.host_public_key.split()[:2]
        return f"{known_hosts_name(address, port)} {kind} {blob}"

    @property
    def host_key(self) -> paramiko.PKey:
        import paramiko

        return paramiko.Ed25519Key(data=base64.b64decode(self.host_public_key.split()[1]))

    @property
    def user(self) -> str:
        """The login tests should use: the non-root user when there is one, else root."""
        return self.options.user or "root"

    def __repr__(self) -> str:
        return f"TestHost({self.name!r}, {self.address})"

    # commands and files inside the host

    def _enter(self) -> list[str]:
        if self.holder is None or self.holder.poll() is not None:
            raise LabError(f"host {self.name}: its namespaces are gone")
        target = f"--target={self.init_pid}"
        return ["nsenter", target, "--net", "--mount", "--uts", "--pid", "--"]

    def run(
        self,
        cmd: str,
        *,
        user: str | None = None,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` with sh inside the host (nsenter into its net, mount, UTS and PID
        namespaces), as root or as `user`, from /, with a login-like environment. Not over SSH:
        for setting up and checking what SSH did."""
        env = _tool_env({"SHELL": "/bin/sh"})
        argv = [*self._enter()]
        if user and user != "root":
            argv += ["runuser", "-u", user, "--"]
            env.update(HOME=f"/home/{user}", USER=user, LOGNAME=user)
        argv += ["/bin/sh", "-c", cmd]
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
        )
        if check and proc.returncode != 0:
            raise LabError(
                f"host {self.name}: `{cmd}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def read(self, path: str) -> str | None:
        """A file's text inside the host, or None when it is not a readable file."""
        proc = self.run(f"test -f {shlex.quote(path)} && cat -- {shlex.quote(path)}")
        return proc.stdout if proc.returncode == 0 else None

    def write(self, path: str, text: str, mode: int = 0o644, owner: str | None = None) -> None:
        """Write a file inside the host (parents made), with `mode` and optionally `owner`."""
        q = shlex.quote(path)
        script = f'set -e; mkdir -p "$(dirname {q})"; cat > {q}; chmod {mode:o} {q}'
        if owner:
            script += f"; chown {shlex.quote(owner)} {q}"
        self.run(script, input=text, check=True)

    def exists(self, path: str) -> bool:
        return self.run(f"test -e {shlex.quote(path)}").returncode == 0

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        """The stand-ins' calls on this host, oldest first (each: tool, argv, env, uid, ...)."""
        text = self.read("/var/lib/hubfleet-standin/calls.log") or ""
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [r for r in records if tool is None or r.get("tool") == tool]

    def unit(self, name: str) -> dict[str, Any]:
        """The systemctl stand-in's record of a unit (active, enabled, starts, restarts, ...)."""
        unit = name if "." in name else f"{name}.service"
        text = self.read("/var/lib/hubfleet-standin/systemd/units.json") or "{}"
        state: dict[str, Any] = json.loads(text).get("units", {}).get(unit, {})
        return state

    def pids(self) -> list[int]:
        """Every process running inside this host."""
        netns = self._net_id()
        return _pids_in({netns}) if netns else []

    def _net_id(self) -> str | None:
        return self.lab._netns_ids.get(self.name)

    def install_standins(self, tools: Iterable[str] | None = None) -> None:
        """Copy stand-ins into the host's /usr/local/bin (DEFAULT_STANDINS when `tools` is None;
        `nproc` is added when the host fakes its CPU count)."""
        names = list(tools if tools is not None else self.lab._standin_tools(self.options))
        for name in names:
            if not (self.lab.dir / "standins" / name).is_file():
                raise LabError(f"no stand-in named {name!r} in {STANDINS_DIR}")
        script = "set -e; " + "; ".join(
            f"cp /run/hubfleet-standins/{n} /usr/local/bin/{n}; chmod 0755 /usr/local/bin/{n}"
            for n in names
        )
        self.run(script, check=True)

    # runtime options read by the stand-ins

    def set_time_synced(self, synced: bool) -> None:
        self.lab._set_host_option(self.name, time_synced=synced)

    def set_node_ready(self, ready: bool, delay_s: float = 0.0) -> None:
        """Make this host's k3s node Ready (after `delay_s` from its start) or keep it NotReady."""
        self.lab._set_host_option(self.name, node_ready=ready, node_ready_delay_s=delay_s)

    def set_microk8s_ready_delay(self, delay_s: float) -> None:
        """MicroK8s on this host is running (and its node Ready) `delay_s` after its last
        (re)start; math.inf: never."""
        self.lab._set_host_option(self.name, microk8s_ready_delay_s=delay_s)

    def set_gpus(self, gpus: int, model: str | None = None) -> None:
        """Give the host `gpus` GPUs (nvidia-smi installed) or none (nvidia-smi removed)."""
        values: dict[str, Any] = {"gpus": gpus}
        if model:
            values["gpu_model"] = model
        self.lab._set_host_option(self.name, **values)
        if gpus > 0:
            self.install_standins(["nvidia-smi"])
        else:
            self.run("rm -f /usr/local/bin/nvidia-smi", check=True)

    # MicroK8s stand-in state

    def _state(self, name: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            self.read(f"/var/lib/hubfleet-standin/{name}.json") or "{}"
        )
        return state

    def snap_state(self) -> dict[str, Any]:
        """The snap stand-in's state: {"snaps": {name: {channel, version, revision, hold}},
        "system": {"refresh.hold": ..., ...}}."""
        return self._state("snap")

    def microk8s_state(self) -> dict[str, Any]:
        """This MicroK8s node's state (role: main, control-plane or worker; cluster: the main
        node's host name; started; stopped), {} when not installed."""
        return self._state("microk8s")

    def ufw_state(self) -> dict[str, Any]:
        """The ufw stand-in's state (active, defaults, rules); {} before ufw was first run."""
        return self._state("ufw")

    # sshd

    @property
    def sshd_running(self) -> bool:
        return self.sshd is not None and self.sshd.poll() is None

    def start_sshd(self) -> None:
        """Start the host's sshd (same host key as before); returns once it listens."""
        if self.sshd_running:
            return
        pidfile = self.dir / "sshd.pid"
        pidfile.unlink(missing_ok=True)
        log = self.dir / "sshd.log"
        config = ["-f", "/run/hubfleet-host/sshd_config", "-E", "/run/hubfleet-host/sshd.log"]
        # nsenter forks into the host's pid namespace: sshd is its child
        self.sshd = self.lab._spawn([*self._enter(), SSHD, "-D", *config])
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                tail = log.read_text()[-500:] if log.exists() else ""
                raise LabError(
                    f"host {self.name}: sshd exited ({self.sshd.returncode}): {tail.strip()}"
                )
            with contextlib.suppress(OSError, ValueError):
                if int(pidfile.read_text().strip()) > 0:  # written once it listens
                    listeners = [p for p in _children(self.sshd.pid) if _exe(p) == SSHD]
                    if listeners:
                        self.sshd_pid = listeners[0]
                        return
            time.sleep(0.002)
        raise LabError(
            f"host {self.name}: sshd did not start listening within {STEP_TIMEOUT_S:.0f}s"
        )

    def stop_sshd(self) -> None:
        """Stop the sshd listener (sessions already open live on, as with `systemctl stop ssh`)."""
        if self.sshd is None:
            return
        if self.sshd.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.sshd_pid, signal.SIGTERM)
            try:
                self.sshd.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.sshd_pid, signal.SIGKILL)
                self.sshd.kill()
                self.sshd.wait(timeout=5)
        (self.dir / "sshd.pid").unlink(missing_ok=True)

    def kill_sshd_sessions(self) -> int:
        """Kill every SSH session's processes (breaks live connections); sshd keeps listening.
        Returns how many processes were killed."""
        listener = self.sshd_pid if self.sshd_running else None
        sessions = [
            pid for pid in self.pids() if pid != listener and _exe(pid) == SSHD
        ]  # also those of an sshd stopped since, whose sessions lived on
        victims = {*sessions, *(d for pid in sessions for d in _descendants(pid))}
        if listener:
            victims.update(_descendants(listener))
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(victims)

    def connect(
        self,
        user: str | None = None,
        *,
        address: str | None = None,
        port: int | None = None,
        timeout: float = 5.0,
    ) -> Connection:
        """A fabric Connection with the lab's key and this host's key pinned (not yet opened)."""
        import paramiko
        from fabric import Config, Connection

        address = address or self.address
        port = port or self.port
        connection = Connection(
            address,
            user=user or self.user,
            port=port,
            config=Config(lazy=True, overrides={"load_ssh_configs": False}),
            connect_timeout=max(1, int(timeout)),
            connect_kwargs={
                "pkey": self.lab.client_key,
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": timeout,
                "auth_timeout": timeout,
            },
        )
        connection.client.get_host_keys().add(
            known_hosts_name(address, port), "ssh-ed25519", self.host_key
        )
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return connection

    # faults

    def link_down(self) -> None:
        """Unplug the host's cable: packets to and from it vanish (connects time out)."""
        _run(["ip", "link", "set", self.veth, "down"])

    def link_up(self) -> None:
        _run(["ip", "link", "set", self.veth, "up"])

    def _tmpfs_of(self, path: str) -> str:
        q = shlex.quote(path)
        probe = self.run(
            f'p={q}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
            'df --output=target "$p" | tail -n 1',
            check=True,
        ).stdout.strip()
        overlays = {
            "/etc": "/run/.hubfleet-etc",
            "/var": "/run/.hubfleet-var",
            "/usr": "/run/.hubfleet-usr",
        }
        mount = overlays.get(probe, probe)
        kind = self.run(f"stat -f -c %T {shlex.quote(mount)}", check=True).stdout.strip()
        if kind != "tmpfs":
            raise LabError(f"host {self.name}: {path} is on {mount} ({kind}), not a private tmpfs")
        return mount

    def fill_disk(self, path: str) -> str:
        """Fill the private tmpfs holding `path` so writes there fail with ENOSPC (no space, no
        free inodes). Returns that tmpfs's mount point. `free_disk(path)` undoes it."""
        mount = self._tmpfs_of(path)
        if mount in self._fills:
            return mount
        q = shlex.quote(mount)
        size, inodes, used, iused = self.run(
            f"df -B1 --output=size {q} | tail -n 1; df --output=itotal {q} | tail -n 1; "
            f"df -B1 --output=used {q} | tail -n 1; df --output=iused {q} | tail -n 1",
            check=True,
        ).stdout.split()
        fill = f"{mount}/.hubfleet-fill"
        # shrink to what is used (plus a page) first, so filling never writes more than that
        smaller = max(int(used) + 4096, 65536)
        self.run(f"mount -o remount,size={smaller} {q}", check=True)
        self.run(f"dd if=/dev/zero of={shlex.quote(fill)} bs=64k 2>/dev/null; true", check=True)
        self.run(f"mount -o remount,nr_inodes={int(iused) + 1} {q} 2>/dev/null; true")
        self._fills[mount] = _Fill(mount, fill, size, inodes)
        return mount

    def free_disk(self, path: str) -> None:
        """Undo `fill_disk` for the tmpfs holding `path`."""
        mount = self._tmpfs_of(path)
        fill = self._fills.pop(mount, None)
        if fill is None:
            return
        q = shlex.quote(mount)
        self.run(
            f"rm -f {shlex.quote(fill.file)}; "
            f"mount -o remount,size={fill.size},nr_inodes={fill.inodes} {q}",
            check=True,
        )

    def add_disk(self, size_mb: int = 512) -> str:
        """Attach a blank disk of `size_mb` (a sparse file on a loop device with partition
        scanning) and return its device, e.g. /dev/loop3; detached at teardown."""
        if size_mb < 1:
            raise LabError(f"add_disk(size_mb={size_mb}): want 1 or more")
        self._disks += 1
        image = self.lab.dir / "disks" / f"{self.name}-{self._disks}.img"
        image.parent.mkdir(exist_ok=True)
        with open(image, "wb") as out:
            out.truncate(size_mb * 1024 * 1024)
        device = _run(["losetup", "-f", "--show", "-P", str(image)]).stdout.strip()
        self.lab._loops.append((device, image))
        return device

    def sshd_log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text() if path.exists() else ""


# --- the latency proxy ------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk for half of `rtt_ms` in each direction,
    so one round trip through it takes `rtt_ms` longer (the kernel here has no netem)."""

    def __init__(self, target: tuple[str, int], rtt_ms: float):
        self.target = target
        self.one_way_s = max(0.0, rtt_ms) / 2000.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._start(self._accept_loop)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, daemon=True, name="hubfleet-delay-proxy"
        )
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                self._start(self._read, src, chunks)
                self._start(self._deliver, dst, chunks)

    def _read(self, src: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.one_way_s, data))
            if not data:
                return

    def _deliver(self, dst: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            due, data = chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, threads = list(self._sockets), list(self._threads)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=2)


# --- the lab ----------------------------------------------------------------------------------


class HostLab:
    """A set of test hosts on one private bridge. Use as a context manager:

        with HostLab(n=3) as lab:
            a, b, c = lab.hosts
            with a.connect() as ssh:
                ssh.run("hostname")

    `n` hosts named host1..hostN are made at start with `host_options` (see HostOptions);
    `add_host` makes more. `subnet` pins the lab's /24 (default: the first free one of
    10.213.0.0/24, 10.214.0.0/24, ...; the first host is .10, this process is .1).
    """

    def __init__(self, n: int = 0, *, subnet: str | None = None, **host_options: Any):
        self.n = n
        self.defaults = HostOptions(**host_options).checked()
        self._requested_subnet = subnet
        self.pid = os.getpid()
        self.number = next(_lab_numbers)
        self.tag = f"{_base36(self.pid)}-{_base36(self.number)}"
        self.bridge = f"hfb{self.tag}"
        self.hosts: list[TestHost] = []
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway: str | None = None
        self.dir = Path()
        self.client_key_text = ""
        self.client_public_key = ""
        self._netns_ids: dict[str, str] = {}
        self._netns: list[str] = []
        self._veths: list[str] = []
        self._loops: list[tuple[str, Path]] = []
        self._proxies: list[DelayProxy] = []
        self._children: list[subprocess.Popen[bytes]] = []
        self._bridge_made = False
        self._started = False
        self._closed = False
        self._lock = threading.RLock()
        self._key: paramiko.PKey | None = None

    # lifecycle

    def __enter__(self) -> HostLab:
        try:
            self.start()
            for _ in range(self.n):
                self.add_host()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> HostLab:
        """Make the lab's dir, keys and bridge (hosts come with add_host)."""
        if self._started:
            return self
        reason = skip_reason()
        if reason:
            raise LabError(reason)
        if len(self.bridge) > 15:
            raise LabError(f"interface name {self.bridge} too long; too many labs in one process")
        self._started = True
        atexit.register(self.close)
        cleanup_stale_labs()
        self.dir = Path(tempfile.mkdtemp(prefix=f"hubfleet-lab-{self.pid}-{self.number}-"))
        for sub in ("hosts", "shared", "standins", "disks"):
            (self.dir / sub).mkdir(mode=0o755)
        (self.dir / "shared" / "hosts").mkdir()
        (self.dir / "shared" / "k3s").mkdir()
        (self.dir / "shared" / "microk8s").mkdir()
        self.client_key_text, self.client_public_key = new_ed25519_key(f"hubfleet-lab-{self.tag}")
        _write(self.client_key_path, self.client_key_text, 0o600)
        _write(self.dir / "client_ed25519.pub", self.client_public_key)
        _write(self.known_hosts_path, "")
        _write(self.dir / "host-init.py", SETUP_PROGRAM)
        self._copy_standins()
        self._make_bridge()
        return self

    def close(self) -> None:
        """Tear everything down; safe to call twice, from atexit, after a failed start."""
        with self._lock:
            if self._closed or not self._started:
                self._closed = True
                return
            self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        problems: list[str] = []
        for proxy in self._proxies:
            with contextlib.suppress(Exception):
                proxy.close()
        # killing a host's init kills its whole pid namespace; the nsenter processes this
        # process started reap what they started in there, so nothing waits for this
        # machine's init to reap orphans
        inits = [(h.init_pid, h._init_started) for h in self.hosts if h.init_pid]
        for pid, started in inits:
            if _alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=2)
        left = _kill_all(set(self._netns_ids.values()), self._children)
        deadline = time.monotonic() + 3.0
        while any(_alive(*i) for i in inits) and time.monotonic() < deadline:
            time.sleep(0.005)
        left += [pid for pid, started in inits if _alive(pid, started)]
        if left:
            problems.append(f"processes still running: {left}")
        problems += _detach_images(image for _, image in self._loops)
        for veth in self._veths:
            _run(["ip", "link", "del", veth], check=False)
        for ns in self._netns:
            proc = _run(["ip", "netns", "del", ns], check=False)
            if proc.returncode != 0 and os.path.exists(f"/run/netns/{ns}"):
                problems.append(f"netns {ns}: {proc.stderr.strip()}")
        if self._bridge_made:
            proc = _run(["ip", "link", "del", self.bridge], check=False)
            if proc.returncode != 0 and "Cannot find device" not in proc.stderr:
                problems.append(f"bridge {self.bridge}: {proc.stderr.strip()}")
        if self.dir != Path() and self.dir.name.startswith("hubfleet-lab-"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise LabError("lab teardown incomplete: " + "; ".join(problems))

    def _spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=kwargs.pop("env", _tool_env()), cwd="/", **kwargs)
        self._children.append(proc)
        return proc

    # keys and known hosts

    @property
    def client_key_path(self) -> Path:
        """The lab's private key (OpenSSH format, 0600); root (and `user`) on every host accept it."""
        return self.dir / "client_ed25519"

    @property
    def client_key(self) -> paramiko.PKey:
        """The lab's key as a paramiko key."""
        if self._key is None:
            import paramiko

            self._key = paramiko.Ed25519Key.from_private_key(io.StringIO(self.client_key_text))
        return self._key

    @property
    def known_hosts_path(self) -> Path:
        """A known_hosts file with every host of the lab (at its own address, port 22)."""
        return self.dir / "known_hosts"

    @property
    def shared_dir(self) -> Path:
        """The dir every host sees at /var/lib/hubfleet-lab (the k3s stand-in's "network")."""
        return self.dir / "shared"

    def host(self, name: str) -> TestHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    # network

    def _make_bridge(self) -> None:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # choosing a subnet and taking it is one step
            self.subnet = self._choose_subnet()
            self.gateway = str(self.subnet[1])
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self._bridge_made = True
            _disable_ipv6(self.bridge)
            _run(
                ["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge]
            )
            _run(["ip", "link", "set", self.bridge, "up"])

    def _choose_subnet(self) -> ipaddress.IPv4Network:
        taken = _taken_networks()
        if self._requested_subnet:
            wanted = ipaddress.ip_network(self._requested_subnet, strict=True)
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

    # hosts

    def add_host(self, name: str | None = None, **options: Any) -> TestHost:
        """Make one more host (options default to the lab's; see HostOptions)."""
        if not self._started:
            self.start()
        if self._closed:
            raise LabError("the lab is closed")
        assert self.subnet is not None
        with self._lock:
            index = len(self.hosts) + 1
            name = name or f"host{index}"
            if not _NAME.match(name):
                raise LabError(f"host name {name!r}: lowercase letters, digits and '-', at most 32")
            if any(h.name == name for h in self.hosts):
                raise LabError(f"host name {name!r} is taken in this lab")
            opts = replace(self.defaults, **options).checked() if options else self.defaults
            try:
                address = str(self.subnet[9 + index])
            except IndexError:
                raise LabError(f"subnet {self.subnet} has no room for host {index}") from None
            netns = f"{NETNS_PREFIX}{self.pid}-{self.number}-{index}"
            veth = f"hfv{self.tag}-{_base36(index)}"
            if len(veth) > 15:
                raise LabError(f"interface name {veth} too long; too many hosts")
            hostdir = self.dir / "hosts" / name
            hostdir.mkdir(mode=0o700)
            private, public = new_ed25519_key(f"root@{name}")
            host = TestHost(self, name, index, address, opts, netns, veth, hostdir, public)
            self._write_host_files(host, private)
            _run(["ip", "netns", "add", netns])
            self._netns.append(netns)
            self._netns_ids[name] = f"net:[{os.stat(f'/run/netns/{netns}').st_ino}]"
            _run(
                ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]
            )
            self._veths.append(veth)
            _disable_ipv6(veth)
            _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
            host.holder = self._start_holder(host)
            self.hosts.append(host)
        host.start_sshd()
        self._publish(host)
        return host

    def _standin_tools(self, options: HostOptions) -> list[str]:
        return [
            *DEFAULT_STANDINS,
            *(["nproc"] if options.cpus else []),
            *(["snap"] if options.snapd else []),
            *(["ufw"] if options.ufw or options.ufw_active else []),
            *(["nvidia-smi"] if options.gpus > 0 else []),
        ]

    def _copy_standins(self) -> None:
        target = self.dir / "standins"
        for source in STANDINS_DIR.iterdir():
            if source.is_file() and not source.name.endswith(".in"):
                shutil.copy2(source, target / source.name)
                os.chmod(target / source.name, 0o755 if os.access(source, os.X_OK) else 0o644)
        _write(target / "get.k3s.io", k3s_install_script(), 0o755)

    def _write_host_files(self, host: TestHost, private_key: str) -> None:
        d, opts = host.dir, host.options
        _write(d / "ssh_host_ed25519_key", private_key, 0o600)
        _write(d / "ssh_host_ed25519_key.pub", host.host_public_key)
        _write(d / "authorized_keys", self.client_public_key, 0o600)
        log_level = os.environ.get("HUBFLEET_LAB_SSHD_LOGLEVEL", "QUIET")
        _write(
            d / "sshd_config",
            SSHD_CONFIG.format(name=host.name, address=host.address, log_level=log_level),
        )
        _write(
            d / "host.json",
            json.dumps({"name": host.name, "address": host.address, "lab": self.tag}),
        )
        _write(d / "hosts", self._hosts_file(host))
        if opts.mem_gb is not None:
            _write(d / "meminfo", _fake_meminfo(opts.mem_gb))
        release = opts.os_release_text()
        if release is not None:
            _write(d / "os-release", release)
        shared = self.shared_dir / "hosts" / host.name
        (shared / "units").mkdir(parents=True)
        self._set_host_option(host.name, **asdict(opts), address=host.address)

    def _hosts_file(self, host: TestHost) -> str:
        lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{host.name}"]
        lines += [f"{h.address}\t{h.name}" for h in [*self.hosts, host]]
        return "\n".join(lines) + "\n"

    def _set_host_option(self, name: str, **values: Any) -> None:
        path = self.shared_dir / "hosts" / name / "host.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(values)
        tmp = path.with_suffix(".tmp")
        _write(tmp, json.dumps(current, indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _start_holder(self, host: TestHost) -> subprocess.Popen[bytes]:
        opts = host.options
        rancher_mb = int(opts.disk_gb * 1024) if opts.disk_gb else opts.tmpfs_mb
        env = _tool_env(
            {
                "HF_NAME": host.name,
                "HF_ADDRESS": f"{host.address}/{self.subnet.prefixlen if self.subnet else 24}",
                "HF_HOSTDIR": str(host.dir),
                "HF_STANDINS": str(self.dir / "standins"),
                "HF_SHARED": str(self.shared_dir),
                "HF_TMPFS_MB": str(opts.tmpfs_mb),
                "HF_RANCHER_MB": str(max(rancher_mb, 1)),
                "HF_USER": opts.user or "",
                "HF_INSTALL_STANDINS": "1" if opts.standins else "0",
                "HF_STANDIN_TOOLS": " ".join(self._standin_tools(opts)),
                "HF_HIDDEN_COMMANDS": " ".join(HIDDEN_COMMANDS),
            }
        )
        log = open(host.dir / "holder.log", "wb")  # noqa: SIM115 (the child keeps it)
        argv = [
            "nsenter",
            f"--net=/run/netns/{host.netns}",
            "unshare",
            "--uts",
            "--mount",
            "--pid",
            "--mount-proc",
            "--kill-child",
            "--propagation",
            "private",
            "--",
            "/usr/bin/python3",
            "-I",
            str(self.dir / "host-init.py"),  # read before /tmp is covered
        ]
        with log:
            holder = self._spawn(
                argv, env=env, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
            )
        assert holder.stdout is not None
        ready = _readline(holder.stdout, STEP_TIMEOUT_S)
        holder.stdout.close()
        if ready.strip() != b"ready":
            holder.kill()
            holder.wait()
            detail = (host.dir / "holder.log").read_text(errors="replace").strip()[-800:]
            raise LabError(f"host {host.name}: setup failed: {detail or 'no output'}")
        children = _children(holder.pid)
        if len(children) != 1:
            holder.kill()
            holder.wait()
            raise LabError(f"host {host.name}: cannot tell the host's init among {children}")
        host.init_pid = children[0]
        host._init_started = (_stat(host.init_pid) or [""] * 20)[19]
        return holder

    def _publish(self, host: TestHost) -> None:
        """Tell the known_hosts file and every other host's /etc/hosts about a new host."""
        with open(self.known_hosts_path, "a") as out:
            out.write(host.host_key_line + "\n")
        for other in self.hosts:
            if other is not host and other.holder is not None:
                with open(f"/proc/{other.init_pid}/root/etc/hosts", "a") as hosts:
                    hosts.write(f"{host.address}\t{host.name}\n")

    # faults that need the lab

    def latency_proxy(self, host: TestHost, delay_ms: float, port: int = 22) -> tuple[str, int]:
        """A TCP proxy on 127.0.0.1 in front of `host`'s `port` that adds `delay_ms` to every
        round trip (half each way, per chunk). Returns (address, port); stopped at teardown.
        Connect with `host.connect(address=..., port=...)`."""
        proxy = DelayProxy((host.address, port), delay_ms)
        self._proxies.append(proxy)
        return proxy.address

    def set_microk8s_channel(self, channel: str, version: str, revision: int = 9000) -> None:
        """What the snap stand-in installs for `--channel=channel` (e.g. "1.33/stable")."""
        path = self.shared_dir / "microk8s" / "channels.json"
        channels = json.loads(path.read_text()) if path.exists() else {}
        channels[channel] = [version, revision]
        _write(path, json.dumps(channels, indent=1))

    def reject_next_microk8s_join(
        self,
        token: str | None = None,
        reason: str = "the joining node's hostname does not resolve on the control plane",
        status: int = 502,
    ) -> None:
        """Make the next `microk8s join` presenting `token` (any token when None) fail once,
        after the main node consumed its token, as a join that fails half-way does."""
        path = self.shared_dir / "microk8s" / "rejections.json"
        rejections = json.loads(path.read_text()) if path.exists() else []
        rejections.append({"token": token, "reason": reason, "status": status})
        _write(path, json.dumps(rejections, indent=1))

    def microk8s_cluster(self, main: TestHost | str) -> dict[str, Any]:
        """The cluster a MicroK8s main node publishes (addresses, fingerprint, addons, nodes;
        no CA key or admin token), {} when there is none."""
        name = main if isinstance(main, str) else main.name
        path = self.shared_dir / "microk8s" / "clusters" / name / "cluster.json"
        cluster: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for secret in ("ca_key", "admin_token"):
            if secret in cluster:
                cluster[secret] = "<hidden>"
        return cluster

    def microk8s_tokens(self, main: TestHost | str) -> dict[str, Any]:
        """The join tokens a MicroK8s main node has handed out and not yet consumed:
        {token: {"expiry": epoch or None, "created": ..., "by": host}}."""
        name = main if isinstance(main, str) else main.name
        path = self.shared_dir / "microk8s" / "clusters" / name / "tokens.json"
        tokens: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return tokens

    def set_k3s_channel(self, channel: str, version: str) -> None:
        """What the install script stand-in resolves `INSTALL_K3S_CHANNEL=channel` to."""
        path = self.shared_dir / "k3s" / "channels.json"
        channels = json.loads(path.read_text()) if path.exists() else {}
        channels[channel] = version
        _write(path, json.dumps(channels, indent=1))


# --- network and teardown helpers --------------------------------------------------------------


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


LOOP_GET_STATUS64 = 0x4C05


def _loop_backing(device: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file a loop device serves, or None when it serves none.

    Asked with the LOOP_GET_STATUS64 ioctl: sysfs's loop/backing_file vanishes for moments
    while other loop devices change, so it cannot tell "detached" from "busy elsewhere".
    """
    import struct

    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(232))
    except OSError:
        return None  # ENXIO: not bound
    finally:
        os.close(fd)
    lo_device, lo_inode = struct.unpack_from("=QQ", info)
    return lo_device, lo_inode


def _loops_of(images: Iterable[Path]) -> list[tuple[str, Path]]:
    """The loop devices serving any of `images` now, as (device, image)."""
    wanted = {}
    for image in images:
        with contextlib.suppress(OSError):
            st = os.stat(image)
            wanted[(st.st_dev, st.st_ino)] = image
    if not wanted:
        return []
    found = []
    for name in sorted(os.listdir("/sys/block")):
        if re.fullmatch(r"loop\d+", name):
            image = wanted.get(_loop_backing(f"/dev/{name}") or (-1, -1))
            if image is not None:
                found.append((f"/dev/{name}", image))
    return found


def _detach_images(images: Iterable[Path]) -> list[str]:
    """Detach every loop device serving one of `images` (a busy one detaches on its last
    close, so wait for that: bounded, 5 s)."""
    images = list(images)
    deadline = time.monotonic() + 5.0
    asked: set[str] = set()
    left = _loops_of(images)
    while left and time.monotonic() < deadline:
        for device, _ in left:
            if device not in asked:
                _run(["losetup", "-d", device], check=False)
                asked.add(device)
        time.sleep(0.01)
        left = _loops_of(images)
    return [f"loop device {device} still attached to {image}" for device, image in left]


def _fake_meminfo(mem_gb: float) -> str:
    """/proc/meminfo of this machine with MemTotal (and the free figures) scaled to mem_gb."""
    total_kb = int(mem_gb * 1024 * 1024)
    real = Path("/proc/meminfo").read_text().splitlines()
    values = {}
    for line in real:
        key, _, rest = line.partition(":")
        values[key] = rest
    real_total = int(values.get("MemTotal", " 1 kB").split()[0]) or 1
    out = []
    for line in real:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in {"MemTotal", "MemFree", "MemAvailable", "Cached", "Buffers"} and parts:
            kb = (
                total_kb
                if key == "MemTotal"
                else min(total_kb, int(int(parts[0]) * total_kb / real_total))
            )
            out.append(f"{key + ':':<16}{kb:>8} kB")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def cleanup_stale_labs() -> list[str]:
    """Remove what labs of processes that no longer run left behind (a killed test run): their
    processes (found by namespace), loop devices, veths, namespaces, bridges. Labs of running
    processes are never touched. Returns what was removed."""
    removed: list[str] = []
    netns_dir = Path("/run/netns")
    stale_ns = []
    if netns_dir.is_dir():
        for entry in netns_dir.iterdir():
            match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)-(\d+)-(\d+)", entry.name)
            if match and not _pid_alive(int(match.group(1))):
                stale_ns.append(entry)
    if stale_ns:
        ids = set()
        for entry in stale_ns:
            with contextlib.suppress(OSError):
                ids.add(f"net:[{entry.stat().st_ino}]")
        _kill_all(ids, [])
        for entry in stale_ns:
            _run(["ip", "netns", "del", entry.name], check=False)
            removed.append(f"netns {entry.name}")
    links = json.loads(_run(["ip", "-j", "link", "show"], check=False).stdout or "[]")
    for link in links:
        match = re.fullmatch(r"hf[bv]([0-9a-z]+)-([0-9a-z]+)(-[0-9a-z]+)?", link.get("ifname", ""))
        stale = match and not _pid_alive(int(match.group(1), 36))
        if stale and _run(["ip", "link", "del", link["ifname"]], check=False).returncode == 0:
            removed.append(f"link {link['ifname']}")
    tmp = Path(tempfile.gettempdir())
    for lab_dir in tmp.glob("hubfleet-lab-*-*-*"):
        match = re.match(r"hubfleet-lab-(\d+)-", lab_dir.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        images = list((lab_dir / "disks").glob("*.img"))
        removed += [f"loop {device}" for device, _ in _loops_of(images)]
        _detach_images(images)
        shutil.rmtree(lab_dir, ignore_errors=True)
        removed.append(f"dir {lab_dir}")
    return removed


@contextlib.contextmanager
def host_lab(n: int = 0, **kwargs: Any) -> Iterator[HostLab]:
    """`with host_lab(3) as lab:` — the same as `with HostLab(n=3) as lab:`."""
    with HostLab(n, **kwargs) as lab:
        yield lab


__all__ = [
    "DEFAULT_STANDINS",
    "HIDDEN_COMMANDS",
    "K3S_DEFAULT_VERSION",
    "OS_RELEASES",
    "DelayProxy",
    "HostLab",
    "HostOptions",
    "LabError",
    "TestHost",
    "cleanup_stale_labs",
    "fingerprint_of",
    "host_lab",
    "k3s_binary",
    "k3s_install_script",
    "new_ed25519_key",
    "skip_reason",
    "wireguard_skip_reason",
]
