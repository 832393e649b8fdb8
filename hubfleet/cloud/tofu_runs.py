"""`invoke tofu.vars|plan|apply MEMBER STACK`: a member's OpenTofu stack run from the registry.

vars  writes the stack's tfvars (registry facts + the registry's tofu.<stack> values) to the
      member's work dir .hubfleet/tofu/<member>/<stack>/ and shows them (they hold no secrets).
plan  init (shared backend terraform/backend.hcl, state key hubfleet/<member>/<stack>.tfstate)
      and plan with those vars.
apply plan to a saved plan file (0600 in a 0700 dir, deleted afterwards: plans can hold secret
      values), ask unless --yes or CI, apply exactly that plan; with --save-outputs, merge the
      stack's `hubfleet_secrets` output into the member's encrypted files (never shown).

Credentials for the state bucket and the providers come from the `env:` maps of
secrets/tofu.yaml (the federation's) and secrets/<member>-tofu.yaml (the member's, winning),
decrypted in memory and given to the tofu process only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubfleet.cloud import tofu
from hubfleet.errors import ConfigError, HubfleetError, SecretsError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import Member, load_registry
from hubfleet.values.layers import write_secret_leaves

if TYPE_CHECKING:
    from hubfleet.cloud.tofu_cli import Tofu

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Prepared:
    """A member's stack with its tfvars written to the work dir."""

    member: Member
    stack: tofu.Stack
    tfvars: Mapping[str, Any]
    var_file: Path
    work_dir: Path


@dataclass(frozen=True)
class TofuResult:
    member: str
    stack: str
    changes: bool
    applied: bool
    saved: tuple[tofu.SavedSecrets, ...] = ()


def prepare(repo: DeployRepo, member_name: str, stack_name: str) -> Prepared:
    """Check the member's stack and write its tfvars (pure data from the registry)."""
    registry = load_registry(repo)
    member = registry.member(member_name)
    stack = tofu.find_stack(repo, member, stack_name)
    tfvars = tofu.member_tfvars(member, stack, registry.shown, registry.document.line_of)
    work = tofu.work_dir(repo, member.name, stack.name)
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    var_file = work / "hubfleet.tfvars.json"
    text = tofu.tfvars_json(tfvars)
    if not var_file.is_file() or var_file.read_text(encoding="utf-8") != text:
        var_file.write_text(text, encoding="utf-8")
    return Prepared(member, stack, tfvars, var_file, work)


def credentials_env(repo: DeployRepo, member: str) -> tuple[dict[str, str], list[str]]:
    """Environment for tofu from secrets/tofu.yaml then secrets/<member>-tofu.yaml (`env:`
    maps), decrypted in memory: (variables, files read)."""
    from hubfleet.secrets import sops

    env: dict[str, str] = {}
    used: list[str] = []
    for path in (repo.secrets_dir / "tofu.yaml", repo.secrets_dir / f"{member}-tofu.yaml"):
        if not path.exists():
            continue
        shown = repo.relative(path)
        data = sops.decrypt_yaml(repo, path)
        block = data.get("env") if isinstance(data, dict) else None
        if not isinstance(block, dict):
            raise SecretsError(f"{shown}: expected a mapping `env:` of variable names to values")
        for name, value in block.items():
            if not isinstance(name, str) or not ENV_NAME.match(name):
                raise SecretsError(f"{shown}: env key {name!r} is not an environment variable name")
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise SecretsError(f"{shown}: env.{name} must be a string")
            env[name] = str(value)
        used.append(shown)
    return env, used


def _tofu(
    repo: DeployRepo,
    prepared: Prepared,
    binary: str,
    environ: Mapping[str, str],
    color: bool,
    say: Callable[[str], None],
) -> Tofu:
    """tofu for this member's stack, initialised against its state key."""
    from hubfleet.cloud.tofu_cli import Tofu

    backend = repo.root / tofu.BACKEND_FILE
    if not backend.is_file():
        raise ConfigError(
            f"no {tofu.BACKEND_FILE}: copy terraform/backend.hcl.example there and name the "
            "state bucket (it holds every member's state, one key each)"
        )
    secrets_env, used = credentials_env(repo, prepared.member.name)
    env = {**environ, **secrets_env}
    label = f"member {prepared.member.name}, stack {prepared.stack.name}"
    runner = Tofu(binary, prepared.stack.directory, prepared.work_dir, env, label, color)
    key = tofu.state_key(prepared.member.name, prepared.stack.name)
    creds = f"credentials from {', '.join(used)}" if used else "credentials from the environment"
    say(f"{label} ({prepared.stack.shown}): init, state {key}; {creds}")
    runner.init([backend], {"key": key})
    return runner


