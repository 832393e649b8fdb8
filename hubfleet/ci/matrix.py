"""ci.plan's records and what it prints: the Overrides an operator gives, each Deployment (a
member, its stage and why) and the Plan, rendered as a GitHub Actions matrix or a markdown table.
The rules that make a Plan from a change are in `hubfleet.ci.plan`.

JSON (`Plan.matrix()`), made for GitHub Actions `fromJSON`:

    {"staging": {"include": [{"member": "a", "stage": "staging", "reason": "config/a.yaml"}]},
     "prod": {"include": []},
     "any_staging": true, "any_prod": false,
     "members": ["a"], "removed": [], "ignored": [], "override": null}

An empty `include` is not a valid matrix for GitHub, so a workflow gates each matrix job on
`any_staging` / `any_prod` (`if: fromJSON(needs.plan.outputs.plan).any_prod`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubfleet.errors import ConfigError

STAGES = ("staging", "prod")


@dataclass(frozen=True)
class Overrides:
    """What the operator forces: every member, nobody, or exactly the named members."""

    all: bool = False
    none: bool = False
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        chosen = [flag for flag, on in (("--all", self.all), ("--none", self.none)) if on]
        if self.members:
            chosen.append("--member")
        if len(chosen) > 1:
            raise ConfigError(f"ci.plan: {' and '.join(chosen)} exclude each other; give one")

    @property
    def label(self) -> str | None:
        if self.all:
            return "all"
        if self.none:
            return "none"
        if self.members:
            return "members"
        return None


NO_OVERRIDES = Overrides()


@dataclass(frozen=True)
class Deployment:
    """One member to deploy and why (the files or registry changes that call for it)."""

    member: str
    stage: str
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def entry(self) -> dict[str, str]:
        return {"member": self.member, "stage": self.stage, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """What a change deploys. `deploy` is sorted by name; the rest are sorted paths/names."""

    deploy: tuple[Deployment, ...]
    removed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    inert: tuple[str, ...] = ()
    override: str | None = None
    notes: tuple[str, ...] = field(default=())

    def stage(self, stage: str) -> tuple[Deployment, ...]:
        return tuple(d for d in self.deploy if d.stage == stage)

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(d.member for d in self.deploy)

    def matrix(self) -> dict[str, Any]:
        """The JSON document for a GitHub Actions workflow (see the module docstring)."""
        out: dict[str, Any] = {}
        for stage in STAGES:
            out[stage] = {"include": [d.entry() for d in self.stage(stage)]}
        for stage in STAGES:
            out[f"any_{stage}"] = bool(self.stage(stage))
        out["members"] = list(self.members)
        out["removed"] = list(self.removed)
        out["ignored"] = list(self.ignored)
        out["override"] = self.override
        return out

    def table(self) -> str:
        """Markdown for humans and PR comments."""
        counts = ", ".join(f"{len(self.stage(s))} {s}" for s in STAGES)
        forced = f" (override: {self.override})" if self.override else ""
        lines = [f"### ci.plan: {len(self.deploy)} member(s) to deploy ({counts}){forced}", ""]
        if self.deploy:
            lines += ["| stage | member | why |", "|---|---|---|"]
            for stage in STAGES:
                for d in self.stage(stage):
                    why = "<br>".join(_cell(r) for r in d.reasons)
                    lines.append(f"| {stage} | {d.member} | {why} |")
        else:
            lines.append("Nothing to deploy.")
        if self.removed:
            lines += ["", f"**Removed** (not deployed): {', '.join(self.removed)}"]
        if self.ignored:
            shown = ", ".join(f"`{p}`" for p in self.ignored)
            lines += ["", f"**Ignored** (not recognised by ci.plan; deploy nothing): {shown}"]
        if self.inert:
            lines += ["", f"No deploy needed for {len(self.inert)} file(s) (docs, tests, CI)."]
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
