"""Checking a member's Harbor bucket with the member's keys: what they can do with it.

The keys must list the bucket and write, read back and delete a probe object (a random key
under hubfleet-probe/); a failure there is an S3Error. Whether they may also create and delete
buckets is tried with a randomly named bucket: when they may, that is a warning (Harbor needs
keys limited to its bucket). Requests go through `hubfleet.cloud.s3` (its client, its S3Errors).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hubfleet.cloud.s3 import (
    DENIED,
    NOT_FOUND,
    Absent,
    S3Error,
    endpoint_of,
    member_prefix,
    request,
)
from hubfleet.hosts.steps import OK
from hubfleet.registry.storage import DEFAULT_REGION

PROBE_PREFIX = "hubfleet-probe/"
PROBE_BUCKET_PREFIX = "hubfleet-probe-"
WARNING = "warning"

T = TypeVar("T")


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


def check_bucket(
    client: Any, bucket: str, *, member: str | None = None, keys_from: str | None = None
) -> BucketReport:
    """What the keys can do with the bucket: list it, write a probe object (a random key under
    hubfleet-probe/), read it back intact and delete it. Then, as a warning when they can,
    whether they may create and delete buckets: a bucket with a random name is created and,
    if that worked, deleted again. Any failure of the first part is an S3Error."""
    checks: list[Check] = []

    def call(action: Callable[[], T], doing: str, absent: frozenset[str] = frozenset()) -> T:
        return request(action, client, bucket, doing, member, keys_from, absent=absent)

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
                f"{member_prefix(member)}bucket {bucket} at {endpoint_of(client)}: probe object {key} "
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
        except Absent:
            checks.append(Check("delete", OK, "probe object deleted"))
        else:
            raise S3Error(
                f"{member_prefix(member)}bucket {bucket} at {endpoint_of(client)}: probe object {key} "
                "is still there after it was deleted"
            )
    finally:
        if written:  # best effort; the failure being reported matters more
            with contextlib.suppress(Exception):
                client.delete_object(Bucket=bucket, Key=key)
    checks.append(_bucket_admin_check(client, bucket, member, keys_from))
    return BucketReport(bucket, endpoint_of(client), tuple(checks))


def _bucket_admin_check(
    client: Any, bucket: str, member: str | None, keys_from: str | None
) -> Check:
    name = f"{PROBE_BUCKET_PREFIX}{secrets.token_hex(8)}"
    region = client.meta.region_name
    extra: dict[str, Any] = {}
    if region and region != DEFAULT_REGION:
        extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        request(
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
    except Absent as refused:
        if refused.code in DENIED:
            return Check("bucket admin", OK, "the keys may not create buckets")
        return Check(
            "bucket admin",
            OK,
            f"could not tell whether the keys may create buckets ({refused.code})",
        )
    try:
        request(
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
