"""The OpenTofu stacks under terraform/, seen from the registry: which directory a member's stack
is, which variables it declares, the tfvars the registry gives it, its state key, and where its
`hubfleet_secrets` output is saved.

Pure logic plus reading the stack's .tf files (python-hcl2); running `tofu` is hubfleet.cloud.tofu_cli.

The contract with the stacks (terraform/README.md):
- variables named like a registry fact (REGISTRY_FACTS) are filled from the member's record when
  the stack declares them; any other variable comes from its default or from the registry's
  `tofu: {<stack>: {<variable>: value}}`, which may only name declared variables;
- each stack's state is `hubfleet/<member>/<stack>.tfstate` in the shared state bucket
  (terraform/backend.hcl);
- the sensitive output `hubfleet_secrets` is a map keyed by target (SECRET_TARGETS), each value a
  nested map merged into that target's encrypted file by `--save-outputs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import Member

STACKS = ("s3", "harbor", "gke")
SECRETS_OUTPUT = "hubfleet_secrets"
BACKEND_FILE = "terraform/backend.hcl"

# what each registry fact is, for --help and messages
REGISTRY_FACTS = {
    "member": "the member's name",
    "stage": "staging or prod",
    "domain": "the member's domain",
    "registry_hostname": "registry.<domain>, the member's Harbor",
    "bucket": "s3.bucket",
    "s3_endpoint": "s3.endpoint",
    "s3_region": "s3.region (default us-east-1)",
    "gke_project": "gke.project",
    "gke_location": "gke.location",
    "gke_cluster": "gke.cluster",
}


@dataclass(frozen=True)
class Variable:
    """One `variable` block of a stack."""

    name: str
    type: str  # as written: string, number, bool, map(string), ... ("any" when not given)
    required: bool  # no default
    file: str  # where it is declared, relative to the repo


@dataclass(frozen=True)
class Stack:
    """A member's stack: the name the operator uses and the directory it runs in."""

    name: str  # s3, harbor, gke (or a directory name under terraform/)
    directory: Path
    shown: str  # directory relative to the repo
    variables: Mapping[str, Variable]


@dataclass(frozen=True)
class SavedSecrets:
    """What --save-outputs did to one target file."""

    target: str
    file: str
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def stack_directory_name(member: Member, stack: str) -> str:
    """`s3` is per object-storage vendor (registry s3.vendor); other stacks are their name."""
    if stack != "s3":
        return stack
    vendor = member.s3.get("vendor")
    if not member.s3:
        raise ConfigError(
            f"member {member.name} has no s3 block in the registry; the s3 stack needs "
            "s3.bucket, s3.endpoint and s3.vendor"
        )
    if not vendor:
        raise ConfigError(
            f"member {member.name}: set s3.vendor (hetzner or ovh) in the registry to pick "
            "the s3 stack's variant"
        )
    return f"s3-{vendor}"


def find_stack(
    repo: DeployRepo,
    member: Member,
    stack: str,
    parsed: dict[Path, dict[str, Variable]] | None = None,
) -> Stack:
    """The member's stack `stack` with its declared variables; unknown stacks name the choices.
    `parsed` keeps each directory's variables across calls (validating many members)."""
    base = repo.root / "terraform"
    if not stack or "/" in stack or stack.startswith("."):
        raise ConfigError(f"bad stack name {stack!r}; stacks: {', '.join(STACKS)}")
    if stack.startswith("s3-"):
        raise ConfigError(
            f"say `s3`, not {stack!r}: the variant comes from the registry's s3.vendor "
            f"of member {member.name}"
        )
    directory = base / stack_directory_name(member, stack)
    if not directory.is_dir() or not any(directory.glob("*.tf")):
        known = (
            sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.tf")))
            if base.is_dir()
            else []
        )
        raise ConfigError(
            f"no stack {repo.relative(directory)} (stacks here: {', '.join(known) or 'none'})"
        )
    if parsed is None:
        parsed = {}
    if directory not in parsed:
        parsed[directory] = declared_variables(repo, directory)
    return Stack(stack, directory, repo.relative(directory), parsed[directory])


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def declared_variables(repo: DeployRepo, directory: Path) -> dict[str, Variable]:
    """Every `variable` block in the directory's .tf files (python-hcl2)."""
    import hcl2

    found: dict[str, Variable] = {}
    for path in sorted(directory.glob("*.tf")):
        shown = repo.relative(path)
        try:
            with path.open(encoding="utf-8") as handle:
                parsed = hcl2.load(handle)
        except Exception as err:  # lark's errors have no common base worth naming
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{shown}: not valid HCL: {first}") from err
        for block in parsed.get("variable", []):
            for raw_name, body in block.items():
                name = _unquote(raw_name)
                kind = body.get("type", "any") if isinstance(body, dict) else "any"
                found[name] = Variable(
                    name=name,
                    type=_unquote(str(kind)).removeprefix("${").removesuffix("}"),
                    required=not (isinstance(body, dict) and "default" in body),
                    file=shown,
                )
    return found


