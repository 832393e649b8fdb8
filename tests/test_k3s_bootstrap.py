"""k3s bootstrap over real SSH to harness hosts (tests/harness.py), with stand-in k3s.

Real: sshd, fabric/paramiko, sops/age, the shell on the hosts, parted/mkfs.xfs on a loop disk.
Stand-ins: k3s (install.sh, the binary), systemctl, sysctl, timedatectl, curl for get.k3s.io.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.hostkeys import HostKeyDecision
from hubfleet.hosts.member_run import BootstrapOptions
from hubfleet.hosts.steps import CHANGED, OK, SKIPPED, WOULD_CHANGE, StepFailed, StepReport
from hubfleet.k3s import bootstrap as k3s_bootstrap
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo
from tests.harness import HostLab, TestHost

VERSION = "v1.32.5+k3s1"
FACTS = {"mem_gb": 8, "cpus": 4, "disk_gb": 40, "os_release": "ubuntu-24.04"}


def k3s_repo(
    deploy_repo: MakeRepo, lab: HostLab, hosts: list[TestHost], pin: bool = True, **k3s: Any
) -> DeployRepo:
    records = [
        {
            "address": h.address,
            "role": "server" if i == 0 else "agent",
            **({"user": h.user} if h.user != "root" else {}),
        }
        for i, h in enumerate(hosts)
    ]
    repo = deploy_repo(
        {
            "edge": {
                "domain": "edge.example.org",
                "provider": "k3s",
                "hosts": records,
                "k3s": {"version": VERSION, **k3s},
            }
        }
    )
    if pin:
        (repo.root / "config" / "known_hosts").write_text(
            "".join(h.host_key_line + "\n" for h in hosts)
        )
    return repo


def options(lab: HostLab, **kw: Any) -> BootstrapOptions:
    settings: dict[str, Any] = {"connect_timeout_s": 3, "ready_timeout_s": 10, **kw}
    return BootstrapOptions(identity=lab.client_key_path, **settings)


def bootstrap(
    repo: DeployRepo,
    opts: BootstrapOptions,
    lines: list[str] | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Any]:
    sink = say or (lines.append if lines is not None else lambda line: None)
    return k3s_bootstrap.bootstrap(repo, "edge", opts, say=sink)


def states(reports: list[Any]) -> dict[tuple[str, str], str]:
    return {(r.host, r.step): r.state for r in reports}


def host_state(host: TestHost) -> dict[str, Any]:
    """What a clean bootstrap leaves on a host, to compare runs."""
    paths = [
        "/etc/rancher/k3s/config.yaml",
        "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/999-hubfleet.conf",
        "/etc/sysctl.d/90-hubfleet-inotify.conf",
        "/var/lib/rancher/k3s/hubfleet-config.sha256",
    ]
    version = host.run("k3s --version | head -n1", check=False).stdout.strip()
    return {**{p: host.read(p) for p in paths}, "version": version}


@pytest.fixture
def lab_hosts(host_lab: HostLab) -> Callable[..., list[TestHost]]:
    def make(n: int, **extra: Any) -> list[TestHost]:
        return [host_lab.add_host(**{**FACTS, **extra}) for _ in range(n)]

    return make


def test_a_bare_host_becomes_a_single_node_member_and_a_rerun_changes_nothing(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    lines: list[str] = []
    first = bootstrap(repo, options(host_lab), lines)
    label = server.address
    assert states(first)[(label, "preflight")] == OK
    for step in ("operators-key", "sysctl", "kubelet-config", "k3s-config", "k3s-install"):
        assert states(first)[(label, step)] == CHANGED, step
    assert states(first)[("member edge", "ready")] == OK
    assert states(first)[("member edge", "kubeconfig")] == CHANGED

    # what the host got
    config = yaml.safe_load(server.read("/etc/rancher/k3s/config.yaml") or "")
    assert config["tls-san"][:2] == [server.address, "edge.example.org"]
    assert config["disable"] == ["traefik"]
    assert server.exists("/var/lib/rancher/k3s/server/manifests/traefik.yaml.skip")
    kubelet = yaml.safe_load(
        server.read("/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/999-hubfleet.conf") or ""
    )
    assert kubelet["maxPods"] == 30 and kubelet["imageGCHighThresholdPercent"] == 40
    assert "fs.inotify.max_user_watches = 524288" in (
        server.read("/etc/sysctl.d/90-hubfleet-inotify.conf") or ""
    )
    assert server.run("sysctl -n fs.inotify.max_user_instances").stdout.strip() == "8192"
    install = [c for c in server.calls("install.sh")]
    assert len(install) == 1 and install[0]["env"]["INSTALL_K3S_VERSION"] == VERSION

    # the member's key: encrypted in the repo, authorised beside the key we came in with
    key_file = repo.secrets_dir / "edge.key"
    assert sops.is_encrypted(key_file)
    public = (repo.secrets_dir / "edge.key.pub").read_text().split()[1]
    authorized = server.read("/root/.ssh/authorized_keys") or ""
    assert public in authorized and len(authorized.strip().splitlines()) == 2

    # the kubeconfig, rewritten and encrypted
    stored = sops.decrypt_yaml(repo, repo.member_kubeconfig("edge"))
    assert stored["current-context"] == "edge"
    assert stored["clusters"][0]["cluster"]["server"] == f"https://{server.address}:6443"
    assert stored["contexts"][0]["context"] == {
        "cluster": "edge",
        "user": "edge",
        "namespace": "edge",
    }
    assert "default" not in yaml.safe_dump(stored)
    assert any("client certificate expires in 36" in line for line in lines)

    # second run: with the member's own key, every step ok, nothing restarted
    restarts = server.unit("k3s").get("restarts", 0)
    again = bootstrap(repo, BootstrapOptions(connect_timeout_s=3, ready_timeout_s=10))
    assert {s for s in states(again).values()} == {OK}
    assert server.unit("k3s").get("restarts", 0) == restarts
    assert len(server.calls("install.sh")) == 1


def test_three_hosts_join_and_the_token_is_never_shown(
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    lab_hosts: Callable[..., list[TestHost]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, *agents = lab_hosts(3)
    repo = k3s_repo(deploy_repo, host_lab, [server, *agents])
    lines: list[str] = []
    reports = bootstrap(repo, options(host_lab), lines)
    for agent in agents:
        assert states(reports)[(agent.address, "join")] == CHANGED
        assert (agent.address, "k3s-install") not in states(reports)
        call = agent.calls("install.sh")[-1]
        assert call["env"]["K3S_URL"] == f"https://{server.address}:6443"
        assert agent.unit("k3s-agent").get("active")
    ready = next(r for r in reports if r.step == "ready")
    assert ready.detail.startswith("3 node(s) Ready")
    token = (server.read("/var/lib/rancher/k3s/server/token") or "").strip()
    assert token.startswith("K10")
    captured = capfd.readouterr()
    assert token not in "\n".join(lines) + captured.out + captured.err
    assert all(token not in str(r) for r in reports)


def test_dry_run_reports_what_would_change_and_changes_nothing(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    reports = bootstrap(repo, options(host_lab, dry_run=True))
    assert states(reports)[(server.address, "k3s-config")] == WOULD_CHANGE
    assert states(reports)[(server.address, "k3s-install")] == WOULD_CHANGE
    assert not server.exists("/etc/rancher/k3s/config.yaml")
    assert not server.exists("/etc/sysctl.d/90-hubfleet-inotify.conf")
    assert server.calls("install.sh") == []
    assert not (repo.secrets_dir / "edge.key").exists()


def test_a_failed_preflight_on_one_host_stops_before_any_change(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, agent = lab_hosts(2)
    agent.set_time_synced(False)
    repo = k3s_repo(deploy_repo, host_lab, [server, agent])
    with pytest.raises(
        StepFailed, match=rf"host {agent.address}: preflight failed: clock not synchronised"
    ):
        bootstrap(repo, options(host_lab))
    assert not server.exists("/etc/rancher/k3s/config.yaml")
    assert not (repo.secrets_dir / "edge.key").exists()


def test_sshd_killed_mid_bootstrap_then_a_rerun_finishes_like_a_clean_run(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    broken, clean = lab_hosts(2)
    repo = k3s_repo(deploy_repo, host_lab, [broken])
    seen: list[StepReport] = []

    class KillBeforeInstall:
        """The connection breaks as the install starts: the host's preparation, left to go
        with the install's command, never reaches the host."""

        def started(self, host: str, step: str) -> None:
            if step == "k3s-install":
                broken.kill_sshd_sessions()

        def finished(self, report: StepReport) -> None:
            seen.append(report)

    with pytest.raises(StepFailed, match=r"connection lost.*rerun to resume"):
        bootstrap(repo, options(host_lab, watcher=KillBeforeInstall()))
    got = {r.step: r.state for r in seen}
    # the first change that went with the lost command is named; the others did not run
    assert got["operators-key"] == "failed"
    assert got["sysctl"] == got["kubelet-config"] == got["k3s-config"] == SKIPPED
    assert got["k3s-install"] == SKIPPED
    assert not broken.exists("/usr/local/bin/k3s")
    assert not broken.exists("/etc/rancher/k3s/config.yaml")
    # the same command again resumes and finishes
    resumed = bootstrap(repo, options(host_lab))
    assert states(resumed)[(broken.address, "k3s-config")] == CHANGED
    assert states(resumed)[(broken.address, "k3s-install")] == CHANGED
    after_resume = host_state(broken)

    # the same member record bootstrapped cleanly on another host
    record = yaml.safe_load(repo.registry.read_text())
    record["members"]["edge"]["hosts"][0]["address"] = clean.address
    repo.registry.write_text(yaml.safe_dump(record))
    (repo.root / "config" / "known_hosts").write_text(clean.host_key_line + "\n")
    bootstrap(repo, options(host_lab))
    after_clean = host_state(clean)
    marker = "/var/lib/rancher/k3s/hubfleet-config.sha256"  # a checksum of the config: differs
    assert after_resume.pop(marker) and after_clean.pop(marker)
    assert {
        k: (v or "").replace(clean.address, broken.address) for k, v in after_clean.items()
    } == {k: v or "" for k, v in after_resume.items()}
    assert broken.unit("k3s").get("active")


