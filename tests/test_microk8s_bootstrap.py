"""MicroK8s bootstrap over real SSH to harness hosts, with stand-in snap/microk8s/nvidia-smi/ufw.

Real: sshd, fabric/paramiko, sops/age, the shell on the hosts, WireGuard (wg-quick with
wireguard-go) where installed. Stand-ins: snapd's `snap`, `microk8s`, `nvidia-smi`, `ufw`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.bootstrap import bootstrap_member
from hubfleet.hosts.member_run import BootstrapOptions
from hubfleet.hosts.steps import CHANGED, OK, WOULD_CHANGE, StepFailed, StepReport
from hubfleet.microk8s import partial as microk8s_runs
from hubfleet.microk8s import steps as microk8s_steps
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo
from tests.harness import HostLab, TestHost, wireguard_skip_reason

KUBELET_ARGS = "/var/snap/microk8s/current/args/kubelet"
KUBELITE_RESTART = ["restart", "microk8s.daemon-kubelite"]
CALICO_SET_ENV = ["kubectl", "-n", "kube-system", "set", "env", "daemonset/calico-node"]
FACTS = {"mem_gb": 16, "cpus": 8, "disk_gb": 40, "os_release": "ubuntu-24.04", "snapd": True}
METALLB = "192.0.2.200-192.0.2.210"


def mk8s_repo(
    deploy_repo: MakeRepo, hosts: list[TestHost], gpu: bool = True, **settings: Any
) -> DeployRepo:
    records = [
        {"address": h.address, "role": "main" if i == 0 else "worker"} for i, h in enumerate(hosts)
    ]
    block = {"channel": "1.32/stable", "metallb": METALLB, "gpu": gpu, **settings}
    repo = deploy_repo(
        {
            "lab": {
                "domain": "lab.example.org",
                "provider": "microk8s",
                "hosts": records,
                "microk8s": block,
            }
        }
    )
    (repo.root / "config" / "known_hosts").write_text(
        "".join(h.host_key_line + "\n" for h in hosts)
    )
    return repo


def options(lab: HostLab, **kw: Any) -> BootstrapOptions:
    settings: dict[str, Any] = {"connect_timeout_s": 3, "ready_timeout_s": 15, **kw}
    return BootstrapOptions(identity=lab.client_key_path, **settings)


def bootstrap(
    repo: DeployRepo, opts: BootstrapOptions, lines: list[str] | None = None
) -> list[Any]:
    sink = lines.append if lines is not None else (lambda line: None)
    return bootstrap_member(repo, "lab", opts, microk8s_steps.flavour(), say=sink)


def states(reports: list[Any]) -> dict[tuple[str, str], str]:
    return {(r.host, r.step): r.state for r in reports}


@pytest.fixture
def gpu_cluster(host_lab: HostLab) -> Callable[..., list[TestHost]]:
    def make(workers: int = 2, **extra: Any) -> list[TestHost]:
        main = host_lab.add_host(**{**FACTS, "ufw_active": True, **extra})
        return [main] + [
            host_lab.add_host(**{**FACTS, "gpus": 1, "ufw_active": True, **extra})
            for _ in range(workers)
        ]

    return make


def test_a_three_host_gpu_member_bootstraps_to_verified_and_a_rerun_changes_nothing(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, *workers = gpu_cluster()
    repo = mk8s_repo(deploy_repo, [main, *workers])
    first = bootstrap(repo, options(host_lab))
    for host in (main, *workers):
        assert states(first)[(host.address, "snap-install")] == CHANGED
        assert states(first)[(host.address, "firewall")] == CHANGED
        snap = host.snap_state()["snaps"]["microk8s"]
        assert (snap["channel"], snap["hold"]) == ("1.32/stable", "forever")
    for worker in workers:
        assert states(first)[(worker.address, "join")] == CHANGED
        assert "1 GPU(s)" in next(
            r.detail for r in first if r.host == worker.address and r.step == "preflight"
        )
    assert states(first)[(main.address, "addons")] == CHANGED
    assert states(first)[("member lab", "metallb")] == CHANGED
    # no WireGuard: the kubelet and Calico pick their addresses themselves
    assert not {"node-ip", "calico-vpn"} & {r.step for r in first}
    verify = next(r for r in first if r.step == "verify")
    assert verify.state == OK and verify.detail.startswith("3 node(s) Ready")

    enabled = main.run("microk8s status --format short").stdout
    for addon in (
        "dns",
        "helm3",
        "hostpath-storage",
        "community",
        "dashboard",
        "nvidia",
        "metallb",
    ):
        assert f"/{addon}: enabled" in enabled, addon
    listed = main.run("snap list microk8s").stdout
    assert "1.32/stable" in listed and "held" in listed
    ufw = workers[0].run("ufw status verbose").stdout
    assert "cni0" in ufw and "allow (routed)" in ufw

    stored = sops.decrypt_yaml(repo, repo.member_kubeconfig("lab"))
    assert stored["current-context"] == "lab"
    assert stored["clusters"][0]["cluster"]["server"] == f"https://{main.address}:16443"
    assert "microk8s" not in yaml.safe_dump(stored)

    for worker in workers:
        assert worker.microk8s_state()["role"] == "worker"
        assert worker.microk8s_state()["cluster"] == main.name
    tokens = len(host_lab.microk8s_tokens(main))
    assert tokens == 2  # one fresh token per worker

    again = bootstrap(repo, options(host_lab))
    assert {r.state for r in again} == {OK}, [r for r in again if r.state != OK]
    assert len(host_lab.microk8s_tokens(main)) == tokens  # no new token: nobody joined again
    # dns and helm3 come enabled with a fresh MicroK8s; the other four and metallb, once each
    assert sum(1 for c in main.calls("microk8s") if c["argv"][:1] == ["enable"]) == 5


def test_workers_join_once_the_main_node_is_ready_not_after_its_addons(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, *workers = gpu_cluster()
    repo = mk8s_repo(deploy_repo, [main, *workers])
    main.set_microk8s_enable_delay(1.5)  # each `microk8s enable` on the main node takes 1.5 s
    ended: dict[tuple[str, str], float] = {}

    class Times:
        def started(self, host: str, step: str) -> None:
            return None

        def finished(self, report: StepReport) -> None:
            ended[(report.host, report.step)] = time.monotonic()

    reports = bootstrap(repo, options(host_lab, watcher=Times()))
    assert states(reports)[(main.address, "addons")] == CHANGED
    for worker in workers:
        assert states(reports)[(worker.address, "join")] == CHANGED
        assert ended[(main.address, "ready")] < ended[(worker.address, "join")]
        assert ended[(worker.address, "join")] < ended[(main.address, "addons")]


def test_a_rejected_join_token_is_replaced_by_a_fresh_one(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, worker = gpu_cluster(workers=1)
    repo = mk8s_repo(deploy_repo, [main, worker])
    host_lab.reject_next_microk8s_join()
    reports = bootstrap(repo, options(host_lab))
    join = next(r for r in reports if r.step == "join")
    assert join.state == CHANGED and "attempt 2" in join.detail
    add_nodes = [c for c in main.calls("microk8s") if c.get("argv", [])[:1] == ["add-node"]]
    assert len(add_nodes) == 2  # a fresh token for the retry


def test_a_worker_unreachable_is_named_the_others_join_and_a_rerun_finishes(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, good, gone = gpu_cluster()
    repo = mk8s_repo(deploy_repo, [main, good, gone])
    gone.link_down()
    with pytest.raises(StepFailed, match=rf"host {gone.address}: unreachable.*rerun to finish it"):
        bootstrap(repo, options(host_lab, connect_timeout_s=2))
    assert good.microk8s_state()["role"] == "worker"  # the reachable worker joined
    gone.link_up()
    finished = bootstrap(repo, options(host_lab))
    assert states(finished)[(gone.address, "join")] == CHANGED
    assert states(finished)[(good.address, "join")] == OK
    assert next(r for r in finished if r.step == "verify").detail.startswith("3 node(s) Ready")


def test_a_gpu_worker_without_gpus_fails_preflight_naming_it(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, worker = gpu_cluster(workers=1)
    worker.set_gpus(0)
    repo = mk8s_repo(deploy_repo, [main, worker])
    with pytest.raises(
        StepFailed,
        match=rf"host {worker.address}: preflight failed: gpu is true but nvidia-smi lists no GPU",
    ):
        bootstrap(repo, options(host_lab))
    assert main.snap_state().get("snaps", {}) == {}  # nothing installed anywhere


def test_a_public_address_not_on_the_node_goes_into_the_api_certificate(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    (main,) = gpu_cluster(workers=0)
    repo = mk8s_repo(deploy_repo, [main], gpu=False)
    record = yaml.safe_load(repo.registry.read_text())
    record["members"]["lab"]["hosts"][0]["public_address"] = (
        "203.0.113.10"  # only written, never contacted
    )
    repo.registry.write_text(yaml.safe_dump(record))
    reports = bootstrap(repo, options(host_lab))
    config = next(r for r in reports if r.step == "kubeconfig")
    assert config.state == CHANGED and "added 203.0.113.10 to the API certificate" in config.detail
    template = main.read("/var/snap/microk8s/current/certs/csr.conf.template") or ""
    assert "203.0.113.10" in template
    assert ["refresh-certs", "--cert", "server.crt"] in [c["argv"] for c in main.calls("microk8s")]
    stored = sops.decrypt_yaml(repo, repo.member_kubeconfig("lab"))
    assert stored["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:16443"
    again = bootstrap(repo, options(host_lab))
    assert next(r for r in again if r.step == "kubeconfig").state == OK


def test_gpu_check_lists_each_node(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, worker = gpu_cluster(workers=1)
    worker.set_gpus(2)
    repo = mk8s_repo(deploy_repo, [main, worker])
    bootstrap(repo, options(host_lab))
    rows = microk8s_runs.gpu_report(repo, "lab", options(host_lab))
    assert [(node, gpus) for node, _, gpus, _ in rows] == [(main.name, 0), (worker.name, 2)]
    assert rows[1][1] not in ("", "none")  # the driver version nvidia-smi reports


@pytest.mark.skipif(
    wireguard_skip_reason() is not None,
    reason="wireguard-tools/wireguard-go missing (scripts/dev-setup installs them)",
)
def test_nodes_across_sites_join_over_wireguard(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, *workers = gpu_cluster(workers=2)
    repo = mk8s_repo(
        deploy_repo,
        [main, *workers],
        gpu=False,
        wireguard={"subnet": "10.77.0.0/24", "listen_port": 51820},
    )
    lines: list[str] = []
    first = bootstrap(repo, options(host_lab), lines)
    for host in (main, *workers):
        assert states(first)[(host.address, "wireguard")] == CHANGED
        assert host.run("systemctl is-active wg-quick@wg0").stdout.strip() == "active"
    assert "10.77.0.1/24" in (main.run("ip -o addr show wg0").stdout)
    # the workers joined through the main node's VPN address
    for worker in workers:
        assert worker.microk8s_state()["cluster"] == main.name
        join = next(r for r in first if r.host == worker.address and r.step == "join")
        assert "joined 10.77.0.1 as a worker" in join.detail
    keys_file = repo.secrets_dir / "lab-wireguard.yaml"
    assert sops.is_encrypted(keys_file)
    keys = sops.decrypt_yaml(repo, keys_file)
    assert set(keys) == {h.address for h in (main, *workers)}
    assert all(k not in "\n".join(lines) for k in keys.values())  # private keys never shown

    # the cluster talks over wg0: kubelets advertise their VPN addresses, Calico follows them
    vpn = list(zip((main, *workers), ("10.77.0.1", "10.77.0.2", "10.77.0.3"), strict=True))
    for host, address in vpn:
        assert states(first)[(host.address, "node-ip")] == CHANGED
        args = (host.read(KUBELET_ARGS) or "").splitlines()
        assert [a for a in args if a.startswith("--node-ip")] == [f"--node-ip={address}"]
        assert "--cert-dir=${SNAP_DATA}/certs" in args  # the other flags kept
        assert [c["argv"] for c in host.calls("snap")].count(KUBELITE_RESTART) == 1
    wide = main.run("microk8s kubectl get nodes -o wide", check=True).stdout.splitlines()
    assert {row.split()[0]: row.split()[5] for row in wide[1:]} == {h.name: a for h, a in vpn}
    assert states(first)[("member lab", "calico-vpn")] == CHANGED
    steps = [r.step for r in first if r.host == "member lab"]
    assert steps == ["metallb", "calico-vpn", "verify", "kubeconfig"]
    env = main.run(
        "microk8s kubectl -n kube-system get daemonset calico-node "
        "-o jsonpath='{.spec.template.spec.containers[0].env}'",
        check=True,
    ).stdout
    assert {"name": "IP_AUTODETECTION_METHOD", "value": "kubernetes-internal-ip"} in json.loads(env)

    again = bootstrap(repo, options(host_lab))
    assert {r.state for r in again} == {OK}, [r for r in again if r.state != OK]
    for host, address in vpn:
        node_ip = next(r for r in again if r.host == host.address and r.step == "node-ip")
        assert node_ip.detail == f"kubelet advertises {address}"
        assert [c["argv"] for c in host.calls("snap")].count(KUBELITE_RESTART) == 1
    assert states(again)[("member lab", "calico-vpn")] == OK
    set_envs = [c for c in main.calls("microk8s") if c["argv"][:6] == CALICO_SET_ENV]
    assert len(set_envs) == 1

    # undone by hand: a dry run says what it would do and changes nothing
    stripped = "".join(
        line + "\n"
        for line in (workers[0].read(KUBELET_ARGS) or "").splitlines()
        if not line.startswith("--node-ip")
    )
    workers[0].write(KUBELET_ARGS, stripped)
    main.run(" ".join(["microk8s", *CALICO_SET_ENV, "IP_AUTODETECTION_METHOD=first-found"]))
    dry = bootstrap(repo, options(host_lab, dry_run=True))
    node_ip = next(r for r in dry if r.host == workers[0].address and r.step == "node-ip")
    assert node_ip.state == WOULD_CHANGE and "--node-ip=10.77.0.2" in node_ip.detail
    calico = next(r for r in dry if r.step == "calico-vpn")
    assert calico.state == WOULD_CHANGE and "(was first-found)" in calico.detail
    assert workers[0].read(KUBELET_ARGS) == stripped
    assert [c["argv"] for c in workers[0].calls("snap")].count(KUBELITE_RESTART) == 1
    assert len([c for c in main.calls("microk8s") if c["argv"][:6] == CALICO_SET_ENV]) == 2

    # an args file gone (a broken install) is named; the other hosts are put right
    workers[1].run(f"rm {KUBELET_ARGS}", check=True)
    with pytest.raises(StepFailed, match=rf"host {workers[1].address}: {KUBELET_ARGS} is missing"):
        bootstrap(repo, options(host_lab))
    assert "--node-ip=10.77.0.2" in (workers[0].read(KUBELET_ARGS) or "")
    assert [c["argv"] for c in workers[0].calls("snap")].count(KUBELITE_RESTART) == 2


def test_join_one_worker_later_with_host(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, early, late = gpu_cluster(workers=2)
    repo = mk8s_repo(deploy_repo, [main, early, late])
    late.link_down()
    with pytest.raises(StepFailed, match=rf"host {late.address}: unreachable"):
        bootstrap(repo, options(host_lab, connect_timeout_s=2))
    late.link_up()
    joined = bootstrap(repo, options(host_lab, only_host=late.address))
    assert states(joined)[(late.address, "join")] == CHANGED
    assert early.address not in {r.host for r in joined}  # only the named worker (and main) touched
    assert [r.step for r in joined if r.host == "member lab"] == ["verify"]


@pytest.mark.skipif(
    wireguard_skip_reason() is not None, reason="wireguard-tools/wireguard-go missing"
)
def test_wireguard_setup_alone(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    main, worker = gpu_cluster(workers=1)
    repo = mk8s_repo(deploy_repo, [main, worker], gpu=False, wireguard={"subnet": "10.78.0.0/24"})
    reports = bootstrap_member(
        repo, "lab", options(host_lab), microk8s_runs.wireguard_flavour(), say=lambda line: None
    )
    assert [r.step for r in reports if r.host == worker.address] == [
        "preflight",
        "operators-key",
        "wireguard",
    ]
    assert worker.run("systemctl is-active wg-quick@wg0").stdout.strip() == "active"
    assert main.snap_state().get("snaps", {}) == {}  # nothing else was installed
    config = worker.read("/etc/wireguard/wg0.conf") or ""
    assert "Endpoint = " in config and "10.78.0.0/24" in config
    assert worker.run("stat -c %a /etc/wireguard/wg0.conf").stdout.strip() == "600"


def test_a_refresh_window_is_set_once_and_a_rerun_leaves_it(
    deploy_repo: MakeRepo, host_lab: HostLab, gpu_cluster: Callable[..., list[TestHost]]
) -> None:
    (main,) = gpu_cluster(workers=0)
    repo = mk8s_repo(deploy_repo, [main], gpu=False, refresh_window="sat,02:00-04:00")
    first = bootstrap(repo, options(host_lab))
    assert states(first)[(main.address, "snap-install")] == CHANGED
    assert main.run("snap get system refresh.timer").stdout.strip() == "sat,02:00-04:00"
    assert "held" not in main.run("snap list microk8s").stdout
    sets = [c for c in main.calls("snap") if c["argv"][:1] == ["set"]]
    assert len(sets) == 1
    again = bootstrap(repo, options(host_lab))
    install = next(r for r in again if r.step == "snap-install")
    assert install.state == OK and "refreshes only sat,02:00-04:00" in install.detail
    assert [c for c in main.calls("snap") if c["argv"][:1] == ["set"]] == sets
