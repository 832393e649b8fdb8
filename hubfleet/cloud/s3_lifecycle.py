"""The lifecycle rules of a member's Harbor bucket: what they must be, and making them so.

The rules every member gets are config/k3s/s3-bucket-lifecycle.json in the deploy repo; the
member's own (its registry `s3.lifecycle_rules`) follow. Together they replace the bucket's
configuration: the repo is the truth. The bucket's rules are compared after normalising, put
only when they differ, and read back after a put. Requests go through `hubfleet.cloud.s3` (its
client, its one-line S3Errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubfleet.cloud.s3 import (
    NO_LIFECYCLE,
    Absent,
    S3Error,
    endpoint_of,
    member_prefix,
    request,
)
from hubfleet.errors import ConfigError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.hosts.steps import CHANGED, OK, WOULD_CHANGE, Outcome
from hubfleet.registry.members import Member
from hubfleet.registry.storage import bucket_settings

LIFECYCLE_FILE = Path("config/k3s/s3-bucket-lifecycle.json")


@dataclass(frozen=True)
class RuleChange:
    """What applying the desired configuration does to one rule, by ID."""

    rule: str
    change: str  # unchanged | added | changed | removed

    def __str__(self) -> str:
        return f"{self.change:<9}  {self.rule}"


@dataclass(frozen=True)
class LifecycleResult:
    """What apply_lifecycle did (ok, changed) or would do (would change, in a dry run)."""

    state: str
    bucket: str
    rules: tuple[RuleChange, ...]
    put: bool  # whether a configuration was put (and then read back and matched)

    def outcome(self) -> Outcome:
        """The same, as a step Outcome (for onboarding)."""
        changed = [str(r.rule) for r in self.rules if r.change != "unchanged"]
        detail = f"lifecycle rules of bucket {self.bucket}"
        if changed:
            detail += f" ({', '.join(changed)})"
        return Outcome(self.state, detail)


def _rules_of(data: Any, shown: str) -> list[dict[str, Any]]:
    rules = data.get("Rules") if isinstance(data, dict) else None
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(
            f'{shown}: expected {{"Rules": [rule, ...]}} (an S3 lifecycle configuration)'
        )
    for index, rule in enumerate(rules):
        if not isinstance(rule.get("ID"), str) or not rule["ID"]:
            raise ConfigError(f"{shown}: rule {index + 1} has no ID")
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise ConfigError(f"{shown}: rule {rule['ID']}: Status must be Enabled or Disabled")
    return [dict(r) for r in rules]


def lifecycle_rules(repo: DeployRepo, member: Member) -> dict[str, Any]:
    """The lifecycle configuration the member's bucket must have: the repo's rules for every
    member (config/k3s/s3-bucket-lifecycle.json), then the member's own (registry
    `s3.lifecycle_rules`). A rule ID used twice is an error naming both places."""
    path = repo.root / LIFECYCLE_FILE
    shown = repo.relative(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown} is missing; it holds the lifecycle rules every member's bucket gets"
        ) from None
    except OSError as err:
        raise ConfigError(f"{shown}: cannot read: {err.strerror}") from None
    data = parse_json(text, shown)
    rules = _rules_of(data, shown)
    where = {rule["ID"]: shown for rule in rules}
    own_shown = f"config/federation.yaml member {member.name} s3.lifecycle_rules"
    own = _rules_of({"Rules": list(bucket_settings(member).lifecycle_rules)}, own_shown)
    for rule in own:
        if rule["ID"] in where:
            raise ConfigError(
                f"{own_shown}: rule ID {rule['ID']!r} is already used in {where[rule['ID']]}; "
                "rule IDs must be unique"
            )
        where[rule["ID"]] = own_shown
        rules.append(rule)
    if not rules:
        raise ConfigError(f"{shown}: no lifecycle rules (at least abort-multipart is needed)")
    return {"Rules": rules}


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _normal_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _drop_none(rule)
    if "Prefix" in out and "Filter" not in out:  # the legacy form of the same rule
        out["Filter"] = {"Prefix": out.pop("Prefix")}
    if out.get("Filter") == {}:
        out["Filter"] = {"Prefix": ""}
    return out


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    """A lifecycle configuration reduced to what it means: its rules, without empty fields,
    with a legacy top-level Prefix as a Filter, sorted by ID. Server extras (such as
    TransitionDefaultMinimumObjectSize) are left out."""
    rules = [_normal_rule(r) for r in config.get("Rules") or [] if isinstance(r, Mapping)]
    rules.sort(key=lambda r: str(r.get("ID", "")))
    return {"Rules": rules}


def rule_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[RuleChange]:
    """Rule by rule, what replacing `current` by `desired` does (both normalised)."""

    def by_id(config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            str(r.get("ID") or f"(rule {i + 1} without ID)"): r
            for i, r in enumerate(config.get("Rules") or [])
        }

    now, wanted = by_id(current), by_id(desired)
    changes = [
        RuleChange(
            rid,
            "added" if rid not in now else ("unchanged" if now[rid] == rule else "changed"),
        )
        for rid, rule in wanted.items()
    ]
    changes += [RuleChange(rid, "removed") for rid in now if rid not in wanted]
    return changes


def current_lifecycle(
    client: Any, bucket: str, *, member: str | None = None, keys_from: str | None = None
) -> dict[str, Any]:
    """The bucket's lifecycle configuration as the server returns it ({"Rules": []} if none)."""
    try:
        answer = request(
            lambda: client.get_bucket_lifecycle_configuration(Bucket=bucket),
            client,
            bucket,
            "reading the lifecycle configuration",
            member,
            keys_from,
            absent=NO_LIFECYCLE,
        )
    except Absent:
        return {"Rules": []}
    return {"Rules": list(answer.get("Rules") or [])}


def apply_lifecycle(
    client: Any,
    bucket: str,
    rules: Mapping[str, Any],
    dry_run: bool = False,
    *,
    member: str | None = None,
    keys_from: str | None = None,
) -> LifecycleResult:
    """Make the bucket's lifecycle configuration `rules` (the repo is the truth: rules the
    bucket has that `rules` lacks are removed).

    Reads the current configuration first: equal (normalised), nothing is put (ok). Otherwise
    (unless dry_run) it is put, read back and compared; a read-back that differs is an S3Error.
    """
    desired = normalise(rules)
    if not desired["Rules"]:
        raise ConfigError(f"no lifecycle rules to apply to bucket {bucket}")
    current = normalise(current_lifecycle(client, bucket, member=member, keys_from=keys_from))
    changes = tuple(rule_changes(current, desired))
    if current == desired:
        return LifecycleResult(OK, bucket, changes, put=False)
    if dry_run:
        return LifecycleResult(WOULD_CHANGE, bucket, changes, put=False)
    request(
        lambda: client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": desired["Rules"]}
        ),
        client,
        bucket,
        "putting the lifecycle configuration",
        member,
        keys_from,
    )
    after = normalise(current_lifecycle(client, bucket, member=member, keys_from=keys_from))
    if after != desired:
        differ = [str(c.rule) for c in rule_changes(after, desired) if c.change != "unchanged"]
        raise S3Error(
            f"{member_prefix(member)}bucket {bucket} at {endpoint_of(client)}: the lifecycle configuration "
            f"read back after the put differs from what was put (rules: {', '.join(differ)}); "
            "the server may not support these rules"
        )
    return LifecycleResult(CHANGED, bucket, changes, put=True)