def test_a_host_with_its_link_down_is_named_within_the_timeout(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    import time

    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    server.link_down()
    started = time.monotonic()
    with pytest.raises(HubfleetError, match=rf"member edge: host {server.address}: unreachable"):
        bootstrap(repo, options(host_lab, connect_timeout_s=2))
    assert time.monotonic() - started < 6


def test_a_full_disk_is_a_clear_error_and_leaves_no_half_written_file(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    server.fill_disk("/etc/rancher")
    with pytest.raises(StepFailed, match=r"while writing /etc/rancher/k3s/config.yaml"):
        bootstrap(repo, options(host_lab))
    leftovers = server.run("ls -A /etc/rancher/k3s 2>/dev/null || true").stdout.split()
    assert leftovers == []  # neither the file nor a temp file
    server.free_disk("/etc/rancher")
    reports = bootstrap(repo, BootstrapOptions(connect_timeout_s=3, ready_timeout_s=10))
    assert states(reports)[(server.address, "k3s-config")] == CHANGED


def test_host_keys_unknown_accepted_and_changed(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server], pin=False)
    with pytest.raises(
        HubfleetError,
        match=rf"unknown host key {re.escape(server.host_key_fingerprint)}; .*--accept-host-key",
    ):
        bootstrap(repo, options(host_lab, dry_run=True))
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HubfleetError, match=f"the fingerprint given was {wrong}"):
        bootstrap(repo, options(host_lab, dry_run=True, host_key=HostKeyDecision(accept=wrong)))
    bootstrap(
        repo,
        options(
            host_lab, dry_run=True, host_key=HostKeyDecision(accept=server.host_key_fingerprint)
        ),
    )
    pinned = (repo.root / "config" / "known_hosts").read_text()
    assert pinned.strip() == server.host_key_line
    # a different key under that name is refused
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxN3XgHSXgcJkTlvVHjrHtYvL0cTqZtHuKT0vKQ1m5Q"
    (repo.root / "config" / "known_hosts").write_text(f"{server.address} {other_key}\n")
    with pytest.raises(HubfleetError, match=r"host key changed: .*refusing to connect"):
        bootstrap(repo, options(host_lab, dry_run=True))


