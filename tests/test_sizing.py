"""The sizing rules of thumb (hubfleet.sizing): pure functions, no I/O."""

from __future__ import annotations

import pytest

from hubfleet import sizing


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
