"""The sizing rules of thumb (hubfleet.registry.sizing): pure functions, no I/O."""

from __future__ import annotations

import pytest

from hubfleet.registry import sizing


@pytest.mark.parametrize(
    ("ram_gb", "expected"),
    [
        (64, 112),  # round(1.75 x 64)
        (92, 161),  # the runbook's OVH VPS-6
        (62.8, 110),  # a "64 GB" VM as MemTotal reports it
        (128, 224),
    ],
)
def test_max_pods_is_one_and_three_quarters_per_gb(ram_gb: float, expected: int) -> None:
    assert sizing.max_pods(ram_gb) == expected


@pytest.mark.parametrize("ram_gb", [4, 8, 16])
def test_max_pods_has_a_floor_for_the_charts_own_pods(ram_gb: float) -> None:
    assert round(1.75 * ram_gb) < sizing.MAX_PODS_FLOOR
    assert sizing.max_pods(ram_gb) == sizing.MAX_PODS_FLOOR


@pytest.mark.parametrize("ram_gb", [160, 256, 1024])
def test_max_pods_stays_within_a_nodes_pod_network(ram_gb: float) -> None:
    assert sizing.max_pods(ram_gb) == sizing.MAX_PODS_CEILING == 250


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_max_pods_refuses_nonsense_ram(bad: float) -> None:
    with pytest.raises(ValueError, match="RAM"):
        sizing.max_pods(bad)


def test_max_pods_override_wins_as_given() -> None:
    assert sizing.max_pods_for(64) == 112
    assert sizing.max_pods_for(64, None) == 112
    assert sizing.max_pods_for(64, 300) == 300  # beyond the ceiling: the operator's call
    assert sizing.max_pods_for(4, 12) == 12  # below the floor, too
    with pytest.raises(ValueError, match="positive integer"):
        sizing.max_pods_for(64, 0)
    with pytest.raises(ValueError, match="positive integer"):
        sizing.max_pods_for(64, True)


def test_image_gc_thresholds_default_and_override() -> None:
    assert sizing.image_gc_thresholds() == (40, 20)
    assert sizing.image_gc_thresholds(high=60) == (60, 20)
    assert sizing.image_gc_thresholds(high=50, low=30) == (50, 30)
    with pytest.raises(ValueError, match="above the low one"):
        sizing.image_gc_thresholds(high=20, low=20)
    with pytest.raises(ValueError, match="percentage"):
        sizing.image_gc_thresholds(high=140)


def test_users_per_node_at_450_mb_each() -> None:
    assert sizing.users_per_node(64) == 145  # 64 x 1024 / 450
    assert sizing.users_per_node(64, reserved_gb=8) == 127
    assert sizing.users_per_node(4, reserved_gb=8) == 0
    assert sizing.users_per_node(16, per_user_mb=1024) == 16
    # the rule of thumb: maxPods stays below what RAM would hold
    assert sizing.max_pods(64) < sizing.users_per_node(64)


def test_node_sizing_reads_the_member_override() -> None:
    plain = sizing.node_sizing(64)
    assert plain == sizing.NodeSizing(
        ram_gb=64, max_pods=112, image_gc_high=40, image_gc_low=20, users=145
    )
    assert sizing.node_sizing(64, {"max_pods": 200}).max_pods == 200
    assert sizing.node_sizing(64, {"channel": "stable"}).max_pods == 112


def test_node_sizing_reads_the_sizing_block_before_the_k3s_one() -> None:
    overrides = {"max_pods": 150, "image_gc_high_percent": 60, "image_gc_low_percent": 30}
    node = sizing.node_sizing(64, {"max_pods": 200}, overrides)
    assert (node.max_pods, node.image_gc_high, node.image_gc_low) == (150, 60, 30)
    assert sizing.node_sizing(64, {"max_pods": 200}, {}).max_pods == 200
    assert sizing.node_sizing(64, None, {"ram_per_user_mb": 1024}).users == 64
    with pytest.raises(ValueError, match="unknown sizing key"):
        sizing.node_sizing(64, None, {"maxPods": 10})