def registry_facts(member: Member) -> dict[str, Any]:
    """The values the registry gives the stacks, by the variable names of REGISTRY_FACTS."""
    facts: dict[str, Any] = {
        "member": member.name,
        "stage": member.stage,
        "domain": member.domain,
        "registry_hostname": f"registry.{member.domain}",
    }
    if member.s3:
        facts["bucket"] = member.s3.get("bucket")
        facts["s3_endpoint"] = member.s3.get("endpoint")
        facts["s3_region"] = member.s3.get("region", "us-east-1")
    if member.gke:
        facts["gke_project"] = member.gke.get("project")
        facts["gke_location"] = member.gke.get("location")
        facts["gke_cluster"] = member.gke.get("cluster")
    return {k: v for k, v in facts.items() if v is not None}


def _type_problem(variable: Variable, value: Any) -> str | None:
    base = variable.type.split("(", 1)[0].strip()
    if base == "string" and not isinstance(value, str):
        return "expected a string"
    if base == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "expected a number"
    if base == "bool" and not isinstance(value, bool):
        return "expected true or false"
    if base in ("map", "object") and not isinstance(value, Mapping):
        return "expected a mapping"
    if base in ("list", "set", "tuple") and not isinstance(value, list):
        return "expected a list"
    return None


def member_tfvars(
    member: Member,
    stack: Stack,
    registry_shown: str = "config/federation.yaml",
    line_of: Callable[[tuple[str, ...]], int | None] = lambda path: None,
) -> dict[str, Any]:
    """The tfvars for `stack`: registry facts the stack declares, then the registry's
    `tofu.<stack>` values. Unknown names, wrong types and required variables nobody sets are
    ConfigErrors naming the registry line (or the .tf file) and what to do."""
    facts = registry_facts(member)
    tfvars = {name: facts[name] for name in stack.variables if name in facts}
    overrides = member.tofu.get(stack.name, {}) or {}
    for name, value in overrides.items():
        path = ("members", member.name, "tofu", stack.name, name)
        line = line_of(path)
        where = f"{registry_shown}:{line}" if line else registry_shown
        if name not in stack.variables:
            known = ", ".join(sorted(n for n in stack.variables if n not in facts)) or "none"
            raise ConfigError(
                f"{where}: member {member.name}: tofu.{stack.name}.{name}: stack "
                f"{stack.shown} declares no variable {name!r} (settable: {known})"
            )
        if name in facts:
            raise ConfigError(
                f"{where}: member {member.name}: tofu.{stack.name}.{name}: comes from the "
                f"registry ({REGISTRY_FACTS[name]}); change it there, not here"
            )
        problem = _type_problem(stack.variables[name], value)
        if problem:
            raise ConfigError(
                f"{where}: member {member.name}: tofu.{stack.name}.{name}: {problem} "
                f"(type {stack.variables[name].type} in {stack.variables[name].file})"
            )
        tfvars[name] = value
    missing = [v for n, v in stack.variables.items() if v.required and n not in tfvars]
    if missing:
        first = missing[0]
        source = (
            f"the registry's {REGISTRY_FACTS[first.name]}"
            if first.name in REGISTRY_FACTS
            else f"tofu.{stack.name}.{first.name} under member {member.name} in {registry_shown}"
        )
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"member {member.name}: stack {stack.shown} needs variable {first.name!r} "
            f"({first.file}); set {source}{more}"
        )
    return dict(sorted(tfvars.items()))


def stack_problems(
    repo: DeployRepo,
    member: Member,
    registry_shown: str,
    line_of: Callable[[tuple[str, ...]], int | None],
    parsed: dict[Path, dict[str, Variable]],
) -> list[str]:
    """For `invoke validate`: each stack the member's `tofu:` block names gets its tfvars."""
    problems = []
    for name in member.tofu:
        try:
            stack = find_stack(repo, member, str(name), parsed)
            member_tfvars(member, stack, registry_shown, line_of)
        except ConfigError as err:
            problems.append(str(err))
    return problems


def tfvars_json(tfvars: Mapping[str, Any]) -> str:
    return json.dumps(dict(tfvars), indent=2, sort_keys=True) + "\n"


def state_key(member: str, stack: str) -> str:
    """The member's state object in the shared state bucket."""
    return f"hubfleet/{member}/{stack}.tfstate"


def work_dir(repo: DeployRepo, member: str, stack: str) -> Path:
    """Where tofu keeps the member's init data, tfvars and plan (never committed)."""
    return repo.root / ".hubfleet" / "tofu" / member / stack


def secret_targets(repo: DeployRepo, member: str) -> dict[str, Path]:
    """Where each key of `hubfleet_secrets` is saved."""
    return {
        "values": repo.member_secret_values(member),
        "gke": repo.member_gke_credentials(member),
    }


def split_secrets_output(
    value: Any, targets: Mapping[str, Path], stack: str
) -> dict[str, Mapping[str, Any]]:
    """The stack's `hubfleet_secrets` output, checked: a map of known targets to maps."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"stack {stack}: output {SECRETS_OUTPUT} is not a map of targets")
    unknown = sorted(set(value) - set(targets))
    if unknown:
        raise ConfigError(
            f"stack {stack}: output {SECRETS_OUTPUT} has unknown target(s) "
            f"{', '.join(unknown)} (known: {', '.join(targets)})"
        )
    bad = [k for k, v in value.items() if not isinstance(v, Mapping)]
    if bad:
        raise ConfigError(f"stack {stack}: output {SECRETS_OUTPUT}.{bad[0]} is not a map")
    return {k: v for k, v in value.items() if v}
