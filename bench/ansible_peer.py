"""The Ansible peer baseline of bench/bootstrap.py: the host preparation of a k3s bootstrap as a
tuned Ansible play (bench/ansible/k3s-host-prep.yml; 10 forks, pipelining, ControlPersist), run
with `ansible-playbook` on the same test hosts, through the same delaying proxies on 127.0.0.1
that hubfleet connects through, with the same key and pinned host keys.

Needs ansible-core (`pip install -e '.[bench]'`); `ansible_playbook()` says whether it is there.
Nothing is fetched: no galaxy collection, only ansible.builtin modules.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.k3s import config as k3s
from hubfleet.registry.members import load_registry
from hubfleet.registry.roles import is_server

HERE = Path(__file__).resolve().parent
PLAYBOOK = HERE / "ansible" / "k3s-host-prep.yml"
CONFIG = HERE / "ansible" / "ansible.cfg"
# what the play writes, removed before its first run so that it finds the hosts as hubfleet did
PLAY_FILES = (
    k3s.SYSCTL_PATH,
    k3s.KUBELET_CONFIG_PATH,
    k3s.CONFIG_PATH,
    k3s.TRAEFIK_SKIP_PATH,
)


@dataclass(frozen=True)
class PlayRun:
    seconds: float
    changed: int  # tasks changed, summed over the hosts (PLAY RECAP)
    failed: int


def ansible_playbook() -> str | None:
    """The ansible-playbook next to this Python (a venv), else on PATH; None without it."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ansible-playbook")


def inventory(
    repo: DeployRepo, member_name: str, hosts: list[Any], routes: dict[str, tuple[str, int]]
) -> dict[str, Any]:
    """The play's inventory: each host at its proxy, with the files hubfleet renders for it."""
    member = load_registry(repo).member(member_name)
    public_key = (repo.secrets_dir / f"{member_name}.key.pub").read_text().strip()
    groups: dict[str, dict[str, Any]] = {"server": {"hosts": {}}, "agent": {"hosts": {}}}
    for host, test_host in zip(member.hosts, hosts, strict=True):
        address, port = routes[host.address]
        ram_gb = float(test_host.options.mem_gb or 16)
        groups["server" if is_server(host) else "agent"]["hosts"][test_host.name] = {
            "ansible_host": address,
            "ansible_port": port,
            "sysctl_conf": k3s.sysctl_file().content,
            "kubelet_conf": k3s.kubelet_file(member, ram_gb).content,
            "k3s_config": k3s.config_file(member, host).content,
        }
    return {
        "all": {
            "children": groups,
            "vars": {"ansible_user": "root", "operators_key": public_key},
        }
    }


def reset(hosts: list[Any], repo: DeployRepo, member_name: str) -> None:
    """Take back what the play would write (not timed): its files, and the operators' key
    from root's authorized_keys, so the play's first run has as much to do as hubfleet's."""
    blob = (repo.secrets_dir / f"{member_name}.key.pub").read_text().split()[1]
    for host in hosts:
        host.run(
            f"rm -f {' '.join(PLAY_FILES)}; "
            f"grep -v '{blob}' /root/.ssh/authorized_keys > /root/.ssh/ak.new; "
            "mv /root/.ssh/ak.new /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys",
            check=True,
        )


def run_play(
    playbook_bin: str,
    work: Path,
    key: Path,
    hosts: list[Any],
    routes: dict[str, tuple[str, int]],
    inventory_data: dict[str, Any],
) -> PlayRun:
    """Run the play once; its wall time (ansible-playbook's start included) and its recap."""
    work.mkdir(parents=True, exist_ok=True)
    known_hosts = work / "known_hosts"
    known_hosts.write_text("".join(h.host_key_line_for(*routes[h.address]) + "\n" for h in hosts))
    inventory_file = work / "inventory.yml"
    inventory_file.write_text(yaml.safe_dump(inventory_data))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(work),
        "ANSIBLE_CONFIG": str(CONFIG),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "local-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(key),
        "ANSIBLE_SSH_COMMON_ARGS": (
            f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes"
        ),
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [playbook_bin, "-i", str(inventory_file), str(PLAYBOOK)]
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise SystemExit("ansible-playbook failed:\n" + "\n".join(tail))
    changed = sum(int(n) for n in re.findall(r"\bchanged=(\d+)", proc.stdout))
    failed = sum(int(n) for n in re.findall(r"\bfailed=(\d+)", proc.stdout))
    return PlayRun(seconds, changed, failed)


def close_connections(work: Path) -> None:
    """End the SSH masters ControlPersist left running (ours, by their sockets)."""
    folder = work / "cp"
    if not folder.is_dir():
        return
    for socket_path in folder.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "bench-peer"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def first_and_rerun(
    repo: DeployRepo,
    member_name: str,
    hosts: list[Any],
    routes: dict[str, tuple[str, int]],
    key: Path,
    work: Path,
) -> tuple[PlayRun, PlayRun]:
    """The play's first run on hosts reset to before it, then its no-op rerun."""
    playbook_bin = ansible_playbook()
    if playbook_bin is None:
        raise SystemExit("--peer ansible needs ansible-core: pip install -e '.[bench]'")
    data = inventory(repo, member_name, hosts, routes)
    reset(hosts, repo, member_name)
    try:
        first = run_play(playbook_bin, work, key, hosts, routes, data)
        again = run_play(playbook_bin, work, key, hosts, routes, data)
    finally:
        close_connections(work)
    return first, again
