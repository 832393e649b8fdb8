"""The adapter over S3 (boto3): where a member's Harbor bucket is, its keys, a client, errors.

What is done with the bucket lives beside it: its lifecycle rules in `hubfleet.cloud.s3_lifecycle`,
the check of what the keys may do in `hubfleet.cloud.s3_check`; both send their requests through
`request` here.

Where things come from:
- endpoint, region and bucket, and rules for this member only: the registry's `s3` block
  (`hubfleet.registry.storage`; Harbor gets the same three through the registry values layer:
  `hubfleet.values.harbor_storage`);
- the keys: the member's merged values at harbor.persistence.imageChartStorage.s3.accesskey
  and .secretkey, decrypted in memory. These are the keys Harbor itself stores images with, so
  `s3_check.check_bucket` proves exactly what Harbor will be able to do, and there is no
  second copy of them to drift. They must come from a secrets layer; found in a plaintext
  layer, they are an error (and are not used).

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

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hubfleet.errors import HubfleetError, SecretsError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import Member
from hubfleet.registry.storage import BucketSettings, bucket_settings
from hubfleet.values.harbor_storage import ACCESS_KEY_PATH, KEYS_SHOWN, SECRET_KEY_PATH
from hubfleet.values.merge import MergedValues, get_path

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
TOTAL_ATTEMPTS = 2  # one retry: an unreachable endpoint fails within a few seconds

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
class Keys:
    """A member's S3 keys, decrypted in memory. repr and str never show them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    source: str  # the secrets file(s) they came from, as shown to operators

    def __str__(self) -> str:
        return f"S3 keys from {self.source}"


# --- the member's settings and keys ----------------------------------------------------------


def member_keys(repo: DeployRepo, member: Member, values: MergedValues | None = None) -> Keys:
    """The member's S3 keys from its merged values (secret layers decrypted in memory).

    `values` may be given when the caller has merged them already (the `effective` values).
    """
    if values is None:
        from hubfleet.values.layers import member_values

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


# --- errors ----------------------------------------------------------------------------------


class Absent(Exception):
    """An expected 'no such thing' answer (its code), for the caller to handle."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def member_prefix(member: str | None) -> str:
    """How a message starts: "member NAME: ", or nothing when no member is named."""
    return f"member {member}: " if member else ""


def endpoint_of(client: Any) -> str:
    """The endpoint a client talks to, as messages name it."""
    return str(client.meta.endpoint_url)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def request(
    action: Callable[[], T],
    client: Any,
    bucket: str,
    doing: str,
    member: str | None,
    keys_from: str | None,
    absent: frozenset[str] = frozenset(),
) -> T:
    """Run one S3 request; turn what can go wrong into one S3Error line (codes in `absent`
    become Absent for the caller)."""
    from botocore import exceptions as bex  # type: ignore[import-untyped,unused-ignore]

    who, endpoint = member_prefix(member), endpoint_of(client)
    try:
        return action()
    except bex.ClientError as err:
        error = err.response.get("Error", {}) if isinstance(err.response, dict) else {}
        code = str(error.get("Code") or "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in absent:
            raise Absent(code) from None
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
