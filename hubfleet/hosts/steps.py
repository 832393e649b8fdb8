"""Named host steps and the runner that applies them in order.

A step checks the current state first and changes only what differs. It reports `ok`
(nothing to do), `changed`, or — in a dry run — `would change` with what it would do; a
failure is `failed` with a one-line reason, and the host's remaining steps are `skipped`.
Run twice, every step says `ok` the second time; a failed run is simply run again (or with
--from-step) and resumes, since the steps already done say `ok`.

A step may leave its change to go with the host's next command (`session.later`, e.g. a file
to write) instead of a round trip of its own: its report then waits until that command ran,
and a failure there is reported against the step it belongs to, the steps whose changes did
not run as `skipped`. So a host's preparation and its install can be one command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubfleet.errors import HubfleetError, LaterChangeFailed

OK = "ok"
CHANGED = "changed"
WOULD_CHANGE = "would change"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    """What one step did (or would do) on one host."""

    state: str
    detail: str = ""

    @staticmethod
    def ok(detail: str = "") -> Outcome:
        return Outcome(OK, detail)

    @staticmethod
    def changed(detail: str, dry_run: bool) -> Outcome:
        return Outcome(WOULD_CHANGE if dry_run else CHANGED, detail)


@dataclass(frozen=True)
class StepReport:
    step: str
    host: str
    state: str
    detail: str
    seconds: float
    commands: int


@dataclass(frozen=True)
class Step:
    """A named step; `action(context, dry_run)` checks, then changes what differs."""

    name: str
    action: Callable[[Any, bool], Outcome]
    applies: Callable[[Any], bool] = field(default=lambda context: True)


class StepWatcher(Protocol):
    """Who is told as steps start and finish (the fronts show it live, or as lines)."""

    def started(self, host: str, step: str) -> None: ...

    def finished(self, report: StepReport) -> None: ...


@dataclass(frozen=True)
class PrintedSteps:
    """The plain watcher: one line per finished step, through `say`."""

    say: Callable[[str], None]

    def started(self, host: str, step: str) -> None:
        return None

    def finished(self, report: StepReport) -> None:
        self.say(report_line(report))


class QueuedChanges(Protocol):
    """Changes steps leave for the host's next command (a HostSession)."""

    def owned_by(self, step: str | None) -> None: ...

    def pending(self) -> list[str]: ...

    def flush(self) -> None: ...


class StepFailed(HubfleetError):
    """A step failed on a host; the message is the step's own one-line reason."""

    def __init__(self, message: str, reports: Sequence[StepReport]):
        super().__init__(message)
        self.reports = tuple(reports)


def check_step_names(steps: Sequence[Step], wanted: str | None, known: Sequence[str]) -> None:
    """--from-step must name a step; say which exist when it does not."""
    if wanted is not None and wanted not in known:
        raise HubfleetError(f"no step {wanted!r}; the steps are: {', '.join(known)}")


