"""A member's public hosts as a user's browser sees them: the certificate each one presents
(its names, its issuer, the days it has left, whether it is Let's Encrypt's staging one) and
whether a client that trusts the system's CAs accepts it, then the answer to one GET.

Trust is OpenSSL's default (SSL_CERT_FILE and SSL_CERT_DIR are honoured). A member whose
issuer is `selfsigned` is expected to be untrusted; its names and dates are still checked.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.client
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

RENEW_WARNING_DAYS = 14  # cert-manager renews 30 days before the end: this late, it failed
MAX_BODY = 64 * 1024  # what a health or versions answer may be (more is not read)


@dataclass(frozen=True)
class Certificate:
    names: tuple[str, ...]  # DNS names it is valid for (subjectAltName)
    issuer: str
    not_after: dt.datetime
    staging: bool  # issued by Let's Encrypt's staging CA: no browser trusts it

    def days_left(self, now: dt.datetime | None = None) -> int:
        return (self.not_after - (now or dt.datetime.now(dt.UTC))).days


@dataclass(frozen=True)
class HttpsReport:
    url: str
    status: int | None
    certificate: Certificate | None
    problems: tuple[str, ...]
    body: bytes = b""  # the answer's first MAX_BODY bytes

    @property
    def ok(self) -> bool:
        return not self.problems and self.status is not None and 200 <= self.status < 300

    def summary(self) -> str:
        cert = self.certificate
        if cert is None:
            return f"HTTP {self.status}" if self.status else "no answer"
        staging = ", Let's Encrypt STAGING" if cert.staging else ""
        return (
            f"{self.status}; certificate {cert.days_left()} days left "
            f"(issuer {cert.issuer}{staging})"
        )


def parse_certificate(der: bytes) -> Certificate:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    common = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    issuer = str((common or org)[0].value) if (common or org) else cert.issuer.rfc4514_string()
    staging = "(STAGING)" in cert.issuer.rfc4514_string()
    return Certificate(names, issuer, cert.not_valid_after_utc, staging)


def name_matches(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate for `names` is valid for `host` (a wildcard covers one label)."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


class _Connection(http.client.HTTPSConnection):
    """HTTPS to host:port with SNI and Host set to the host, through a given context."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float):
        super().__init__(host, port, context=context, timeout=timeout)
        self.tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.host)


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=4)
def _trusting(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """The system's trust (as OpenSSL finds it), loaded once: reading a CA bundle takes longer
    than a TLS handshake on loopback."""
    return ssl.create_default_context()


def _trusted() -> ssl.SSLContext:
    return _trusting(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def probe_https(url: str, expect_trusted: bool = True, timeout_s: float = 5.0) -> HttpsReport:
    """GET `url` over HTTPS and judge its certificate as a browser would."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with (
            socket.create_connection((host, port), timeout_s) as raw,
            _unverified().wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as err:
        return HttpsReport(url, None, None, (f"no TLS answer from {host}:{port} ({err})",))
    if not der:
        return HttpsReport(url, None, None, (f"{host}:{port} presented no certificate",))
    cert = parse_certificate(der)
    problems: list[str] = []
    days = cert.days_left()
    if days < 0:
        problems.append(f"its certificate expired {-days} days ago")
    elif days < RENEW_WARNING_DAYS:
        problems.append(
            f"its certificate expires in {days} days; cert-manager renews 30 days before the "
            "end, so renewal is failing (kubectl describe certificate)"
        )
    if not name_matches(cert.names, host):
        shown = ", ".join(cert.names) or "no DNS name"
        problems.append(f"its certificate is for {shown}, not {host}")
    if cert.staging and expect_trusted:
        problems.append(
            "its certificate is from Let's Encrypt's staging CA, which no browser trusts "
            "(support.issuer: letsencrypt-prod)"
        )
    context = _trusted() if expect_trusted else _unverified()
    connection = _Connection(host, port, context, timeout_s)
    status: int | None = None
    body = b""
    try:
        connection.request("GET", path, headers={"User-Agent": "hubfleet-health"})
        response = connection.getresponse()
        status = response.status
        body = response.read(MAX_BODY)
    except ssl.SSLCertVerificationError as err:
        if not cert.staging:  # said above, more usefully
            problems.append(f"a browser refuses its certificate: {err.verify_message}")
    except (OSError, ssl.SSLError, http.client.HTTPException) as err:
        problems.append(f"no HTTPS answer ({err})")
    finally:
        connection.close()
    if status is not None and not 200 <= status < 300:
        problems.append(f"HTTP {status}")
    return HttpsReport(url, status, cert, tuple(problems), body)