def test_a_non_root_user_works_through_sudo(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1, user="ops")
    repo = k3s_repo(deploy_repo, host_lab, [server])
    reports = bootstrap(repo, options(host_lab))
    assert states(reports)[(server.address, "k3s-install")] == CHANGED
    assert server.exists("/etc/rancher/k3s/k3s.yaml")
    assert sops.decrypt_yaml(repo, repo.member_kubeconfig("edge"))["current-context"] == "edge"


def test_dind_disk_is_formatted_mounted_by_uuid_and_a_used_disk_is_refused(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, other = lab_hosts(2)
    disk = server.add_disk(512)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    record = yaml.safe_load(repo.registry.read_text())
    record["members"]["edge"]["hosts"][0]["disk"] = disk
    repo.registry.write_text(yaml.safe_dump(record))
    first = bootstrap(repo, options(host_lab))
    assert states(first)[(server.address, "dind-disk")] == CHANGED
    uuid = server.run(f"blkid -o value -s UUID {disk}p1").stdout.strip()
    assert f"UUID={uuid} /mnt/disk xfs" in (server.read("/etc/fstab") or "")
    assert server.run("findmnt -n -o FSTYPE /mnt/disk").stdout.strip() == "xfs"
    again = bootstrap(repo, BootstrapOptions(connect_timeout_s=3, ready_timeout_s=10))
    assert states(again)[(server.address, "dind-disk")] == OK

    used = other.add_disk(512)
    other.run(f"mkfs.ext4 -q {used}")
    record["members"]["edge"]["hosts"][0].update(address=other.address, disk=used)
    repo.registry.write_text(yaml.safe_dump(record))
    (repo.root / "config" / "known_hosts").write_text(other.host_key_line + "\n")
    with pytest.raises(
        StepFailed, match=rf"disk {used} already holds a filesystem \(ext4\); refusing"
    ):
        bootstrap(repo, options(host_lab))


def test_the_bootstrap_task_prints_a_step_table(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    env = {**os.environ, "HUBFLEET_ROOT": str(repo.root)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "k3s.bootstrap",
            "edge",
            "--dry-run",
            "--identity",
            str(host_lab.client_key_path),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "k3s-install" in done.stdout and "would change" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "invoke", "k3s.bootstrap", "edge", "--from-step", "nope"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith(
        "error: no step 'nope'; the steps are: preflight, operators-key"
    )


def test_air_gapped_install_uploads_the_artefacts_and_downloads_nothing(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    from tests.harness import k3s_binary, k3s_install_script

    (server,) = lab_hosts(1)
    repo = k3s_repo(
        deploy_repo,
        host_lab,
        [server],
        airgap={
            "binary": "airgap/k3s",
            "install_script": "airgap/install.sh",
            "images": "airgap/images.tar",
        },
    )
    (repo.root / "airgap").mkdir()
    (repo.root / "airgap" / "k3s").write_text(k3s_binary(VERSION))
    (repo.root / "airgap" / "install.sh").write_text(k3s_install_script())
    (repo.root / "airgap" / "images.tar").write_bytes(b"not really images\n")
    reports = bootstrap(repo, options(host_lab))
    assert states(reports)[(server.address, "k3s-install")] == CHANGED
    install = server.calls("install.sh")[-1]
    assert install["env"]["INSTALL_K3S_SKIP_DOWNLOAD"] == "true"
    assert server.calls("curl") == []
    assert server.read("/var/lib/rancher/k3s/agent/images/images.tar") == "not really images\n"
    mode = server.run("stat -c %a /usr/local/bin/k3s").stdout.strip()
    assert mode == "755"


def test_upgrade_plans_are_applied_through_the_kubernetes_api(
    deploy_repo: MakeRepo,
    host_lab: HostLab,
    lab_hosts: Callable[..., list[TestHost]],
    kube_stub: Any,
) -> None:
    from hubfleet.kube import client as kube
    from tests.conftest_kube import credentials_for

    (server,) = lab_hosts(1)
    window = {"days": ["sunday"], "start": "02:00", "end": "04:00", "timezone": "UTC"}
    repo = k3s_repo(
        deploy_repo, host_lab, [server], upgrade={"channel": "stable", "window": window}
    )
    kube_stub.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "system-upgrade"}})
    # the member's cluster is the stub here: its kubeconfig (fetched from the stand-in k3s)
    # points at the host, where no API server runs
    stub = credentials_for(kube_stub, "edge")

    def api(_creds: Any) -> Any:
        return kube.member_api(stub)

    first = k3s_bootstrap.bootstrap(
        repo, "edge", options(host_lab), say=lambda line: None, kube_api=api
    )
    plan = next(r for r in first if r.step == "upgrade-plan")
    assert plan.state == CHANGED and "created" in plan.detail
    names = sorted(p["metadata"]["name"] for p in kube_stub.objects("Plan", "system-upgrade"))
    assert names == ["edge-k3s-agent", "edge-k3s-server"]
    server_plan = kube_stub.get("Plan", "edge-k3s-server", "system-upgrade")
    assert server_plan["spec"]["window"]["startTime"] == "02:00"
    again = k3s_bootstrap.bootstrap(
        repo, "edge", BootstrapOptions(connect_timeout_s=3), say=lambda line: None, kube_api=api
    )
    assert next(r for r in again if r.step == "upgrade-plan").state == OK


def test_one_host_at_a_time_then_join_then_uninstall(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, agent = lab_hosts(2)
    repo = k3s_repo(deploy_repo, host_lab, [server, agent])
    first = bootstrap(repo, options(host_lab, only_host=server.address))
    assert {r.host for r in first} == {server.address, "member edge"}
    assert agent.calls("install.sh") == []
    assert next(r for r in first if r.step == "ready").detail.startswith("1 node(s) Ready")

    joined = bootstrap(repo, options(host_lab, only_host=agent.address))
    assert states(joined)[(agent.address, "join")] == CHANGED
    assert (server.address, "k3s-install") not in states(joined)
    assert next(r for r in joined if r.step == "ready").detail.startswith("2 node(s) Ready")
    assert [r.step for r in joined if r.host == "member edge"] == ["ready"]

    with pytest.raises(HubfleetError, match=r"member edge has no host '10\.9\.9\.9'"):
        bootstrap(repo, options(host_lab, only_host="10.9.9.9"))

    removed = k3s_bootstrap.uninstall(repo, "edge", options(host_lab), say=lambda line: None)
    assert {(r.host, r.state) for r in removed} == {
        (server.address, CHANGED),
        (agent.address, CHANGED),
    }
    assert not server.exists("/usr/local/bin/k3s") and not agent.exists("/usr/local/bin/k3s")
    again = k3s_bootstrap.uninstall(repo, "edge", options(host_lab), say=lambda line: None)
    assert {r.state for r in again} == {OK}


def test_a_node_that_never_becomes_ready_fails_naming_it(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    server, agent = lab_hosts(2)
    agent.set_node_ready(False)
    repo = k3s_repo(deploy_repo, host_lab, [server, agent])
    with pytest.raises(StepFailed) as caught:
        bootstrap(repo, options(host_lab, ready_timeout_s=1))
    assert str(caught.value) == f"member edge: node(s) not Ready after 1s: {agent.name} (NotReady)"
    ready = next(r for r in caught.value.reports if r.step == "ready")
    assert ready.state == "failed"
    assert not (repo.root / "secrets" / "edge-kubeconfig.yaml").exists()  # later steps skipped


def test_the_kubelet_drop_in_wins_over_an_operators_and_takes_over_its_old_name(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    (server,) = lab_hosts(1)
    folder = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d"
    # as on mybinder.org's hosts, and as an earlier hubfleet named its own
    server.write(f"{folder}/99-kubelet.conf", "kind: KubeletConfiguration\nmaxPods: 300\n")
    server.write(f"{folder}/99-hubfleet.conf", "kind: KubeletConfiguration\nmaxPods: 30\n")
    repo = k3s_repo(deploy_repo, host_lab, [server])
    first = {(r.host, r.step): r for r in bootstrap(repo, options(host_lab))}
    step = first[(server.address, "kubelet-config")]
    assert step.state == CHANGED
    assert step.detail == (
        f"wrote {folder}/999-hubfleet.conf, removed 99-hubfleet.conf "
        "(maxPods 30; wins over 99-kubelet.conf)"
    )
    listing = server.run(f"ls {folder}").stdout.split()
    # the kubelet reads its drop-ins in byte order: the operator's 99-, then hubfleet's 999-
    assert sorted(listing) == ["00-k3s-defaults.conf", "99-kubelet.conf", "999-hubfleet.conf"]
    again = {(r.host, r.step): r for r in bootstrap(repo, options(host_lab))}
    assert again[(server.address, "kubelet-config")].state == OK
    assert (
        again[(server.address, "kubelet-config")].detail == "maxPods 30; wins over 99-kubelet.conf"
    )


def test_refresh_credentials_fetches_again_and_restarts_k3s_to_renew_when_asked(
    deploy_repo: MakeRepo, host_lab: HostLab, lab_hosts: Callable[..., list[TestHost]]
) -> None:
    from hubfleet.k3s.bootstrap import refresh_kubeconfig
    from hubfleet.members.refresh import refresh_credentials, stored_days
    from hubfleet.registry.members import load_registry

    (server,) = lab_hosts(1)
    repo = k3s_repo(deploy_repo, host_lab, [server])
    bootstrap(repo, options(host_lab))
    member = load_registry(repo).member("edge")
    assert stored_days(repo, member) in (364, 365)

    # the admin certificate k3s holds now ends in 10 days (its copy taken meanwhile, too)
    tls = "/var/lib/rancher/k3s/server/tls"
    server.run(
        f"cd {tls} && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout client-admin.key -subj /O=system:masters/CN=system:admin -out admin.csr "
        "&& openssl x509 -req -in admin.csr -CA client-ca.crt -CAkey client-ca.key -days 10 "
        "-out client-admin.crt && rm admin.csr"
    )
    config = yaml.safe_load(server.read("/etc/rancher/k3s/k3s.yaml") or "")
    user = config["users"][0]["user"]
    user["client-certificate-data"] = base64.b64encode(
        (server.read(f"{tls}/client-admin.crt") or "").encode()
    ).decode()
    user["client-key-data"] = base64.b64encode(
        (server.read(f"{tls}/client-admin.key") or "").encode()
    ).decode()
    server.write("/etc/rancher/k3s/k3s.yaml", yaml.safe_dump(config), mode=0o600)
    refresh_kubeconfig(repo, "edge", options(host_lab), say=lambda _: None)
    assert stored_days(repo, member) in (9, 10)

    # without --restart: fetched again, still short, and said what would renew it
    (row,) = refresh_credentials(repo, 30, False, options(host_lab), say=lambda _: None)
    assert row.action == "still ends soon: k3s renews it when it restarts; rerun with --restart"
    assert row.after in (9, 10)
    # with it: k3s restarted on the server, which renews a certificate this close to its end
    (row,) = refresh_credentials(repo, 30, True, options(host_lab), say=lambda _: None)
    assert row.action == "k3s restarted, renewed certificate fetched"
    assert row.before in (9, 10) and row.after in (364, 365)
    assert sops.is_encrypted(repo.member_kubeconfig("edge"))
    (row,) = refresh_credentials(repo, 30, True, options(host_lab), say=lambda _: None)
    assert row.action == "ok"
