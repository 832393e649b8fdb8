"""GKE members' cluster credentials, made in memory from a service-account key (no gcloud).

A GKE member's secrets file, `secrets/<member>-gke.yaml` (sops-encrypted), holds the key of a
service account allowed to use the cluster, and the cluster's endpoint and CA as
`invoke tofu.apply MEMBER gke --save-outputs` wrote them. From these this module builds what
every other member already has: a kubeconfig, here with a short-lived OAuth2 access token as
its user, which the kube adapter and the Helm engines take as they are.

The token comes from the token endpoint the key itself names (`token_uri`), by google-auth's
JWT-bearer grant, on a requests session made for that one call. There is no gcloud, no
application-default-credentials lookup, no metadata server, nothing cached between calls and
no os.environ: two members' credentials can be made at once in one process.

google-auth and requests are imported inside the functions that use them, so importing this
module (and `invoke --list`) does not pay for them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hubfleet.errors import ClusterError, ConfigError, SecretsError
from hubfleet.files.jsonfile import parse_json
from hubfleet.kube.credentials import ClusterCredentials, credentials_from_kubeconfig
from hubfleet.registry.members import Member

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GKE_API = "https://container.googleapis.com"
TIMEOUT_S = 30.0
SERVICE_ACCOUNT_FIELDS = ("type", "client_email", "private_key", "token_uri")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GkeCluster:
    """Where a GKE member's cluster is, as the registry's `gke:` block says."""

    project: str
    location: str
    name: str

    @property
    def context(self) -> str:
        """The kubeconfig context name, the one `gcloud container clusters get-credentials` uses."""
        return f"gke_{self.project}_{self.location}_{self.name}"

    @property
    def resource(self) -> str:
        """The cluster's name in the GKE API."""
        return f"projects/{self.project}/locations/{self.location}/clusters/{self.name}"

    def __str__(self) -> str:
        return f"cluster {self.name} (project {self.project}, location {self.location})"


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account's key, as its JSON key file holds it; the key material is never shown."""

    client_email: str
    token_uri: str
    info: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ClusterEndpoint:
    """A cluster API endpoint (host or IP, maybe with a port) and its CA, base64 of the PEM."""

    endpoint: str
    ca_certificate: str = field(repr=False)

    @property
    def server(self) -> str:
        return f"https://{self.endpoint}"


@dataclass(frozen=True)
class GkeSecrets:
    """A decrypted `secrets/<member>-gke.yaml`, checked; endpoint None when the file has none."""

    member: str
    source: str
    key: ServiceAccountKey
    endpoint: ClusterEndpoint | None


@dataclass(frozen=True)
class AccessToken:
    """A short-lived OAuth2 access token and when it expires (UTC; None if not said)."""

    token: str = field(repr=False)
    expires_at: dt.datetime | None


# --- reading the registry and the secrets file ---------------------------------------------


def cluster_of(member: Member) -> GkeCluster:
    """The member's GKE cluster from its registry record."""
    block = member.gke
    missing = [k for k in ("project", "location", "cluster") if not block.get(k)]
    if missing:
        raise ConfigError(
            f"member {member.name}: provider gke needs gke.{', gke.'.join(missing)} in the registry"
        )
    return GkeCluster(str(block["project"]), str(block["location"]), str(block["cluster"]))


def parse_gke_secrets(member: str, data: Any, source: str) -> GkeSecrets:
    """Check a decrypted GKE secrets file; its problems are one-line SecretsErrors.

    No message shows a value from the file, only the names of what is missing or wrong.
    """
    if not isinstance(data, Mapping):
        raise SecretsError(f"{source}: not a mapping; member {member}")
    key = _service_account_key(member, data.get("service_account"), source)
    raw_endpoint, raw_ca = data.get("endpoint"), data.get("ca_certificate")
    if raw_endpoint in (None, "") and raw_ca in (None, ""):
        return GkeSecrets(member, source, key, None)
    if raw_endpoint in (None, ""):
        raise SecretsError(no_endpoint_message(member, source, "endpoint"))
    if raw_ca in (None, ""):
        raise SecretsError(no_endpoint_message(member, source, "ca_certificate"))
    endpoint = _endpoint(member, raw_endpoint, source)
    ca = _ca(member, raw_ca, source, f"; run: invoke tofu.apply {member} gke --save-outputs")
    return GkeSecrets(member, source, key, ClusterEndpoint(endpoint, ca))


