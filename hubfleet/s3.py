"""The one adapter over S3 (boto3): a member's Harbor bucket, its lifecycle rules, a probe.

Where things come from:
- endpoint, region and bucket, and rules for this member only: the registry's `s3` block;
- the rules every member gets: config/k3s/s3-bucket-lifecycle.json in the deploy repo;
- the keys: the member's merged values at harbor.persistence.imageChartStorage.s3.accesskey
  and .secretkey, decrypted in memory. These are the keys Harbor itself stores images with, so
  `check_bucket` proves exactly what Harbor will be able to do, and there is no second copy
  of them to drift. They must come from a secrets layer; found in a plaintext layer, they are
  an error (and are not used).

Safety: boto3 is only ever given an explicit endpoint_url and explicit keys, on a botocore
session that reads no AWS profile, config or credentials file, so it never looks for
credentials anywhere (environment, ~/.aws, instance metadata) nor sends a request to AWS.
Timeouts are short and retries few, so an unreachable endpoint fails within seconds.
os.environ is never read for AWS settings nor changed. Keys are never printed: errors name the
values key and the file they came from, never a key.

Every failure an operator can fix is an S3Error (a HubfleetError): one line naming the member,
the bucket and the endpoint, and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hubfleet.errors import ConfigError, HubfleetError, SecretsError
from hubfleet.registry import Member
from hubfleet.repo import DeployRepo
from hubfleet.steps import CHANGED, OK, WOULD_CHANGE, Outcome
from hubfleet.values import MergedValues, get_path

LIFECYCLE_FILE = Path("config/k3s/s3-bucket-lifecycle.json")
HARBOR_S3 = ("harbor", "persistence", "imageChartStorage", "s3")
ACCESS_KEY_PATH = (*HARBOR_S3, "accesskey")
SECRET_KEY_PATH = (*HARBOR_S3, "secretkey")
KEYS_SHOWN = ".".join(HARBOR_S3) + ".accesskey/.secretkey"
DEFAULT_REGION = "us-east-1"
PROBE_PREFIX = "hubfleet-probe/"
PROBE_BUCKET_PREFIX = "hubfleet-probe-"

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
TOTAL_ATTEMPTS = 2  # one retry: an unreachable endpoint fails within a few seconds

WARNING = "warning"

# S3 error codes, as AWS and the S3-compatible servers (Ceph, MinIO, SeaweedFS, ...) send them.
MISSING_BUCKET = frozenset({"NoSuchBucket"})
NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})
BAD_KEYS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidSecurity",
        "InvalidClientTokenId",
    }
)
DENIED = frozenset({"AccessDenied", "Forbidden", "403", "AllAccessDisabled", "AccountProblem"})
WRONG_REGION = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
)
NOT_FOUND = frozenset({"404", "NotFound", "NoSuchKey"})

T = TypeVar("T")


class S3Error(HubfleetError):
    """A member's bucket cannot be reached, is missing, or refused what it must allow."""


@dataclass(frozen=True)
class BucketSettings:
    """Where a member's Harbor bucket is (the registry's `s3` block, defaults filled in)."""

    member: str
    endpoint: str
    region: str
    bucket: str
    lifecycle_rules: tuple[Mapping[str, Any], ...] = ()

    def __str__(self) -> str:
        return f"member {self.member}: bucket {self.bucket} at {self.endpoint}"


