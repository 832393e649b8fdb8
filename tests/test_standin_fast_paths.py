"""The stand-ins' sh fast paths (tests/standins/hubfleet_standin.sh) answer the hot read-only
queries exactly as their Python bodies do: the same stdout, stderr, exit code and calls.log
record, across the state changes their answer files derive from (unit states, sysctl writes,
set-ntp, the lab options time_synced, cpus and systemd_state, the installed k3s version), so a
stale answer file fails here. And they cost what the real binaries cost (a few ms a call)."""

from __future__ import annotations

import shlex
import statistics
from typing import Any

import pytest

from tests.harness import TestHost
from tests.harness_setup import k3s_binary

pytest_plugins = ["tests.conftest_hosts"]

# PATH for a call that must be answered in sh: date (the record's time), cat (/proc/sys), no python3
NO_PYTHON = "/tmp/hf-no-python"

FORMS = [
    "nproc",
    "nproc --all",
    "systemctl is-system-running",
    "timedatectl show -p NTPSynchronized --value",
    "timedatectl show -p NTPSynchronized",
    "sysctl fs.inotify.max_user_instances fs.inotify.max_user_watches",
    "sysctl -n fs.inotify.max_user_watches",
    "k3s --version",
    "k3s -v",
    "k3s version",
    "systemctl is-active k3s",
    "systemctl is-active k3s-agent",
    "systemctl is-active good.service",
    "systemctl is-active good bad nothere",
    "systemctl is-active --quiet good",
    "systemctl is-active -q good bad",
]

UNITS = {
    "good": "[Unit]\nDescription=good\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    "bad": "[Unit]\nDescription=bad\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
}


def _record(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k not in ("time", "pid")}


def same_as_python(host: TestHost, cmd: str, *, fast: bool = True) -> None:
    """`cmd` answers as its Python body does; with `fast`, without starting Python at all."""
    slow = host.run(f"HUBFLEET_STANDIN_SLOW=1 {cmd}")
    path = f"PATH={NO_PYTHON} " if fast else ""
    quick = host.run(f"{path}/usr/local/bin/{cmd}")
    calls = host.calls()
    assert (quick.stdout, quick.stderr, quick.returncode) == (
        slow.stdout,
        slow.stderr,
        slow.returncode,
    ), cmd
    assert _record(calls[-1]) == _record(calls[-2]), cmd
    assert calls[-1]["argv"] == shlex.split(cmd)[1:]
    assert isinstance(calls[-1]["time"], float) and isinstance(calls[-1]["pid"], int)


def with_env(case: str) -> tuple[list[str], str, str]:
    """`VAR=value ... command args` as (the assignments, them quoted for sh, the command)."""
    words = shlex.split(case)
    env = [w for w in words if "=" in w and w.split("=")[0].isupper()]
    return env, " ".join(shlex.quote(e) for e in env), " ".join(map(shlex.quote, words[len(env) :]))


def all_forms(host: TestHost) -> None:
    for cmd in FORMS:
        same_as_python(host, cmd)


@pytest.fixture
def host(hosts) -> TestHost:
    (host,) = hosts(1, cpus=4)
    host.run(f"mkdir -p {NO_PYTHON} && ln -s /bin/date /bin/cat {NO_PYTHON}/", check=True)
    for name, text in UNITS.items():
        host.write(f"/etc/systemd/system/{name}.service", text)
    host.write("/usr/local/bin/k3s", k3s_binary(), 0o755)
    return host


def test_fast_paths_answer_as_python_across_state_changes(host: TestHost) -> None:
    all_forms(host)
    # units started, failed, stopped
    assert host.run("systemctl start good").returncode == 0
    assert host.run("systemctl start bad").returncode == 1
    all_forms(host)
    host.run("systemctl stop good", check=True)
    host.run("systemctl reset-failed bad", check=True)
    all_forms(host)
    host.run("systemctl start good", check=True)
    all_forms(host)
    # sysctl written (and read back from the state, not /proc/sys)
    host.run("sysctl -w fs.inotify.max_user_watches=524288", check=True)
    same_as_python(host, "sysctl fs.inotify.max_user_instances fs.inotify.max_user_watches")
    assert host.run("sysctl -n fs.inotify.max_user_watches").stdout == "524288\n"
    host.run("sysctl -w fs.inotify.max_user_instances=1024", check=True)
    all_forms(host)
    # time sync: the lab option, and set-ntp
    host.set_time_synced(False)
    all_forms(host)
    assert host.run("timedatectl show -p NTPSynchronized --value").stdout == "no\n"
    host.set_time_synced(True)
    host.run("timedatectl set-ntp false", check=True)
    all_forms(host)
    assert host.run("timedatectl show -p NTPSynchronized --value").stdout == "no\n"
    host.run("timedatectl set-ntp true", check=True)
    all_forms(host)
    # the lab's options: cpus, systemd_state
    host.lab._set_host_option(host.name, cpus=7, systemd_state="degraded")
    all_forms(host)
    assert host.run("nproc").stdout == "7\n"
    assert host.run("systemctl is-system-running").returncode == 1
    host.lab._set_host_option(host.name, cpus=2, systemd_state="running")
    all_forms(host)
    # another k3s version installed
    host.write("/usr/local/bin/k3s", k3s_binary("v1.31.9+k3s1"), 0o755)
    all_forms(host)
    assert host.run("k3s --version").stdout.startswith("k3s version v1.31.9+k3s1 (")
    # k3s removed: both are the shell's "not found"
    host.run("rm /usr/local/bin/k3s", check=True)
    assert host.run("k3s --version").returncode == 127


