"""Where a member's Harbor bucket is: the registry's `s3` block, defaults filled in.

The S3 adapter (`hubfleet.cloud.s3`) connects to it; the registry values layer gives Harbor the
same bucket, region and endpoint (`hubfleet.values.harbor_storage`), so they are written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.registry.members import Member

DEFAULT_REGION = "us-east-1"


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
