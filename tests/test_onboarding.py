"""Onboarding progress: resume at the first unfinished step, --from-step, failures recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.members.onboarding import (
    STEPS,
    OnboardingFailed,
    OnboardOptions,
    checklist,
    load_progress,
    run_onboarding,
    steps_left,
)


def recorder(calls: list[str], fail_at: str | None = None) -> dict[str, Callable[[], str]]:
    def action(step: str) -> Callable[[], str]:
        def run() -> str:
            calls.append(step)
            if step == fail_at:
                raise HubfleetError(f"member m: {step} broke")
            return f"{step} ok"

        return run

    return {step: action(step) for step in STEPS}


def test_a_failure_is_recorded_and_a_rerun_resumes_there(tmp_path: Path) -> None:
    repo = DeployRepo(tmp_path)
    calls: list[str] = []
    with pytest.raises(
        OnboardingFailed, match=r"member m: deploy broke; fix it and rerun member\.onboard m"
    ) as caught:
        run_onboarding(
            repo, "m", OnboardOptions(), recorder(calls, fail_at="deploy"), say=lambda line: None
        )
    assert calls == list(STEPS[: STEPS.index("deploy") + 1])
    states = {s.step: s.state for s in caught.value.states}
    assert (
        states["s3-lifecycle"] == "done"
        and states["deploy"] == "failed"
        and states["health"] == "pending"
    )
    assert load_progress(repo, "m").failed == {"deploy": "member m: deploy broke"}
    assert steps_left(repo, "m") == list(STEPS[STEPS.index("deploy") :])

    calls.clear()
    run_onboarding(repo, "m", OnboardOptions(), recorder(calls), say=lambda line: None)
    assert calls == list(STEPS[STEPS.index("deploy") :])
    assert steps_left(repo, "m") == [] and load_progress(repo, "m").failed == {}

    calls.clear()
    again = run_onboarding(repo, "m", OnboardOptions(), recorder(calls), say=lambda line: None)
    assert calls == [] and {s.state for s in again} == {"done"}


def test_from_step_and_dry_run(tmp_path: Path) -> None:
    repo = DeployRepo(tmp_path)
    calls: list[str] = []
    planned = run_onboarding(
        repo, "m", OnboardOptions(dry_run=True), recorder(calls), say=lambda line: None
    )
    assert calls == [] and {s.state for s in planned} == {"would run"}
    assert not (tmp_path / ".hubfleet").exists()
    run_onboarding(
        repo, "m", OnboardOptions(from_step="deploy"), recorder(calls), say=lambda line: None
    )
    assert calls == list(STEPS[STEPS.index("deploy") :])
    with pytest.raises(
        HubfleetError, match="no onboarding step 'nope'; the steps are: preflight, member-new"
    ):
        run_onboarding(repo, "m", OnboardOptions(from_step="nope"), recorder(calls))


def test_checklist_marks_each_state(tmp_path: Path) -> None:
    repo = DeployRepo(tmp_path)
    with pytest.raises(OnboardingFailed) as caught:
        run_onboarding(
            repo, "m", OnboardOptions(), recorder([], fail_at="dns-check"), say=lambda line: None
        )
    text = checklist(caught.value.states)
    assert "[x] preflight" in text and "[!] dns-check" in text and "[ ] health" in text
