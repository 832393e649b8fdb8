"""The lab of the test-host harness (see tests/harness.py): `HostLab` makes a private bridge and
test hosts on it (namespaces, files, sshd), holds the lab's keys and known_hosts, the state the
stand-ins share, the latency proxies, and tears it all down. No pytest here."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubfleet.hosts.ssh import new_ed25519_key
from tests.harness_host import TestHost
from tests.harness_net import (
    LOCK_FILE,
    NETNS_PREFIX,
    STEP_TIMEOUT_S,
    LabError,
    _alive,
    _children,
    _choose_subnet,
    _disable_ipv6,
    _readline,
    _run,
    _stat,
    _tool_env,
    skip_reason,
)
from tests.harness_proxy import DelayProxy
from tests.harness_setup import (
    DEFAULT_STANDINS,
    HIDDEN_COMMANDS,
    SETUP_PROGRAM,
    SSHD_CONFIG,
    STANDINS_DIR,
    HostOptions,
    _fake_meminfo,
    host_answers,
    k3s_install_script,
)
from tests.harness_teardown import _detach_images, _kill_all, cleanup_stale_labs

if TYPE_CHECKING:
    import paramiko

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_lab_numbers = itertools.count(1)


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
            self.subnet = _choose_subnet(self._requested_subnet)
            self.gateway = str(self.subnet[1])
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self._bridge_made = True
            _disable_ipv6(self.bridge)
            _run(
                ["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge]
            )
            _run(["ip", "link", "set", self.bridge, "up"])

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
        # the stand-ins' bodies compiled once, for the hosts' Python (they see this folder
        # read-only): a stand-in call then costs a Python start, not a compile of its source
        subprocess.run(
            ["/usr/bin/python3", "-m", "compileall", "-q", str(target)],
            capture_output=True,
            timeout=120,
            check=False,
        )

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
        # what the stand-ins' sh fast paths answer from these options (hubfleet_standin.sh)
        answers = self.dir / "hosts" / name / "answers"
        if answers.parent.is_dir():
            answers.mkdir(exist_ok=True)
            for key, value in host_answers(current).items():
                if value is None:
                    (answers / key).unlink(missing_ok=True)
                else:
                    _write(answers / f"{key}.tmp", value + "\n")
                    os.replace(answers / f"{key}.tmp", answers / key)

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


@contextlib.contextmanager
def host_lab(n: int = 0, **kwargs: Any) -> Iterator[HostLab]:
    """`with host_lab(3) as lab:` — the same as `with HostLab(n=3) as lab:`."""
    with HostLab(n, **kwargs) as lab:
        yield lab
