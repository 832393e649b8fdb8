"""Harbor's image storage as umbrella chart values: the bucket from the registry, the keys from
the member's secrets, and the check that a member with Harbor on has both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubfleet.registry.members import Member
from hubfleet.registry.storage import bucket_settings

HARBOR_ENABLED = "harborEnabled"  # the umbrella chart's switch for its harbor dependency
HARBOR_S3 = ("harbor", "persistence", "imageChartStorage", "s3")
ACCESS_KEY_PATH = (*HARBOR_S3, "accesskey")
SECRET_KEY_PATH = (*HARBOR_S3, "secretkey")
KEYS_SHOWN = ".".join(HARBOR_S3) + ".accesskey/.secretkey"


def harbor_storage_values(member: Member) -> dict[str, Any]:
    """Where the member's Harbor keeps images, as umbrella chart values from its registry `s3`
    block: bucket, region and regionendpoint under harbor.persistence.imageChartStorage.s3, so
    the bucket is written once, in the registry. {} for a member without an s3 block. The keys
    are never here: they stay in the member's secrets, at ACCESS_KEY_PATH and SECRET_KEY_PATH."""
    if not member.s3:
        return {}
    settings = bucket_settings(member)
    node: dict[str, Any] = {
        "bucket": settings.bucket,
        "region": settings.region,
        "regionendpoint": settings.endpoint,
    }
    for key in reversed(HARBOR_S3):
        node = {key: node}
    return node


def harbor_storage_problem(member: Member, effective: Mapping[str, Any]) -> str | None:
    """Why the member's Harbor would not have its S3 storage (None when it would, or when
    Harbor is off or keeps images elsewhere): a bucket and both keys must be in the values."""
    harbor = effective.get("harbor")
    if effective.get(HARBOR_ENABLED) is not True or not isinstance(harbor, Mapping):
        return None
    storage = harbor.get("persistence", {}).get("imageChartStorage", {})
    if not isinstance(storage, Mapping) or storage.get("type") != "s3":
        return None
    found = storage.get("s3")
    s3: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not s3.get("bucket"):
        return (
            f"member {member.name}: Harbor is enabled but has no S3 bucket; add an s3 block "
            "(endpoint, bucket, vendor) to its registry record, or set harborEnabled: false"
        )
    missing = [key for key in ("accesskey", "secretkey") if not s3.get(key)]
    if missing:
        return (
            f"member {member.name}: Harbor's bucket {s3['bucket']} has no {'/'.join(missing)} "
            f"in the values; store them at {KEYS_SHOWN} in secrets/config/{member.name}.yaml "
            f"(invoke tofu.apply {member.name} s3 --save-outputs writes them)"
        )
    return None