@pytest.mark.parametrize(
    ("cpus", "ram_gb", "expected"),
    [
        (16, 64, (2, 8, 4, 8)),  # an eighth / half of the CPUs; a sixteenth / eighth of RAM
        (24, 92, (3, 12, 5, 11)),  # the runbook's OVH VPS-6
        (2, 4, (1, 2, 1, 2)),  # the floors: 1 CPU and 1 GiB requested, 2 and 2 allowed
        (64, 512, (8, 32, 16, 16)),  # the memory cap
        (1, 8, (1, 1, 1, 2)),  # a limit never above the CPUs there are
    ],
)
def test_dind_resources(
    cpus: int, ram_gb: float, expected: tuple[float, float, float, float]
) -> None:
    dind = sizing.dind_resources(cpus, ram_gb)
    assert (dind.cpu_request, dind.cpu_limit, dind.memory_request_gb, dind.memory_limit_gb) == (
        expected
    )
    assert dind.cpu_request <= dind.cpu_limit and dind.memory_request_gb <= dind.memory_limit_gb


def test_dind_resources_as_kubernetes_quantities() -> None:
    assert sizing.DindResources(0.5, 1.5, 1.5, 4).as_values() == {
        "requests": {"cpu": "500m", "memory": "1536Mi"},
        "limits": {"cpu": "1500m", "memory": "4Gi"},
    }
    with pytest.raises(ValueError, match="CPUs"):
        sizing.dind_resources(0, 8)


def test_launch_quota_is_the_smaller_of_ram_and_pod_slots() -> None:
    # 64 GB: RAM holds (64 - 4 - 8) x 1024 / 450 = 118 users; maxPods 112 less 25 = 87 slots
    assert sizing.launch_quota(64, 112, 8) == 87
    # plenty of pod slots: RAM decides
    assert sizing.launch_quota(64, 250, 8) == 118
    assert sizing.launch_quota(64, 250, 8, per_user_mb=1024) == 52
    # a node too small for anyone still gets one launch
    assert sizing.launch_quota(4, 30, 2) == 1


def test_image_cleaner_thresholds() -> None:
    assert sizing.image_cleaner_thresholds(200) == (60, 40)  # 30% down to 20%
    assert sizing.image_cleaner_thresholds(95.5) == (28, 19)  # whole GB
    assert sizing.image_cleaner_thresholds(200, high_gb=100) == (100, 40)
    with pytest.raises(ValueError, match="above the low"):
        sizing.image_cleaner_thresholds(200, high_gb=30)
    with pytest.raises(ValueError, match="disk"):
        sizing.image_cleaner_thresholds(0)


def test_member_sizing_from_facts_and_overrides() -> None:
    plain = sizing.member_sizing(16, 64, 200)
    assert (plain.max_pods, plain.launch_quota, plain.overridden) == (112, 87, ())
    assert (plain.image_cleaner_high_gb, plain.image_cleaner_low_gb) == (60, 40)
    # an overridden maxPods and dind limit feed the quota
    wider = sizing.member_sizing(16, 64, 200, {"max_pods": 250, "dind_memory_limit_gb": 16})
    assert wider.launch_quota == sizing.launch_quota(64, 250, 16) == 100
    assert wider.dind.memory_limit_gb == 16 and wider.dind.memory_request_gb == 4
    assert wider.overridden == ("max_pods", "dind_memory_limit_gb")
    fixed = sizing.member_sizing(16, 64, 200, {"launch_quota": 40, "image_cleaner_low_gb": 50})
    assert (fixed.launch_quota, fixed.image_cleaner_low_gb) == (40, 50)
    # the k3s block's maxPods still counts when the sizing block has none
    assert sizing.member_sizing(16, 64, 200, {}, {"max_pods": 60}).launch_quota == 35
    with pytest.raises(ValueError, match=r"request .* is above its limit"):
        sizing.member_sizing(16, 64, 200, {"dind_cpu_request": 12})
    with pytest.raises(ValueError, match="whole number"):
        sizing.member_sizing(16, 64, 200, {"launch_quota": 2.5})
    with pytest.raises(ValueError, match="positive number"):
        sizing.member_sizing(16, 64, 200, {"dind_cpu_limit": True})


def test_the_schema_knows_every_sizing_key() -> None:
    from hubfleet.registry.members import registry_schema

    block = registry_schema()["$defs"]["sizing"]
    assert tuple(block["properties"]) == sizing.SIZING_KEYS
    assert block["additionalProperties"] is False