def no_endpoint_message(member: str, source: str, what: str = "endpoint") -> str:
    return f"{source}: no {what} for member {member}; run: invoke tofu.apply {member} gke --save-outputs"


def _service_account_key(member: str, raw: Any, source: str) -> ServiceAccountKey:
    if isinstance(raw, str):  # the key JSON pasted as a string
        try:
            raw = parse_json(raw, source)
        except ConfigError:
            raise SecretsError(
                f"{source}: service_account of member {member} is a string but not the key JSON"
            ) from None
    if not isinstance(raw, Mapping):
        raise SecretsError(
            f"{source}: no service_account (the service-account key JSON, as a mapping) "
            f"for member {member}"
        )
    missing = [f for f in SERVICE_ACCOUNT_FIELDS if not _text(raw.get(f))]
    if missing:
        raise SecretsError(
            f"{source}: service_account of member {member} lacks {', '.join(missing)}; "
            "store the whole key JSON there"
        )
    if raw["type"] != "service_account":
        kind = str(raw["type"])[:40]
        raise SecretsError(
            f"{source}: service_account of member {member} has type {kind!r}, not "
            "'service_account'; store a service account's JSON key there"
        )
    token_uri = str(raw["token_uri"])
    if not _safe_url(token_uri):
        raise SecretsError(
            f"{source}: service_account.token_uri of member {member} is not an https URL "
            f"({token_uri[:80]})"
        )
    return ServiceAccountKey(str(raw["client_email"]), token_uri, dict(raw))


def _endpoint(member: str, raw: Any, source: str) -> str:
    text = str(raw).strip().rstrip("/")
    if text.startswith("https://"):
        text = text[len("https://") :]
    if not text or "://" in text or "/" in text or any(c.isspace() for c in text):
        raise SecretsError(
            f"{source}: endpoint of member {member} is not a host or https://host "
            f"({str(raw)[:80]!r})"
        )
    return text


def _ca(member: str, raw: Any, source: str, hint: str = "") -> str:
    if str(raw).strip().encode().startswith(_PEM_CERTIFICATE):  # the PEM, not base64 of it
        return base64.b64encode(str(raw).strip().encode() + b"\n").decode()
    text = "".join(str(raw).split())
    try:
        pem = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pem = b""
    if _PEM_CERTIFICATE not in pem:
        raise SecretsError(
            f"{source}: ca_certificate of member {member} is not base64 of a PEM certificate{hint}"
        )
    return text


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _safe_url(url: str) -> bool:
    """https anywhere; plain http only to this machine (a bearer token or grant goes there)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS


# --- asking Google -------------------------------------------------------------------------


def access_token(
    key: ServiceAccountKey, member: str, source: str, *, timeout_s: float = TIMEOUT_S
) -> AccessToken:
    """A fresh cloud-platform access token for the service account, from its `token_uri`."""
    import requests
    from google.auth import exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    from_info = service_account.Credentials.from_service_account_info
    try:
        credentials = from_info(dict(key.info), scopes=[CLOUD_PLATFORM_SCOPE])  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, IndexError):
        # the message could quote the key; say only which field is at fault
        raise SecretsError(
            f"{source}: service_account.private_key of member {member} is not a usable "
            "private key; store the key JSON again"
        ) from None
    with requests.Session() as session:
        request = functools.partial(Request(session=session), timeout=timeout_s)
        try:
            credentials.refresh(request)
        except exceptions.RefreshError as err:
            raise SecretsError(_refused_message(key, member, source, err)) from err
        except exceptions.TransportError as err:
            raise ClusterError(
                f"member {member}: cannot reach the token endpoint {key.token_uri} "
                f"({network_reason(err)}); check this machine's network and proxy"
            ) from err
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise SecretsError(
            f"{source}: token endpoint {key.token_uri} gave no access token for member {member}"
        )
    expiry = credentials.expiry
    if isinstance(expiry, dt.datetime) and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.UTC)  # google-auth keeps naive UTC
    return AccessToken(token, expiry if isinstance(expiry, dt.datetime) else None)


def cluster_endpoint(
    cluster: GkeCluster,
    token: AccessToken,
    member: str,
    *,
    api: str = GKE_API,
    timeout_s: float = TIMEOUT_S,
) -> ClusterEndpoint:
    """The cluster's endpoint and CA, asked of the GKE API (when the secrets file has none)."""
    import requests

    if not _safe_url(api):
        raise ClusterError(f"member {member}: GKE API {api} is not an https URL")
    url = f"{api.rstrip('/')}/v1/{cluster.resource}"
    with requests.Session() as session:
        try:
            response = session.get(
                url, headers={"Authorization": f"Bearer {token.token}"}, timeout=timeout_s
            )
        except requests.RequestException as err:
            raise ClusterError(
                f"member {member}: cannot reach the GKE API at {api} ({network_reason(err)}); "
                "check this machine's network and proxy"
            ) from err
    status = response.status_code
    if status == 404:
        raise ClusterError(
            f"member {member}: GKE has no {cluster} (404); check the registry's gke block"
        )
    if status == 403:
        raise ClusterError(
            f"member {member}: GKE refused to show {cluster} (403); the service account needs "
            "roles/container.clusterViewer there and the Kubernetes Engine API must be enabled"
        )
    if status == 401:
        raise ClusterError(
            f"member {member}: GKE API at {api} did not accept the access token (401) for {cluster}"
        )
    if status != 200:
        raise ClusterError(f"member {member}: GKE API at {api} answered {status} for {cluster}")
    try:
        body = response.json()
    except ValueError:
        body = None
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    master_auth = body.get("masterAuth") if isinstance(body, dict) else None
    ca = master_auth.get("clusterCaCertificate") if isinstance(master_auth, dict) else None
    if not _text(endpoint) or not _text(ca):
        raise ClusterError(
            f"member {member}: GKE reports no endpoint and CA for {cluster}; is it still "
            "being created?"
        )
    try:
        return ClusterEndpoint(_endpoint(member, endpoint, api), _ca(member, ca, api))
    except SecretsError as err:  # said of the answer, not of a file
        raise ClusterError(f"GKE API {err}") from None