def plan(
    repo: DeployRepo,
    member_name: str,
    stack_name: str,
    binary: str,
    environ: Mapping[str, str],
    say: Callable[[str], None] = print,
    color: bool = False,
) -> TofuResult:
    """init and plan; nothing is changed."""
    prepared = prepare(repo, member_name, stack_name)
    runner = _tofu(repo, prepared, binary, environ, color, say)
    changes = runner.plan(prepared.var_file, None)
    label = f"member {prepared.member.name}, stack {prepared.stack.name}"
    say(f"{label}: {'changes planned (nothing applied)' if changes else 'no changes'}")
    return TofuResult(prepared.member.name, prepared.stack.name, changes, applied=False)


def apply(
    repo: DeployRepo,
    member_name: str,
    stack_name: str,
    binary: str,
    environ: Mapping[str, str],
    *,
    yes: bool = False,
    save_outputs: bool = False,
    confirm: Callable[[str], bool] | None = None,
    say: Callable[[str], None] = print,
    color: bool = False,
) -> TofuResult:
    """init, plan to a file, confirm, apply that plan, then save outputs if asked."""
    prepared = prepare(repo, member_name, stack_name)
    runner = _tofu(repo, prepared, binary, environ, color, say)
    label = f"member {prepared.member.name}, stack {prepared.stack.name}"
    plan_file = prepared.work_dir / "hubfleet.tfplan"
    applied = False
    try:
        changes = runner.plan(prepared.var_file, plan_file)
        if plan_file.exists():
            plan_file.chmod(0o600)
        if changes:
            if not (yes or environ.get("CI")):
                question = f"Apply this plan to {label} ({prepared.member.stage})?"
                if confirm is None or not confirm(question):
                    raise HubfleetError(
                        f"{label}: apply not confirmed; nothing was changed (--yes applies "
                        "without asking)"
                    )
            runner.apply(plan_file)
            applied = True
            say(f"{label}: applied")
        else:
            say(f"{label}: no changes; nothing applied")
    finally:
        plan_file.unlink(missing_ok=True)
    saved: tuple[tofu.SavedSecrets, ...] = ()
    if save_outputs:
        saved = tuple(save_secrets(repo, prepared, runner.outputs(), say))
    return TofuResult(prepared.member.name, prepared.stack.name, changes, applied, saved)


def save_secrets(
    repo: DeployRepo,
    prepared: Prepared,
    outputs: Mapping[str, Any],
    say: Callable[[str], None] = print,
) -> list[tofu.SavedSecrets]:
    """Merge the stack's `hubfleet_secrets` output into the member's encrypted files.

    Only key paths are said; a file is re-encrypted only when something in it changes.
    """

    label = f"member {prepared.member.name}, stack {prepared.stack.name}"
    if tofu.SECRETS_OUTPUT not in outputs:
        raise ConfigError(
            f"{label}: the stack has no output {tofu.SECRETS_OUTPUT} (or it was never applied); "
            "nothing to save"
        )
    targets = tofu.secret_targets(repo, prepared.member.name)
    parts = tofu.split_secrets_output(outputs[tofu.SECRETS_OUTPUT], targets, prepared.stack.shown)
    saved: list[tofu.SavedSecrets] = []
    for target, incoming in parts.items():
        path = targets[target]
        shown = repo.relative(path)
        changed, unchanged = write_secret_leaves(repo, path, incoming)
        for key_path in changed:
            say(f"  {shown}: {key_path}: saved")
        say(
            f"{label}: {len(changed)} output value(s) saved in {shown} "
            f"({len(unchanged)} already there)"
        )
        saved.append(tofu.SavedSecrets(target, shown, tuple(changed), tuple(unchanged)))
    if not parts:
        say(f"{label}: output {tofu.SECRETS_OUTPUT} is empty; nothing to save")
    return saved