@dataclass(frozen=True)
class Keys:
    """A member's S3 keys, decrypted in memory. repr and str never show them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    source: str  # the secrets file(s) they came from, as shown to operators

    def __str__(self) -> str:
        return f"S3 keys from {self.source}"


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


@dataclass(frozen=True)
class Check:
    """One thing check_bucket found out: ok, or a warning (failures are S3Errors)."""

    name: str
    state: str
    detail: str

    def __str__(self) -> str:
        return f"{self.state:<8} {self.name}: {self.detail}"


@dataclass(frozen=True)
class BucketReport:
    bucket: str
    endpoint: str
    checks: tuple[Check, ...]

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.state == WARNING)


# --- the member's settings and keys ----------------------------------------------------------


def bucket_settings(member: Member) -> BucketSettings:
    """The member's bucket from its registry `s3` block; none is an error saying what to add."""
    block = member.s3
    if not block:
        raise ConfigError(
            f"member {member.name} has no s3 block in config/federation.yaml; "
            "add s3: {endpoint: https://..., bucket: NAME} to its record"
        )
    rules = block.get("lifecycle_rules") or []
    return BucketSettings(
        member=member.name,
        endpoint=str(block["endpoint"]).rstrip("/"),
        region=str(block.get("region") or DEFAULT_REGION),
        bucket=str(block["bucket"]),
        lifecycle_rules=tuple(dict(rule) for rule in rules),
    )


def member_keys(repo: DeployRepo, member: Member, values: MergedValues | None = None) -> Keys:
    """The member's S3 keys from its merged values (secret layers decrypted in memory).

    `values` may be given when the caller has merged them already (the `effective` values).
    """
    if values is None:
        from hubfleet.layers import member_values

        values = member_values(repo, member).effective
    secret_file = repo.relative(repo.member_secret_values(member.name))
    found: list[str] = []
    sources: list[str] = []
    for path in (ACCESS_KEY_PATH, SECRET_KEY_PATH):
        shown = ".".join(path)
        try:
            value = get_path(values.values, path)
        except (KeyError, TypeError, IndexError):
            value = None
        if value is None or value == "":
            raise SecretsError(
                f"member {member.name}: no S3 key at {shown}; set it in {secret_file} "
                f"(invoke secrets.edit {secret_file})"
            )
        layer = values.origins.get(path)
        if layer is None or not layer.secret:
            where = layer.name if layer is not None else "a plaintext layer"
            raise SecretsError(
                f"member {member.name}: {shown} is set in {where}, which is not encrypted; "
                f"move it to {secret_file} and rotate the key"
            )
        if not isinstance(value, str):
            raise SecretsError(f"member {member.name}: {shown} in {layer.name} must be a string")
        found.append(value)
        if layer.name not in sources:
            sources.append(layer.name)
    return Keys(access_key=found[0], secret_key=found[1], source=" and ".join(sources))


def make_client(
    settings: BucketSettings,
    keys: Keys,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> Any:
    """A boto3 S3 client for the member's endpoint with the member's keys, and nothing else.

    Path-style addressing (works with every S3-compatible provider and with an IP endpoint);
    checksums only where the API requires them (several S3-compatible servers reject the
    newer default ones).
    """
    import boto3
    import botocore.session  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    # No profile, no config or credentials file, whatever AWS_* variables say: the session
    # knows only what is passed here.
    core = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )
    session = boto3.session.Session(
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        region_name=settings.region,
        botocore_session=core,
    )
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": TOTAL_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="hubfleet",
    )
    return session.client("s3", endpoint_url=settings.endpoint, config=config)


def connect(repo: DeployRepo, member: Member) -> tuple[BucketSettings, Keys, Any]:
    """The member's bucket settings, its keys and a client for them."""
    settings = bucket_settings(member)
    keys = member_keys(repo, member)
    return settings, keys, make_client(settings, keys)


# --- lifecycle rules -------------------------------------------------------------------------


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
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{shown}: malformed JSON: {err}") from None
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
        answer = _call(
            lambda: client.get_bucket_lifecycle_configuration(Bucket=bucket),
            client,
            bucket,
            "reading the lifecycle configuration",
            member,
            keys_from,
            absent=NO_LIFECYCLE,
        )
    except _Absent:
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
    _call(
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
            f"{_who(member)}bucket {bucket} at {_endpoint(client)}: the lifecycle configuration "
            f"read back after the put differs from what was put (rules: {', '.join(differ)}); "
            "the server may not support these rules"
        )
    return LifecycleResult(CHANGED, bucket, changes, put=True)


