"""What the fronts show an operator: tables, live progress, a spinner while something waits.

The one place `rich` is used. On a terminal, progress is live (a row per host with the step it
is on, a row per workload while a deploy waits, a spinner while a probe waits); anywhere else
(CI logs, pipes) it is plain lines, one per event, with the same words. Tables are drawn by
rich in both cases and fold long cells to fit the width (80 columns when not a terminal).

The core never imports this module: it reports through callbacks (`say`, a `StepWatcher`, a
rollout callback) and the fronts hand it these.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, TypeVar

from hubfleet.hosts.steps import StepFailed, StepReport, report_line, step_counts
from hubfleet.kube.rollout import RolloutState

if TYPE_CHECKING:  # rich is imported when first drawn: a plain run (CI, pipes) never loads it
    from rich.console import Console as RichConsole
    from rich.live import Live
    from rich.table import Table

PLAIN_WIDTH = 80
P = TypeVar("P", "StepProgress", "RolloutProgress")


@dataclass
class Console:
    """Output for one front: live where `stream` is a terminal, plain lines elsewhere."""

    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    live: bool | None = None  # None: decide from the stream
    width: int | None = None  # None: the terminal's, or 80 when not a terminal
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _active: Live | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.live is None:
            isatty = getattr(self.stream, "isatty", None)
            self.live = bool(isatty and isatty())

    @cached_property
    def _rich(self) -> RichConsole:
        from rich.console import Console as RichConsole

        return RichConsole(
            file=self.stream,
            force_terminal=self.live,
            width=self.width or (None if self.live else PLAIN_WIDTH),
            highlight=False,
            emoji=False,
            markup=False,
            soft_wrap=not self.live,
        )

    # --- lines and tables -------------------------------------------------------------------

    def say(self, line: str) -> None:
        """One line, above any live display."""
        with self._lock:
            if self._active is None and not self.live:
                print(line, file=self.stream, flush=True)
                return
            from rich.text import Text

            if self._active is not None:
                self._active.console.print(Text(line), soft_wrap=True)
            else:
                self._rich.print(Text(line), soft_wrap=True)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self._rich.print(make_table(columns, rows))

    def show_steps(
        self, title: str, run: Callable[[StepProgress], Sequence[StepReport]]
    ) -> Sequence[StepReport]:
        """Run a bootstrap-like `run` with live step progress, then print its step table
        (also when a step failed: the table shows where, then the failure goes on up)."""
        try:
            with self.steps(title) as progress:
                reports = run(progress)
        except StepFailed as failed:
            self._rich.print(step_table(failed.reports))
            raise
        self._rich.print(step_table(reports))
        return reports

    # --- waiting --------------------------------------------------------------------------

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """A spinner while `what` runs on a terminal; one line naming it elsewhere."""
        if not self.live:
            self.say(what)
            yield
            return
        from rich.text import Text

        with self._rich.status(Text(what)):
            yield

    # --- step progress ----------------------------------------------------------------------

    def steps(self, title: str) -> AbstractContextManager[StepProgress]:
        """Live per-host, per-step progress of a bootstrap (see `StepProgress`)."""
        return self._showing(StepProgress(self, title))

    def rollouts(self, title: str) -> AbstractContextManager[RolloutProgress]:
        """Live per-workload progress while a deploy waits for its rollouts."""
        return self._showing(RolloutProgress(self, title))

    @contextmanager
    def _showing(self, progress: P) -> Iterator[P]:
        with self._live(progress.render) as refresh:
            progress.refresh = refresh
            yield progress

    @contextmanager
    def _live(self, render: Any) -> Iterator[Any]:
        if not self.live:
            yield lambda: None
            return
        from rich.live import Live

        with Live(render(), console=self._rich, refresh_per_second=8, transient=True) as live:
            self._active = live

            def refresh() -> None:
                live.update(render())

            try:
                yield refresh
            finally:
                self._active = None


def make_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A plain table: header, rows, long cells folded within their column."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=None, pad_edge=False, show_edge=False, collapse_padding=True, header_style="bold"
    )
    for index, name in enumerate(columns):  # the first column names the row: kept whole
        table.add_column(name, overflow="fold", no_wrap=index == 0)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


def step_table(reports: Sequence[StepReport]) -> Table:
    """The step table printed at the end of a bootstrap: a row per host and step."""
    table = make_table(
        ("host", "step", "state", "secs", "cmds", "detail"),
        [(r.host, r.step, r.state, f"{r.seconds:.2f}", r.commands, r.detail) for r in reports],
    )
    table.caption = ", ".join(f"{n} {state}" for state, n in step_counts(reports))
    return table


@dataclass
class StepProgress:
    """A `StepWatcher`: on a terminal, a live row per host (its current step and how many it
    has done); elsewhere, one line per finished step (`report_line`)."""

    console: Console
    title: str
    refresh: Any = None
    current: dict[str, tuple[str, float]] = field(default_factory=dict)
    finished_steps: dict[str, list[StepReport]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str) -> None:
        self.console.say(line)

    def started(self, host: str, step: str) -> None:
        with self._lock:
            self.current[host] = (step, time.monotonic())
            self.finished_steps.setdefault(host, [])
        if self.refresh:
            self.refresh()

    def finished(self, report: StepReport) -> None:
        with self._lock:
            self.current.pop(report.host, None)
            self.finished_steps.setdefault(report.host, []).append(report)
        if self.console.live:
            if report.state not in ("ok", "skipped"):
                self.console.say(report_line(report))
            if self.refresh:
                self.refresh()
        else:
            self.console.say(report_line(report))

    def render(self) -> Table:
        with self._lock:
            rows = []
            for host, done in self.finished_steps.items():
                step, since = self.current.get(host, ("", 0.0))
                now = f"{step} ({time.monotonic() - since:.0f}s)" if step else "waiting"
                last = done[-1] if done else None
                rows.append((host, now, len(done), f"{last.step} {last.state}" if last else ""))
        table = make_table(("host", "now", "steps done", "last"), rows)
        table.title = self.title
        return table


@dataclass
class RolloutProgress:
    """A rollout callback: on a terminal, a live row per workload; elsewhere, one line per
    change of a workload's state (`RolloutState.__str__`)."""

    console: Console
    title: str
    refresh: Any = None
    states: dict[tuple[str, str], RolloutState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, state: RolloutState) -> None:
        with self._lock:
            self.states[(state.kind, state.name)] = state
        if self.console.live and self.refresh:
            self.refresh()
        else:
            self.console.say(f"  {state}")

    def render(self) -> Table:
        with self._lock:
            rows = [
                (
                    s.kind,
                    s.name,
                    "ready" if s.ready else "failed" if s.failed else "waiting",
                    f"{s.elapsed_s:.0f}s",
                    s.message,
                )
                for s in self.states.values()
            ]
        table = make_table(("kind", "name", "state", "after", "message"), rows)
        table.title = self.title
        return table