def test_other_calls_fall_back_to_python_and_record_alike(host: TestHost) -> None:
    cases = [
        "K3S_TOKEN=secret nproc",  # a recorded environment (answered in sh: see below)
        "INSTALL_K3S_VERSION=v1 systemctl is-active good",
        "'INSTALL_K3S_EXEC=agent --node-ip 10.0.0.2' nproc",  # a value with spaces: Python
        "curl -sfL https://get.k3s.io/x",  # another URL: Python
        "curl -sSfL https://get.k3s.io",
        "SUDO_USER=o\\'brien nproc",  # the record needs escaping
        "systemctl is-active good --now",
        "systemctl is-active /etc/systemd/system/good.service",
        "sysctl fs.inotify",  # a directory: an error
        "sysctl no.such.key",
        "sysctl -w fs.inotify.max_user_watches=600000",
        "timedatectl show -p NTP --value",
        "nproc --ignore=1",
        "k3s --version extra",
    ]
    for case in cases:
        _, prefix, cmd = with_env(case)
        slow = host.run(f"{prefix} HUBFLEET_STANDIN_SLOW=1 {cmd}")
        quick = host.run(f"{prefix} {cmd}")
        calls = host.calls()
        assert (quick.stdout, quick.stderr, quick.returncode) == (
            slow.stdout,
            slow.stderr,
            slow.returncode,
        ), case
        assert _record(calls[-1]) == _record(calls[-2]), case
    # a cwd the record would have to escape
    host.run("mkdir -p '/tmp/a b'", check=True)
    slow = host.run("cd '/tmp/a b' && HUBFLEET_STANDIN_SLOW=1 nproc")
    quick = host.run("cd '/tmp/a b' && nproc")
    assert quick.stdout == slow.stdout
    assert host.calls()[-1]["cwd"] == host.calls()[-2]["cwd"] == "/tmp/a b"


ENV_FORMS = [
    "K3S_TOKEN=s3cr3t-t0ken K3S_URL=https://10.213.0.10:6443 nproc",
    "K3S_TOKEN=s3cr3t-t0ken k3s --version",
    "INSTALL_K3S_EXEC=agent INSTALL_K3S_VERSION=v1.32.5+k3s1 K3S_TOKEN=s3cr3t-t0ken "
    "K3S_URL=https://10.213.0.10:6443 curl -sfL https://get.k3s.io",
    "curl -sfL https://get.k3s.io/",
]


def test_a_recorded_environment_and_the_install_script_are_answered_in_sh(
    host: TestHost,
) -> None:
    """As hubfleet's install runs them: curl for get.k3s.io, and calls made with the join's
    variables in the environment (recorded, the token as <hidden>), all without Python."""
    host.run("k3s --version", check=True)  # its answer file written
    for case in ENV_FORMS:
        env, prefix, cmd = with_env(case)
        slow = host.run(f"{prefix} HUBFLEET_STANDIN_SLOW=1 {cmd}")
        quick = host.run(f"{prefix} PATH={NO_PYTHON} /usr/local/bin/{cmd}")
        calls = host.calls()
        assert quick.returncode == 0, (case, quick.stderr)
        assert (quick.stdout, quick.stderr) == (slow.stdout, slow.stderr), case
        assert _record(calls[-1]) == _record(calls[-2]), case
        assert calls[-1]["env"] == {
            w.split("=")[0]: "<hidden>" if w.startswith("K3S_TOKEN=") else w.split("=", 1)[1]
            for w in env
        }
    assert host.calls()[-1]["tool"] == "curl"
    assert "s3cr3t-t0ken" not in (host.read("/var/lib/hubfleet-standin/calls.log") or "")


def test_fast_paths_cost_what_real_binaries_cost(host: TestHost) -> None:
    host.run("systemctl start good", check=True)
    report = []
    for cmd in FORMS[:11]:
        host.run(cmd)  # answer files written
        ms = {}
        for label, env in (("fast", ""), ("python", "HUBFLEET_STANDIN_SLOW=1 ")):
            loop = f"for i in 1 2 3 4 5; do {env}{cmd} >/dev/null; done"
            script = f"a=$(date +%s%N); {loop}; b=$(date +%s%N); echo $(( (b - a) / 5000 ))"
            ms[label] = statistics.median(
                int(host.run(script, check=True).stdout) / 1000 for _ in range(4)
            )
        report.append(f"{ms['fast']:6.1f} ms (Python {ms['python']:6.1f} ms)  {cmd}")
        assert ms["fast"] < 10, report[-1]
    print("\nstand-in cost per call, inside the host:\n" + "\n".join(report))
