#!/usr/bin/python3 -S
"""What the k3s install script stand-in does (https://get.k3s.io), step by step as the real one.

Run by the composed install script (tests/standins/k3s-install.sh.in, composed by
tests/harness.py) as `python3 k3s-install.py <k3s stand-in source> [ARGS...]` from its temp dir.
Like the real script: INSTALL_K3S_EXEC and the arguments give the command (server, or agent
when K3S_URL is set, which then needs K3S_TOKEN or K3S_TOKEN_FILE); INSTALL_K3S_VERSION wins
over INSTALL_K3S_CHANNEL (stable by default; the lab may change what a channel resolves to);
the binary is "downloaded" (the stand-in with that version written in) unless
INSTALL_K3S_SKIP_DOWNLOAD=true, when /usr/local/bin/k3s must already be executable; then the
kubectl/crictl/ctr symlinks (unless those commands exist), the killall and uninstall scripts,
the unit's .env file (every K3S_* and CONTAINERD_* variable, mode 0600), the unit file, `systemctl
enable` and `daemon-reload`, and `systemctl restart` unless the binary, unit and .env file are
unchanged (INSTALL_K3S_FORCE_RESTART=true restarts anyway). INSTALL_K3S_SKIP_ENABLE,
INSTALL_K3S_SKIP_START, INSTALL_K3S_NAME, INSTALL_K3S_TYPE, INSTALL_K3S_BIN_DIR and
INSTALL_K3S_SYMLINK are honoured too. The call is recorded as tool "install.sh"; what was
installed is kept in /var/lib/hubfleet-standin/k3s-install.json. No network, ever.
"""

import os
import re
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.realpath(__file__)), "/run/hubfleet-standins"]
import hubfleet_standin as standin  # type: ignore[import-not-found]  # noqa: E402

# loaded at first use (hubfleet_standin.lazy)
hashlib = standin.lazy("hashlib")
io = standin.lazy("io")
shlex = standin.lazy("shlex")
shutil = standin.lazy("shutil")
subprocess = standin.lazy("subprocess")

BIN_DIR = "/usr/local/bin"
INSTALL_STATE = standin.STATE + "/k3s-install.json"
CHANNELS = {
    "stable": "v1.32.5+k3s1",
    "latest": "v1.33.1+k3s1",
    "testing": "v1.33.2-rc1+k3s1",
    "v1.30": "v1.30.13+k3s1",
    "v1.31": "v1.31.9+k3s1",
    "v1.32": "v1.32.5+k3s1",
    "v1.33": "v1.33.1+k3s1",
}
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(-rc\d+)?\+k3s\d+$")


def info(message):
    print(f"[INFO]  {message}", flush=True)


def fatal(message):
    print(f"[ERROR]  {message}", file=sys.stderr, flush=True)
    return 1


def quote(arg):
    return "'" + arg.replace("'", "'\\''") + "'"


def file_hashes(paths):
    out: list[str | None] = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                out.append(hashlib.sha256(handle.read()).hexdigest())
        except OSError:
            out.append(None)
    return out


def _systemctl_body():
    """The systemctl stand-in's body when `systemctl` on PATH is the stand-in, else None."""
    found = shutil.which("systemctl")
    if not found:
        return None
    try:
        with open(found, "rb") as handle:
            if b"standin_systemctl" not in handle.read(4096):
                return None
    except OSError:
        return None
    sys.path[:0] = [os.path.dirname(os.path.realpath(found))]
    try:
        import standin_systemctl  # type: ignore[import-not-found]
    except ImportError:
        return None
    return standin_systemctl


def systemctl(*args, quiet=False):
    """`systemctl ARGS` as the real installer runs it. The stand-in's body runs in this process:
    a call then costs what the real, compiled systemctl costs, not one more Python start; it
    is recorded as a call of its own, with this process's environment, as a child's would be."""
    body = _systemctl_body()
    if body is None:
        return subprocess.run(["systemctl", *args], capture_output=quiet, text=True).returncode
    saved_argv, saved_out, saved_err = sys.argv, sys.stdout, sys.stderr
    sys.stdout.flush()
    sys.stderr.flush()
    sys.argv = ["systemctl", *args]
    if quiet:
        sys.stdout = sys.stderr = io.StringIO()
    try:
        code = body.main(list(args))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr = saved_argv, saved_out, saved_err
    return code or 0


