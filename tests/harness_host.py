"""One test host of a lab (see tests/harness.py): commands and files inside it, the stand-ins'
calls and state, its sshd and SSH connections to it, and its faults (sshd stopped, sessions
killed, link down, a full disk, an extra blank disk). No pytest here."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.harness_net import (
    SSHD,
    STEP_TIMEOUT_S,
    LabError,
    _children,
    _descendants,
    _exe,
    _pids_in,
    _run,
    _tool_env,
)
from tests.harness_setup import STANDINS_DIR, HostOptions

if TYPE_CHECKING:
    import paramiko
    from fabric import Connection

    from tests.harness_lab import HostLab


def fingerprint_of(public_line: str) -> str:
    """SHA256:<base64, no padding> of a public key line, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


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

    def set_microk8s_enable_delay(self, delay_s: float) -> None:
        """`microk8s enable` on this host takes `delay_s` (the real one takes tens of seconds)."""
        self.lab._set_host_option(self.name, microk8s_enable_delay_s=delay_s)

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

    def link_up(self, within_s: float = 5.0) -> None:
        """Plug the cable back in; returns once the host's sshd answers again (a neighbour
        entry that failed while it was down answers `No route to host` for a moment)."""
        import socket
        import time

        _run(["ip", "link", "set", self.veth, "up"])
        deadline = time.monotonic() + within_s
        while True:
            try:
                socket.create_connection((self.address, 22), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise LabError(
                        f"host {self.name}: not reachable {within_s:.0f}s after link up"
                    ) from None
                time.sleep(0.05)

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
