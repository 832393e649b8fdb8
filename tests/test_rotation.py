"""Rotation as registry edits: drain, readmit, prime; the changed lines only, the rules kept."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from hubfleet.errors import ConfigError
from hubfleet.registry.rotation import drain, make_prime, readmit
from tests.test_federation import FEDERATION


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_drain_then_readmit_gives_back_the_very_same_bytes() -> None:
    drained = drain(FEDERATION, "ovh")
    assert drained is not None
    assert drained.summary == "member ovh drained: weight 40 -> 0, quota 100 -> 0"
    assert drained.members == ("gke", "ovh")  # the redirector's member, and the drained one
    assert changed_lines(FEDERATION, drained.text) == [
        "-      weight: 40",
        "-      quota: 100",
        "+      drained: {weight: 40, quota: 100}",
        "+      weight: 0",
        "+      quota: 0",
    ]
    assert drain(drained.text, "ovh") is None  # drained already: nothing to do
    back = readmit(drained.text, "ovh")
    assert (
        back is not None and back.summary == "member ovh readmitted: weight 0 -> 40, quota 0 -> 100"
    )
    assert back.text == FEDERATION
    assert readmit(FEDERATION, "ovh") is None


def test_a_new_prime_moves_the_one_line() -> None:
    change = make_prime(FEDERATION, "ovh")
    assert change is not None and change.summary == "member ovh is prime (was gke)"
    assert change.members == ("gke",)  # only the redirector's release changes
    assert changed_lines(FEDERATION, change.text) == [
        "-      prime: true",
        "+      prime: true",
    ]
    assert (
        "  ovh:\n    stage: prod\n    provider: kubeconfig\n    domain: ovh.example.org\n"
        "    chart: charts/demo\n    federation:\n      prime: true\n" in change.text
    )
    assert make_prime(change.text, "ovh") is None


@pytest.mark.parametrize(
    ("edit", "member", "message"),
    [
        (
            drain,
            "gke",
            "member gke is prime: all traffic falls back to it; make another member "
            "prime first (invoke federation.prime OTHER)",
        ),
        (drain, "staging", "member staging has no place in the rotation (no federation block)"),
        (make_prime, "nope", "member nope has no place in the rotation (no federation block)"),
    ],
)
def test_what_would_break_the_rules_is_refused_in_one_line(
    edit: Any, member: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        edit(FEDERATION, member)
    assert str(caught.value) == message


def test_a_drained_member_cannot_become_prime_and_the_last_one_cannot_be_drained() -> None:
    drained = drain(FEDERATION, "ovh")
    assert drained is not None
    with pytest.raises(
        ConfigError, match="member ovh has weight 0; readmit it before making it prime"
    ):
        make_prime(drained.text, "ovh")
    alone = FEDERATION.replace("      weight: 60\n      prime: true\n", "      weight: 60\n")
    alone = alone.replace("      weight: 40\n", "      weight: 40\n      prime: true\n")
    moved = make_prime(FEDERATION, "ovh")
    assert moved is not None
    out = drain(moved.text, "gke")
    assert out is not None  # gke can go now that ovh is prime
    with pytest.raises(ConfigError, match="is prime"):
        drain(out.text, "ovh")


def test_an_inline_block_is_left_to_the_operator() -> None:
    inline = FEDERATION.replace(
        "    federation:\n      weight: 40\n      quota: 100\n      health: https://ovh.example.org/custom-health\n",
        "    federation: {weight: 40, quota: 100}\n",
    )
    with pytest.raises(ConfigError, match="written inline; edit it by hand"):
        drain(inline, "ovh")