def channel_version(channel):
    channels = dict(CHANNELS)
    channels.update(standin.read_json(standin.SHARED + "/k3s/channels.json", {}))
    return channels.get(channel)


def install(source, args):
    """The install script, step by step as get.k3s.io does it."""
    standin.record("install.sh", args)
    env = os.environ
    if not (os.access("/bin/systemctl", os.X_OK) or shutil.which("systemctl")):
        return fatal("Can not find systemd or openrc to use as a process supervisor for k3s")
    args = shlex.split(env.get("INSTALL_K3S_EXEC", "")) + list(args)
    k3s_url = env.get("K3S_URL", "")
    if not args or args[0].startswith("-"):
        if not k3s_url:
            command = "server"
        else:
            if not env.get("K3S_TOKEN") and not env.get("K3S_TOKEN_FILE"):
                return fatal(
                    "Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined."
                )
            command = "agent"
    else:
        command, args = args[0], args[1:]
    if k3s_url and not k3s_url.startswith("https://"):
        return fatal(f"Only https:// URLs are supported for K3S_URL (have {k3s_url})")
    if env.get("INSTALL_K3S_NAME"):
        system_name = "k3s-" + env["INSTALL_K3S_NAME"]
    else:
        system_name = "k3s" if command == "server" else f"k3s-{command}"
    bin_dir = env.get("INSTALL_K3S_BIN_DIR") or BIN_DIR
    systemd_dir = env.get("INSTALL_K3S_SYSTEMD_DIR") or "/etc/systemd/system"
    service_file = f"{systemd_dir}/{system_name}.service"
    env_file = f"{service_file}.env"
    binary = f"{bin_dir}/k3s"
    pre = file_hashes([binary, service_file, env_file])
    installed_version = None
    if (
        env.get("INSTALL_K3S_SKIP_DOWNLOAD") in ("true", "binary")
        or env.get("INSTALL_K3S_BIN_DIR_READ_ONLY") == "true"
    ):
        info("Skipping k3s download and verify")
        if not os.access(binary, os.X_OK):
            return fatal(f"Executable k3s binary not found at {binary}")
    else:
        version = env.get("INSTALL_K3S_VERSION")
        if not version:
            channel = env.get("INSTALL_K3S_CHANNEL") or "stable"
            info(f"Finding release for channel {channel}")
            version = channel_version(channel) or channel
        info(f"Using {version} as release")
        hash_url = f"https://github.com/k3s-io/k3s/releases/download/{version}/sha256sum-amd64.txt"
        info(f"Downloading hash {hash_url}")
        if not VERSION_RE.match(version):
            return fatal("Download failed")
        with open(source) as handle:
            text = handle.read()
        text = re.sub(
            r'^STANDIN_VERSION="[^"]*"$',
            f'STANDIN_VERSION="{version}"',
            text,
            count=1,
            flags=re.MULTILINE,
        )
        expected = hashlib.sha256(text.encode()).hexdigest()
        if file_hashes([binary])[0] == expected and os.access(binary, os.X_OK):
            info("Skipping binary downloaded, installed k3s matches hash")
        else:
            info(
                f"Downloading binary https://github.com/k3s-io/k3s/releases/download/{version}/k3s"
            )
            info("Verifying binary download")
            info(f"Installing k3s to {binary}")
            standin.write_file(binary, text, 0o755)
        installed_version = version
        import standin_k3s  # type: ignore[import-not-found]

        standin_k3s.version_answer(version)  # `k3s --version` answered in sh from now on
    if env.get("INSTALL_K3S_SKIP_SELINUX_RPM") == "true" or not os.path.isdir("/usr/share/selinux"):
        info("Skipping installation of SELinux RPM")
    if env.get("INSTALL_K3S_SYMLINK") != "skip":
        for cmd in ("kubectl", "crictl", "ctr"):
            link = f"{bin_dir}/{cmd}"
            if not os.path.lexists(link) or env.get("INSTALL_K3S_SYMLINK") == "force":
                found = shutil.which(cmd)
                if not found or env.get("INSTALL_K3S_SYMLINK") == "force":
                    info(f"Creating {link} symlink to k3s")
                    if os.path.lexists(link):
                        os.unlink(link)
                    os.symlink("k3s", link)
                else:
                    info(f"Skipping {link} symlink to k3s, command exists in PATH at {found}")
            else:
                info(f"Skipping {link} symlink to k3s, already exists")
    killall = f"{bin_dir}/k3s-killall.sh"
    info(f"Creating killall script {killall}")
    standin.write_file(
        killall,
        SCRIPT_HEAD.format(what="k3s-killall.sh")
        + f'exec /usr/bin/python3 -S {binary} __standin_killall__ "$@"\n',
        0o755,
    )
    uninstall_sh = f"{bin_dir}/{system_name}-uninstall.sh"
    info(f"Creating uninstall script {uninstall_sh}")
    standin.write_file(
        uninstall_sh,
        SCRIPT_HEAD.format(what=f"{system_name}-uninstall.sh")
        + f"exec /usr/bin/python3 -S {binary} __standin_uninstall__ {quote(system_name)} {quote(uninstall_sh)} {quote(service_file)} {quote(env_file)} {quote(bin_dir)}\n",
        0o755,
    )
    systemctl("disable", system_name, quiet=True)
    for path in (
        f"/etc/systemd/system/{system_name}.service",
        f"/etc/systemd/system/{system_name}.service.env",
    ):
        if os.path.exists(path):
            os.unlink(path)
    info(f"env: Creating environment file {env_file}")
    lines = []
    for key in sorted(env):
        if re.match(r"^(K3S|CONTAINERD)_", key) or re.match(
            r"^(NO|HTTP|HTTPS)_PROXY", key, re.IGNORECASE
        ):
            lines.append(f"{key}={quote(env[key])}")
    standin.write_file(env_file, "".join(line + "\n" for line in lines), 0o600)
    info(f"systemd: Creating service file {service_file}")
    exec_lines = "".join(f"\t{quote(arg)} \\\n" for arg in args)
    unit = UNIT_TEMPLATE.format(
        # as get.k3s.io: a server's start waits until it is up; an agent's returns at once,
        # and the agent keeps trying to reach its server in the background
        type=env.get("INSTALL_K3S_TYPE") or ("notify" if command == "server" else "exec"),
        env_file=env_file,
        binary=binary,
        command=command,
        args=exec_lines,
    )
    standin.write_file(service_file, unit, 0o644)
    record_install(installed_version, command, args, system_name)
    if env.get("INSTALL_K3S_SKIP_ENABLE") == "true":
        return 0
    info(f"systemd: Enabling {system_name} unit")
    if systemctl("enable", service_file, quiet=True) != 0:
        return 1
    systemctl("daemon-reload", quiet=True)
    if env.get("INSTALL_K3S_SKIP_START") == "true":
        return 0
    post = file_hashes([binary, service_file, env_file])
    if pre == post and env.get("INSTALL_K3S_FORCE_RESTART") != "true":
        info("No change detected so skipping service start")
        return 0
    info(f"systemd: Starting {system_name}")
    return 1 if systemctl("restart", system_name) != 0 else 0


def record_install(version, command, args, system_name):
    with standin.locked("k3s-install"):
        state = standin.read_json(INSTALL_STATE, {"installs": 0})
        state["installs"] = state.get("installs", 0) + 1
        if version:
            state["version"] = version
        state.update(command=command, args=args, service=system_name, at=round(time.time(), 3))
        standin.write_json(INSTALL_STATE, state)


SCRIPT_HEAD = """#!/bin/sh
# {what}, as written by the k3s install script stand-in (tests/standins/k3s)
[ $(id -u) -eq 0 ] || exec sudo $0 "$@"
"""

UNIT_TEMPLATE = """[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type={type}
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-{env_file}
KillMode=process
Delegate=yes
User=root
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart={binary} \\
    {command} \\
{args}
"""


if __name__ == "__main__":
    sys.exit(install(sys.argv[1], sys.argv[2:]))
