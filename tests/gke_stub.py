"""A STUB of Google's OAuth2 token endpoint and of the GKE API's "get cluster", on 127.0.0.1.

This is not Google and talks to nothing else: it is a test double for hubfleet.cloud.gke, an
http.server in a thread on an ephemeral loopback port. What it does, it does for real:

- `POST /token` implements the JWT-bearer grant (RFC 7523) as Google's token endpoint answers
  it: the form's `assertion` is an RS256 JWT whose signature is checked with the public key
  registered for its issuer (`add_account`), and whose `iss`, `aud`, `scope` (must hold
  cloud-platform) and `iat`/`exp` are checked. `aud` must be Google's token endpoint URL, as
  at Google: google-auth always signs that audience, whatever `token_uri` the key names (the
  key's token_uri only says where the grant is sent). A good grant gets a fresh
  random access token (recorded in `issued`); a bad one gets Google's 400 `invalid_grant`.
- `GET /v1/projects/P/locations/L/clusters/C` answers the clusters added with `add_cluster`
  (endpoint and masterAuth.clusterCaCertificate), only to a bearer token it issued; unknown
  clusters are 404, ones in `forbidden` 403, other tokens 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_LIFETIME_S = 3600
MAX_ASSERTION_LIFETIME_S = 3600
CLOCK_LEEWAY_S = 60
BAD_SIGNATURE = "Invalid JWT Signature."
BAD_TIMEFRAME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
_CLUSTER_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/clusters/([^/]+)$")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    client_email: str
    scope: str
    expires_at: float


class _GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class GkeStub:
    """The stub token endpoint and GKE API: `start()` it, `stop()` it (or use `with`)."""

    def __init__(self) -> None:
        self.accounts: dict[str, rsa.RSAPublicKey] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.forbidden: set[str] = set()
        self.issued: list[IssuedToken] = []
        self.requests: list[str] = []  # "METHOD /path STATUS"
        self.clock_offset_s = 0.0  # the stub's clock minus this machine's (to fake skew)
        self.audience = GOOGLE_TOKEN_AUDIENCE  # the `aud` a grant must name
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> GkeStub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="gke-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GkeStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "stub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    # --- test helpers ------------------------------------------------------------------------

    def add_account(self, client_email: str, public_key: rsa.RSAPublicKey) -> None:
        """A service account whose grants, signed by the matching private key, are good."""
        self.accounts[client_email] = public_key

    def add_cluster(
        self, project: str, location: str, name: str, endpoint: str, ca_certificate: str
    ) -> None:
        self.clusters[f"{project}/{location}/{name}"] = {
            "name": name,
            "location": location,
            "endpoint": endpoint,
            "masterAuth": {"clusterCaCertificate": ca_certificate},
            "status": "RUNNING",
        }

    def tokens(self) -> list[str]:
        with self._lock:
            return [t.token for t in self.issued]

    def issued_to(self, token: str) -> str | None:
        """The client_email the token was issued to, None if the stub never issued it."""
        with self._lock:
            return next((t.client_email for t in self.issued if t.token == token), None)

    # --- the endpoints -------------------------------------------------------------------------

    def grant(self, form: dict[str, list[str]]) -> dict[str, Any]:
        """The token endpoint's answer to a JWT-bearer grant, or a _GrantError."""
        if form.get("grant_type") != [JWT_BEARER]:
            raise _GrantError("unsupported_grant_type", "Invalid grant_type.")
        assertions = form.get("assertion", [])
        if len(assertions) != 1:
            raise _GrantError("invalid_request", "Missing required parameter: assertion")
        claims = self._verified_claims(assertions[0])
        scope = str(claims.get("scope", ""))
        if CLOUD_PLATFORM_SCOPE not in scope.split():
            raise _GrantError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        issued = IssuedToken(
            token=f"ya29.stub-{secrets.token_urlsafe(32)}",
            client_email=str(claims["iss"]),
            scope=scope,
            expires_at=self._now() + TOKEN_LIFETIME_S,
        )
        with self._lock:
            self.issued.append(issued)
        return {
            "access_token": issued.token,
            "expires_in": TOKEN_LIFETIME_S,
            "token_type": "Bearer",
        }

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _GrantError("invalid_grant", "Invalid JWT: malformed.")
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            raise _GrantError("invalid_grant", "Invalid JWT: malformed.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _GrantError("invalid_grant", "Invalid JWT: malformed.")
        if header.get("alg") != "RS256":
            raise _GrantError("invalid_grant", BAD_SIGNATURE)
        key = self.accounts.get(str(claims.get("iss")))
        if key is None:  # Google says the same for a key it does not know
            raise _GrantError("invalid_grant", BAD_SIGNATURE)
        try:
            key.verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise _GrantError("invalid_grant", BAD_SIGNATURE) from None
        if claims.get("aud") != self.audience:
            raise _GrantError("invalid_grant", "Invalid JWT: Failed audience check.")
        iat, exp, now = claims.get("iat"), claims.get("exp"), self._now()
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise _GrantError("invalid_grant", BAD_TIMEFRAME)
        if (
            iat > now + CLOCK_LEEWAY_S
            or exp <= now - CLOCK_LEEWAY_S
            or exp <= iat
            or exp - iat > MAX_ASSERTION_LIFETIME_S
        ):
            raise _GrantError("invalid_grant", BAD_TIMEFRAME)
        return claims

    def cluster(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The GKE API's answer to a cluster get: (status, body)."""
        match = _CLUSTER_PATH.match(path)
        if match is None:
            return 404, _api_error(404, "NOT_FOUND", f"Not found: {path}")
        bearer = (authorization or "").removeprefix("Bearer ")
        with self._lock:
            known = any(t.token == bearer and t.expires_at > self._now() for t in self.issued)
        if not authorization or not authorization.startswith("Bearer ") or not known:
            return 401, _api_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        project, location, name = match.groups()
        resource = f"{project}/{location}/{name}"
        if resource in self.forbidden:
            return 403, _api_error(
                403, "PERMISSION_DENIED", 'Required "container.clusters.get" permission(s).'
            )
        if resource not in self.clusters:
            return 404, _api_error(
                404,
                "NOT_FOUND",
                f"Not found: projects/{project}/locations/{location}/clusters/{name}.",
            )
        return 200, self.clusters[resource]

    def _now(self) -> float:
        return time.time() + self.clock_offset_s

    def _record(self, line: str) -> None:
        with self._lock:
            self.requests.append(line)


def _api_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    server_version = "gke-stub"

    @property
    def stub(self) -> GkeStub:
        return self.server.stub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        if self.path != "/token":
            self._answer(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        if not (self.headers.get("Content-Type") or "").startswith(
            "application/x-www-form-urlencoded"
        ):
            self._answer(400, {"error": "invalid_request", "error_description": "Bad form."})
            return
        try:
            answer = self.stub.grant(parse_qs(body))
        except _GrantError as err:
            self._answer(400, {"error": err.error, "error_description": err.description})
            return
        self._answer(200, answer)

    def do_GET(self) -> None:
        status, body = self.stub.cluster(self.path, self.headers.get("Authorization"))
        self._answer(status, body)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.stub._record(f"{self.command} {self.path} {status}")
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
