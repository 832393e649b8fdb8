"""The console: live progress on a terminal, plain lines elsewhere, the same words in both."""

from __future__ import annotations

import io
import re
import threading

import pytest

from hubfleet.console import Console
from hubfleet.hosts.steps import StepFailed, StepReport
from hubfleet.kube.rollout import RolloutState

REPORTS = [
    StepReport("preflight", "10.0.0.1", "ok", "", 0.1, 1),
    StepReport("k3s-install", "10.0.0.1", "changed", "installed v1.32.5+k3s1", 2.5, 3),
    StepReport("join", "10.0.0.2", "failed", "server 10.0.0.1 never answered", 30.0, 9),
]


def plain_text(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def run_steps(console: Console, fail: bool) -> None:
    def run(progress: object) -> list[StepReport]:
        threads = []
        for report in REPORTS:  # hosts report from their own threads, as in a bootstrap

            def one(r: StepReport = report) -> None:
                progress.started(r.host, r.step)  # type: ignore[attr-defined]
                progress.finished(r)  # type: ignore[attr-defined]

            threads.append(threading.Thread(target=one))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        progress.say("member edge: connecting to 2 host(s)")  # type: ignore[attr-defined]
        if fail:
            raise StepFailed("server 10.0.0.1 never answered", REPORTS)
        return REPORTS

    console.show_steps("k3s bootstrap: member edge", run)


@pytest.mark.parametrize("fail", [False, True])
def test_step_progress_says_the_same_words_live_and_plain(fail: bool) -> None:
    outputs = {}
    for live in (False, True):
        out = io.StringIO()
        console = Console(stream=out, live=live, width=100)
        if fail:
            with pytest.raises(StepFailed):
                run_steps(console, fail)
        else:
            run_steps(console, fail)
        outputs[live] = plain_text(out.getvalue())
    plain, live_text = outputs[False], outputs[True]
    # plain: a line per finished step as it happens, then the table
    assert plain.splitlines()[0].split()[:3] == ["10.0.0.1", "preflight", "ok"]
    assert "member edge: connecting to 2 host(s)" in plain
    for text in (plain, live_text):
        for report in REPORTS:
            for word in (report.host, report.step, report.state, *report.detail.split()):
                assert word in text.split(), (word, text)
        assert "1 changed, 1 failed, 1 ok" in text
    assert "\x1b[" not in plain  # no terminal codes in a log


def test_live_steps_show_each_host_and_its_current_step() -> None:
    out = io.StringIO()
    console = Console(stream=out, live=True, width=100)
    with console.steps("k3s bootstrap: member edge") as progress:
        progress.started("10.0.0.1", "k3s-install")
        progress.started("10.0.0.2", "join")
        shown = io.StringIO()
        Console(stream=shown, live=False, width=100)._rich.print(progress.render())
    rows = [line.split() for line in shown.getvalue().splitlines()]
    assert rows[2][:2] == ["10.0.0.1", "k3s-install"]
    assert rows[3][:2] == ["10.0.0.2", "join"]


def test_rollout_progress_live_and_plain() -> None:
    states = [
        RolloutState(
            "Deployment", "hub", "demo", False, "1 of 2 updated replicas available", elapsed_s=3
        ),
        RolloutState("Deployment", "hub", "demo", True, "successfully rolled out", elapsed_s=9),
        RolloutState("StatefulSet", "db", "demo", False, "waiting for 1 pod", failed=True),
    ]
    plain = io.StringIO()
    with Console(stream=plain, live=False).rollouts("member demo: waiting") as seen:
        for state in states:
            seen(state)
    assert plain.getvalue().splitlines() == [f"  {state}" for state in states]
    live = io.StringIO()
    console = Console(stream=live, live=True, width=100)
    with console.rollouts("member demo: waiting") as seen:
        for state in states:
            seen(state)
        table = io.StringIO()
        Console(stream=table, live=False, width=100)._rich.print(seen.render())
    rows = [line.split() for line in table.getvalue().splitlines()]
    assert rows[2][:3] == ["Deployment", "hub", "ready"]
    assert rows[3][:3] == ["StatefulSet", "db", "failed"]
    assert "successfully rolled out" in plain_text(live.getvalue())


def test_waiting_is_a_line_in_a_log_and_a_spinner_on_a_terminal() -> None:
    plain = io.StringIO()
    with Console(stream=plain, live=False).waiting("asking every member's cluster"):
        pass
    assert plain.getvalue() == "asking every member's cluster\n"
    live = io.StringIO()
    with Console(stream=live, live=True).waiting("asking every member's cluster"):
        pass
    assert "asking every member's cluster" in plain_text(live.getvalue())


def test_text_is_never_read_as_markup() -> None:
    out = io.StringIO()
    console = Console(stream=out, live=False)
    console.say("host [2001:db8::1]:22 [bold]not bold[/bold]")
    console.table(("host",), [("[::1]",)])
    assert "[2001:db8::1]:22 [bold]not bold[/bold]" in out.getvalue()
    assert "[::1]" in out.getvalue()
