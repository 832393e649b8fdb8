"""The step runner: order, dry run, --from-step, failure stops the host, table."""

from __future__ import annotations

import pytest

from hubfleet.errors import HubfleetError
from hubfleet.hosts.steps import (
    CHANGED,
    FAILED,
    OK,
    SKIPPED,
    WOULD_CHANGE,
    Outcome,
    Step,
    StepFailed,
    check_step_names,
    run_steps,
    summary_table,
)


class Box:
    def __init__(self) -> None:
        self.value = 0
        self.commands = 0


def set_value(box: Box, dry_run: bool) -> Outcome:
    box.commands += 1  # the check
    if box.value == 1:
        return Outcome.ok()
    if not dry_run:
        box.commands += 1
        box.value = 1
    return Outcome.changed("value 0 -> 1", dry_run)


def broken(box: Box, dry_run: bool) -> Outcome:
    raise HubfleetError("host h: disk full while writing /etc/x")


STEPS = [Step("first", set_value), Step("second", lambda b, d: Outcome.ok("fine"))]


def test_second_run_is_all_ok_and_counts_commands() -> None:
    box = Box()
    first = run_steps(STEPS, box, "h", count_commands=lambda: box.commands)
    assert [(r.step, r.state, r.commands) for r in first] == [
        ("first", CHANGED, 2),
        ("second", OK, 0),
    ]
    again = run_steps(STEPS, box, "h", count_commands=lambda: box.commands)
    assert [r.state for r in again] == [OK, OK]


def test_dry_run_changes_nothing_and_says_what_it_would_do() -> None:
    box = Box()
    reports = run_steps(STEPS, box, "h", dry_run=True)
    assert (reports[0].state, reports[0].detail) == (WOULD_CHANGE, "value 0 -> 1")
    assert box.value == 0


def test_a_failure_skips_the_rest_and_raises_with_the_reports() -> None:
    box = Box()
    steps = [Step("first", set_value), Step("boom", broken), Step("after", set_value)]
    with pytest.raises(StepFailed, match="disk full") as caught:
        run_steps(steps, box, "h")
    assert [r.state for r in caught.value.reports] == [CHANGED, FAILED, SKIPPED]


def test_from_step_skips_earlier_steps_and_not_applicable_ones_are_left_out() -> None:
    box = Box()
    steps = [
        Step("first", set_value),
        Step("only-agents", set_value, applies=lambda b: False),
        Step("second", set_value),
    ]
    reports = run_steps(steps, box, "h", from_step="second")
    assert [(r.step, r.state) for r in reports] == [("first", SKIPPED), ("second", CHANGED)]


def test_unknown_from_step_lists_the_steps() -> None:
    with pytest.raises(HubfleetError, match="no step 'nope'; the steps are: first, second"):
        check_step_names(STEPS, "nope", ["first", "second"])


def test_summary_table_counts_states() -> None:
    box = Box()
    table = summary_table(run_steps(STEPS, box, "h"))
    assert table.splitlines()[-1].strip() == "1 changed, 1 ok"