# --- checking the bucket and the keys --------------------------------------------------------


def check_bucket(
    client: Any, bucket: str, *, member: str | None = None, keys_from: str | None = None
) -> BucketReport:
    """What the keys can do with the bucket: list it, write a probe object (a random key under
    hubfleet-probe/), read it back intact and delete it. Then, as a warning when they can,
    whether they may create and delete buckets: a bucket with a random name is created and,
    if that worked, deleted again. Any failure of the first part is an S3Error."""
    checks: list[Check] = []

    def call(action: Callable[[], T], doing: str, absent: frozenset[str] = frozenset()) -> T:
        return _call(action, client, bucket, doing, member, keys_from, absent=absent)

    call(
        lambda: client.list_objects_v2(Bucket=bucket, Prefix=PROBE_PREFIX, MaxKeys=1),
        "listing objects",
    )
    checks.append(Check("bucket", OK, "exists; the keys are accepted and may list it"))

    key = f"{PROBE_PREFIX}{secrets.token_hex(12)}"
    body = secrets.token_bytes(64)
    written = False
    try:
        call(lambda: client.put_object(Bucket=bucket, Key=key, Body=body), "writing an object")
        written = True
        checks.append(Check("write", OK, f"probe object {key} written"))
        answer = call(lambda: client.get_object(Bucket=bucket, Key=key), "reading an object")
        got = answer["Body"].read()
        if got != body:
            raise S3Error(
                f"{_who(member)}bucket {bucket} at {_endpoint(client)}: probe object {key} "
                f"read back differs from what was written ({len(got)} bytes, not {len(body)})"
            )
        checks.append(Check("read", OK, "probe object read back intact"))
        call(lambda: client.delete_object(Bucket=bucket, Key=key), "deleting an object")
        written = False
        try:
            call(
                lambda: client.head_object(Bucket=bucket, Key=key),
                "checking a deleted object",
                absent=NOT_FOUND,
            )
        except _Absent:
            checks.append(Check("delete", OK, "probe object deleted"))
        else:
            raise S3Error(
                f"{_who(member)}bucket {bucket} at {_endpoint(client)}: probe object {key} "
                "is still there after it was deleted"
            )
    finally:
        if written:  # best effort; the failure being reported matters more
            with contextlib.suppress(Exception):
                client.delete_object(Bucket=bucket, Key=key)
    checks.append(_bucket_admin_check(client, bucket, member, keys_from))
    return BucketReport(bucket, _endpoint(client), tuple(checks))


def _bucket_admin_check(
    client: Any, bucket: str, member: str | None, keys_from: str | None
) -> Check:
    name = f"{PROBE_BUCKET_PREFIX}{secrets.token_hex(8)}"
    region = client.meta.region_name
    extra: dict[str, Any] = {}
    if region and region != DEFAULT_REGION:
        extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        _call(
            lambda: client.create_bucket(Bucket=name, **extra),
            client,
            name,
            "creating a bucket",
            member,
            keys_from,
            absent=DENIED
            | {
                "NotImplemented",
                "InvalidBucketName",
                "TooManyBuckets",
                "BucketAlreadyExists",
                "BucketAlreadyOwnedByYou",
            },
        )
    except _Absent as refused:
        if refused.code in DENIED:
            return Check("bucket admin", OK, "the keys may not create buckets")
        return Check(
            "bucket admin",
            OK,
            f"could not tell whether the keys may create buckets ({refused.code})",
        )
    try:
        _call(
            lambda: client.delete_bucket(Bucket=name),
            client,
            name,
            "deleting a bucket",
            member,
            keys_from,
        )
    except S3Error as err:
        return Check(
            "bucket admin",
            WARNING,
            f"the keys may create buckets: test bucket {name} was created and could not be "
            f"deleted ({err}); delete it by hand, and use keys limited to bucket {bucket}",
        )
    return Check(
        "bucket admin",
        WARNING,
        "the keys may create and delete buckets (a test bucket was created and deleted "
        f"again); Harbor needs keys limited to bucket {bucket}",
    )