def network_reason(err: BaseException) -> str:
    """The short cause of a connection failure ("[Errno 111] Connection refused", "timed out")."""
    text = " ".join(str(e) for e in _chain(err))
    errno = re.search(r"\[Errno -?\d+\] [^'\"()\]]+", text)
    if errno:
        return errno.group(0).strip()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate is not trusted"
    if "timed out" in text.lower():
        return "timed out"
    return type(_chain(err)[-1]).__name__


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _refused_message(key: ServiceAccountKey, member: str, source: str, err: Exception) -> str:
    data = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], Mapping) else {}
    code = str(data.get("error", "")) or "refused"
    description = " ".join(str(data.get("error_description") or err.args[0]).split())[:160]
    if "signature" in description.lower():
        hint = (
            f"the key was deleted or disabled, or is not {key.client_email}'s; make a new key "
            f"and store it in {source}"
        )
    elif "iat" in description or "timeframe" in description or "short-lived" in description:
        hint = "check this machine's clock (the grant's iat/exp were rejected)"
    elif "account not found" in description.lower() or code == "invalid_client":
        hint = f"does the service account {key.client_email} still exist?"
    else:
        hint = f"check the key of {key.client_email} in {source}"
    return (
        f"{source}: token endpoint {key.token_uri} refused the key of member {member} "
        f"({code}: {description}); {hint}"
    )


# --- the kubeconfig ------------------------------------------------------------------------


def gke_kubeconfig(
    cluster: GkeCluster, endpoint: ClusterEndpoint, token: AccessToken
) -> dict[str, Any]:
    """A kubeconfig for the cluster with the token as its user, names as gcloud makes them."""
    name = cluster.context
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": endpoint.server,
                    "certificate-authority-data": endpoint.ca_certificate,
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token.token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def gke_credentials(
    member: str,
    cluster: GkeCluster,
    data: Any,
    source: str,
    *,
    context: str | None = None,
    discover_endpoint: bool = False,
    api: str = GKE_API,
    timeout_s: float = TIMEOUT_S,
) -> ClusterCredentials:
    """A GKE member's ClusterCredentials from its decrypted secrets file.

    Without an endpoint in the file, this is an error saying how to save one, unless
    `discover_endpoint`: then the GKE API at `api` is asked for it with the fresh token.
    """
    secrets = parse_gke_secrets(member, data, source)
    if secrets.endpoint is None and not discover_endpoint:
        raise SecretsError(no_endpoint_message(member, source))
    token = access_token(secrets.key, member, source, timeout_s=timeout_s)
    endpoint = secrets.endpoint or cluster_endpoint(
        cluster, token, member, api=api, timeout_s=timeout_s
    )
    kubeconfig = gke_kubeconfig(cluster, endpoint, token)
    creds = credentials_from_kubeconfig(member, kubeconfig, source, context)
    return dataclasses.replace(creds, expires_at=token.expires_at)
