"""Each member's stage, as the adopted repository's CD workflow deploys it: a staging job, then a
prod job whose matrix lists the prod members (`.github/workflows/cd.yml`, `federation_member`
in the matrix). `--stage NAME=STAGE` wins over the workflow."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import parse_with_lines

CD_WORKFLOW = ".github/workflows/cd.yml"
STAGES = ("staging", "prod")
MATRIX_KEY = "federation_member"


def _job_stage(job_id: str, job: Mapping[str, Any]) -> str:
    for stage in STAGES:
        if stage in job_id.lower():
            return stage
    return "prod" if job.get("needs") else "staging"  # prod runs after staging


def _matrix_members(job: Mapping[str, Any]) -> list[str]:
    strategy = job.get("strategy")
    matrix = strategy.get("matrix") if isinstance(strategy, Mapping) else None
    if not isinstance(matrix, Mapping):
        return []
    names: list[Any] = []
    listed = matrix.get(MATRIX_KEY)
    if isinstance(listed, list):
        names += listed
    include = matrix.get("include")
    if isinstance(include, list):
        names += [row.get(MATRIX_KEY) for row in include if isinstance(row, Mapping)]
    return [n for n in names if isinstance(n, str)]


def workflow_stages(text: str, shown: str) -> dict[str, str]:
    """Member -> stage from the CD workflow's text (a member in both jobs is staging)."""
    data = parse_with_lines(text, Path(shown), shown).data
    jobs = data.get("jobs") if isinstance(data, Mapping) else None
    stages: dict[str, str] = {}
    if not isinstance(jobs, Mapping):
        return stages
    for job_id, job in jobs.items():
        if not isinstance(job, Mapping):
            continue
        stage = _job_stage(str(job_id), job)
        for name in _matrix_members(job):
            if stages.get(name) != "staging":
                stages[name] = stage
    return stages


def stage_overrides(given: Iterable[str]) -> dict[str, str]:
    """`--stage NAME=STAGE` flags as a mapping; a malformed one is one line."""
    out: dict[str, str] = {}
    for item in given:
        name, sep, stage = item.partition("=")
        if not sep or not name or stage not in STAGES:
            raise ConfigError(f"--stage {item!r}: want NAME=staging or NAME=prod")
        out[name] = stage
    return out
