"""What a test host is made of (see tests/harness.py): its options and faked facts
(`HostOptions`, OS_RELEASES, a scaled /proc/meminfo), the program that builds its namespaces and
mounts (SETUP_PROGRAM), its sshd config, and the k3s stand-in artefacts. No pytest here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness_net import LabError

STANDINS_DIR = Path(__file__).resolve().parent / "standins"

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

_USER = re.compile(r"^[a-z_][-a-z0-9_]{0,31}$")


# --- stand-in artefacts -----------------------------------------------------------------------


def k3s_binary(version: str = K3S_DEFAULT_VERSION) -> str:
    """The k3s stand-in "binary" of a given version (what INSTALL_K3S_SKIP_DOWNLOAD expects at
    /usr/local/bin/k3s; the install script installs the same thing with the version it chose)."""
    text = (STANDINS_DIR / "k3s").read_text()
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", version):
        raise LabError(f"not a version the k3s stand-in can carry: {version!r}")
    line = f'STANDIN_VERSION="{K3S_DEFAULT_VERSION}"'
    if line not in text:
        raise LabError(f"{STANDINS_DIR / 'k3s'} lost its `{line}` line")
    return text.replace(line, f'STANDIN_VERSION="{version}"', 1)


def host_answers(options: dict[str, Any]) -> dict[str, str | None]:
    """The answer files the stand-ins' sh fast paths (tests/standins/hubfleet_standin.sh) read
    from a host's /run/hubfleet-host/answers: what the Python stand-ins answer from its lab
    options (nproc, systemctl is-system-running, timedatectl's NTPSynchronized); None: no file
    (the stand-in then answers in Python)."""
    try:
        nproc: str | None = str(max(1, int(options.get("cpus") or os.cpu_count() or 1)))
    except (TypeError, ValueError):
        nproc = None
    state = options.get("systemd_state", "running")
    one_line = isinstance(state, str) and state != "" and "\n" not in state
    return {
        "nproc": nproc,
        "systemd_state": state if one_line else None,
        "time_synced": "yes" if options.get("time_synced", True) else "no",
    }


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


# --- the host's init and sshd ----------------------------------------------------------------


# The host's setup, run by the system python as the process that holds the host's namespaces
# (nsenter into its netns, unshare mount+UTS), which then stays as the host's init, reaping
# orphans. One process doing mount(2) itself: a shell script forking `mount` ~100 times took
# 4x as long. Paths under /run/hubfleet-host are the host's own dir of the lab (sshd files,
# faked facts); it is bound there before /tmp, where the lab's dir is, gets covered.
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
