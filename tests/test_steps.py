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
    StepReport,
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


# --- changes left for the host's next command ---------------------------------------------


class Queue:
    """Changes steps leave for the next command, as a HostSession keeps them: `command()`
    runs them first (the first whose name is in `fails` fails, and nothing after it runs)."""

    def __init__(self, fails: tuple[str, ...] = ()) -> None:
        self.owner: str | None = None
        self.queued: list[str] = []
        self.applied: list[str] = []
        self.fails = fails
        self.commands = 0
        self.reported: list[tuple[str, str]] = []

    def owned_by(self, step: str | None) -> None:
        self.owner = step

    def pending(self) -> list[str]:
        return list(dict.fromkeys(self.queued))

    def flush(self) -> None:
        if self.queued:
            self.command()

    def later(self) -> None:
        assert self.owner is not None
        self.queued.append(self.owner)

    def command(self) -> None:
        from hubfleet.errors import LaterChangeFailed

        queued, self.queued = self.queued, []
        self.commands += 1
        for step in queued:
            if step in self.fails:
                raise LaterChangeFailed(f"host h: command failed while writing {step}", step)
            self.applied.append(step)


def queues(q: Queue, dry_run: bool) -> Outcome:
    q.later()
    return Outcome.changed("queued", dry_run)


def runs_a_command(q: Queue, dry_run: bool) -> Outcome:
    q.command()
    return Outcome.changed("ran", dry_run)


QUEUED_STEPS = [
    Step("a", queues),
    Step("b", lambda q, d: Outcome.ok("no change")),
    Step("c", queues),
    Step("install", runs_a_command),
    Step("d", queues),
]


def run_queued(q: Queue) -> list[StepReport]:
    return run_steps(
        QUEUED_STEPS,
        q,
        "h",
        count_commands=lambda: q.commands,
        on_report=lambda r: q.reported.append((r.step, r.state)),
        queued=q,
    )


def test_queued_changes_go_with_the_next_command_and_reports_wait_for_it() -> None:
    q = Queue()
    reports = run_queued(q)
    assert q.applied == ["a", "c", "d"]  # d's: flushed once the steps ended
    assert q.commands == 2  # install's command carried a and c; d had one of its own
    assert [(r.step, r.state) for r in reports] == [
        ("a", CHANGED),
        ("b", OK),
        ("c", CHANGED),
        ("install", CHANGED),
        ("d", CHANGED),
    ]
    assert q.reported == [(r.step, r.state) for r in reports]  # each given out once, in order


def test_a_queued_change_that_fails_is_reported_against_its_own_step() -> None:
    q = Queue(fails=("a",))
    with pytest.raises(StepFailed, match="while writing a") as failed:
        run_queued(q)
    got = [(r.step, r.state) for r in failed.value.reports]
    # b changed nothing on the host: its report stands; c's change never ran; nor did install
    assert got == [("a", FAILED), ("b", OK), ("c", SKIPPED), ("install", SKIPPED), ("d", SKIPPED)]
    assert q.applied == []
    assert q.reported == got


def test_a_queued_change_left_at_the_end_is_flushed_and_its_failure_named() -> None:
    q = Queue(fails=("d",))
    with pytest.raises(StepFailed, match="while writing d") as failed:
        run_queued(q)
    assert [(r.step, r.state) for r in failed.value.reports][-2:] == [
        ("install", CHANGED),
        ("d", FAILED),
    ]


def test_a_step_that_fails_on_its_own_still_sends_the_earlier_steps_changes() -> None:
    q = Queue()
    steps = [Step("a", queues), Step("broken", broken), Step("after", queues)]
    with pytest.raises(StepFailed, match="disk full"):
        run_steps(steps, q, "h", queued=q)
    assert q.applied == ["a"]
    assert q.owner is None  # what is queued outside a step run goes at once