# --- errors ----------------------------------------------------------------------------------


class _Absent(Exception):
    """An expected 'no such thing' answer (its code), for the caller to handle."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _who(member: str | None) -> str:
    return f"member {member}: " if member else ""


def _endpoint(client: Any) -> str:
    return str(client.meta.endpoint_url)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _call(
    action: Callable[[], T],
    client: Any,
    bucket: str,
    doing: str,
    member: str | None,
    keys_from: str | None,
    absent: frozenset[str] = frozenset(),
) -> T:
    """Run one S3 request; turn what can go wrong into one S3Error line (codes in `absent`
    become _Absent for the caller)."""
    from botocore import exceptions as bex  # type: ignore[import-untyped,unused-ignore]

    who, endpoint = _who(member), _endpoint(client)
    try:
        return action()
    except bex.ClientError as err:
        error = err.response.get("Error", {}) if isinstance(err.response, dict) else {}
        code = str(error.get("Code") or "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in absent:
            raise _Absent(code) from None
        raise S3Error(
            _client_error_message(code, status, bucket, doing, who, endpoint, keys_from)
        ) from None
    except (bex.ConnectTimeoutError, bex.ReadTimeoutError) as err:
        config = client.meta.config
        if isinstance(err, bex.ConnectTimeoutError):
            what = f"no connection within {config.connect_timeout:g}s"
        else:
            what = f"no answer within {config.read_timeout:g}s"
        raise S3Error(
            f"{who}S3 endpoint {endpoint} is unreachable ({what}, {TOTAL_ATTEMPTS} attempts) "
            f"while {doing}; check s3.endpoint in config/federation.yaml and that the endpoint is up"
        ) from None
    except (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ConnectionError) as err:
        cause = getattr(err, "kwargs", {}).get("error", "")
        found = _ERRNO.search(f"{err} {cause}")
        reason = found.group(1).strip().lower() if found else type(err).__name__
        raise S3Error(
            f"{who}S3 endpoint {endpoint} is unreachable ({reason}) while {doing}; "
            "check s3.endpoint in config/federation.yaml and that the endpoint is up"
        ) from None
    except bex.NoCredentialsError:  # cannot happen with explicit keys; said plainly if it does
        raise S3Error(f"{who}no S3 keys were given for bucket {bucket}") from None
    except bex.BotoCoreError as err:
        raise S3Error(
            f"{who}S3 request to {endpoint} failed while {doing} on bucket {bucket}: "
            f"{type(err).__name__}"
        ) from None


def _client_error_message(
    code: str,
    status: int | None,
    bucket: str,
    doing: str,
    who: str,
    endpoint: str,
    keys_from: str | None,
) -> str:
    keys = f"{KEYS_SHOWN} in {keys_from}" if keys_from else KEYS_SHOWN
    if code in MISSING_BUCKET:
        return (
            f"{who}bucket {bucket} does not exist at {endpoint}; create it (terraform/ s3 "
            "stack) or fix s3.bucket in config/federation.yaml"
        )
    if code in BAD_KEYS:
        return f"{who}the S3 keys were rejected by {endpoint} ({code}) while {doing}; fix {keys}"
    if code in WRONG_REGION:
        return (
            f"{who}bucket {bucket} at {endpoint} is in another region ({code}) while {doing}; "
            "fix s3.region in config/federation.yaml"
        )
    if code in DENIED or status == 403:
        return (
            f"{who}access denied ({code or status}) {doing} in bucket {bucket} at {endpoint}; "
            f"the keys ({keys}) need read, write, list and delete rights on this bucket "
            "(some servers also answer so for a bucket that does not exist)"
        )
    return f"{who}S3 error {code or '?'} (HTTP {status}) {doing} in bucket {bucket} at {endpoint}"
