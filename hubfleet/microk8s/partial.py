"""Narrower runs on a MicroK8s member than its bootstrap, over the same SSH sessions and steps
(`hubfleet.hosts.bootstrap`, `hubfleet.microk8s.steps`): `invoke wireguard.setup` (preflight,
operators-key and wireguard only, on every host) and `invoke gpu.check` (per node: driver,
GPUs nvidia-smi lists, allocatable nvidia.com/gpu).
"""

from __future__ import annotations

from typing import Any

from hubfleet.hosts.steps import Step
from hubfleet.microk8s import cluster as microk8s_cluster
from hubfleet.microk8s.steps import HOST_STEPS, snapshot, wireguard
from hubfleet.registry import roles


def wireguard_flavour() -> Any:
    """Only WireGuard (after preflight and the operators' key), on every host."""
    from hubfleet.hosts.bootstrap import Flavour

    return Flavour(
        provider="microk8s",
        host_steps=(HOST_STEPS[0], HOST_STEPS[1], Step("wireguard", wireguard)),
        member_step_names=(),
        member_steps=lambda member, options, api: [],
        first_host=roles.main_host,
        snapshot=snapshot,
    )


def gpu_report(repo: Any, member_name: str, options: Any) -> list[tuple[str, str, int, str]]:
    """Per host: (node, driver, GPUs nvidia-smi lists, allocatable nvidia.com/gpu or '-')."""
    from hubfleet.hosts.bootstrap import connect_member

    member, run, stack = connect_member(
        repo, member_name, "microk8s", options, lambda m: list(m.hosts), lambda line: None
    )
    rows = []
    with stack:
        main = run.session_for(roles.main_host(member))
        listed = main.run("microk8s kubectl get nodes -o json", check=False)
        allocatable = microk8s_cluster.gpu_allocatable(listed.stdout) if listed.ok else {}
        for host in member.hosts:
            session = run.session_for(host)
            found = session.run(
                f"hostname; {microk8s_cluster.GPU_QUERY_COMMAND} 2>/dev/null || true",
                what="asking nvidia-smi",
            ).stdout.splitlines()
            node = host.name or (found[0].strip() if found else host.address)
            gpus = microk8s_cluster.parse_gpus("\n".join(found[1:]))
            driver = gpus[0].driver if gpus else "none"
            shown = str(allocatable[node]) if node in allocatable else "-"
            rows.append((node, driver, len(gpus), shown))
    return rows