def run_steps(
    steps: Sequence[Step],
    context: Any,
    host_label: str,
    dry_run: bool = False,
    from_step: str | None = None,
    on_report: Callable[[StepReport], None] | None = None,
    count_commands: Callable[[], int] = lambda: 0,
    on_start: Callable[[str, str], None] | None = None,
    queued: QueuedChanges | None = None,
) -> list[StepReport]:
    """Apply `steps` in order on one host; stop at the first failure (raises StepFailed).

    With `queued` (the host's session), steps may leave changes for the next command; every
    queued change has run (or failed, reported against its step) when this returns."""
    held = _Held(host_label, on_report)
    started = from_step is None
    failure: str | None = None
    try:
        for step in steps:
            started = started or step.name == from_step
            if not step.applies(context):
                continue  # not this host's kind of step: not shown at all
            if not started or failure is not None:
                held.add(StepReport(step.name, host_label, SKIPPED, "", 0.0, 0))
                continue
            if on_start:
                on_start(host_label, step.name)
            if queued is not None:
                queued.owned_by(step.name)
            before, mark = count_commands(), time.perf_counter()
            try:
                outcome = step.action(context, dry_run)
            except LaterChangeFailed as err:  # an earlier step's change, sent with this one's
                failure = held.failed(err, step.name)
                continue
            except HubfleetError as err:
                outcome = Outcome(FAILED, str(err))
                failure = str(err)
                if queued is not None and queued.pending():  # the earlier steps' changes
                    failure = _flushed(queued, held) or failure
            report = StepReport(
                step.name,
                host_label,
                outcome.state,
                outcome.detail,
                time.perf_counter() - mark,
                count_commands() - before,
            )
            held.add(report, waiting=queued.pending() if queued is not None else [])
        if queued is not None and queued.pending():
            failure = _flushed(queued, held) or failure
        held.release()
    finally:
        if queued is not None:
            queued.owned_by(None)
    if failure is not None:
        raise StepFailed(failure, held.reports)
    return held.reports


def _flushed(queued: QueuedChanges, held: _Held) -> str | None:
    """Run the queued changes; the failure (reported against its step), if any."""
    try:
        queued.flush()
    except LaterChangeFailed as err:
        return held.failed(err, None)
    held.release()
    return None


class _Held:
    """A host's reports in step order, each given out once no change it waits for is queued
    (a step's own, or an earlier step's: the order is kept)."""

    def __init__(self, host: str, on_report: Callable[[StepReport], None] | None):
        self.host = host
        self.on_report = on_report
        self.reports: list[StepReport] = []
        self.waiting: set[str] = set()  # steps whose changes are queued, not yet run
        self._given = 0

    def add(self, report: StepReport, waiting: Sequence[str] = ()) -> None:
        self.reports.append(report)
        self.waiting = set(waiting)
        if not waiting:
            self.release()

    def release(self) -> None:
        self.waiting = set()
        for report in self.reports[self._given :]:
            if self.on_report:
                self.on_report(report)
        self._given = len(self.reports)

    def failed(self, err: LaterChangeFailed, current: str | None) -> str:
        """The queued change of step `err.step` failed: that step failed, the steps whose
        changes were queued after it did not run (skipped), and nor did `current`."""
        found = False
        for i, report in enumerate(self.reports[self._given :], start=self._given):
            if report.step == err.step:
                self.reports[i] = StepReport(
                    report.step, self.host, FAILED, str(err), report.seconds, report.commands
                )
                found = True
            elif found and report.step in self.waiting:
                self.reports[i] = StepReport(report.step, self.host, SKIPPED, "", 0.0, 0)
        if current is not None:  # the step whose command carried the change
            state, detail = (FAILED, str(err)) if current == err.step else (SKIPPED, "")
            self.reports.append(StepReport(current, self.host, state, detail, 0.0, 0))
        self.release()
        return str(err)


def report_line(report: StepReport) -> str:
    """One progress line: host, step, state, detail."""
    detail = f"  {report.detail}" if report.detail else ""
    return f"  {report.host:<22} {report.step:<16} {report.state:<13}{detail}"


def step_counts(reports: Sequence[StepReport]) -> list[tuple[str, int]]:
    """How many steps ended in each state, by state name."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.state] = counts.get(r.state, 0) + 1
    return sorted(counts.items())


def summary_table(reports: Sequence[StepReport]) -> str:
    """The step table as plain text: one row per host and step, and the totals."""
    lines = [f"  {'host':<22} {'step':<16} {'state':<13} {'secs':>6} {'cmds':>5}  detail"]
    for r in reports:
        lines.append(
            f"  {r.host:<22} {r.step:<16} {r.state:<13} {r.seconds:6.2f} {r.commands:5d}  {r.detail}"
        )
    lines.append("  " + ", ".join(f"{n} {state}" for state, n in step_counts(reports)))
    return "\n".join(lines)
