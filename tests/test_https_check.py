"""The HTTPS health check against real TLS servers on loopback, with certificates made here:
valid, for another name, expiring, expired, from Let's Encrypt's staging CA, self-signed."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubfleet.deploy.https_check import name_matches, probe_https

NOW = dt.datetime.now(dt.UTC)
Key = ec.EllipticCurvePrivateKey


def make_cert(
    subject: str,
    issuer: tuple[x509.Name, Key] | None,
    names: list[str],
    days: int,
    ca: bool = False,
) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    if subject.startswith("(STAGING)"):
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "(STAGING) Let's Encrypt"),
                x509.NameAttribute(NameOID.COMMON_NAME, subject),
            ]
        )
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=max(1, 1 - days)))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


@pytest.fixture
def trusted_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[x509.Name, Key]:
    """A CA this process trusts (through SSL_CERT_FILE, as OpenSSL reads it)."""
    cert, key = make_cert("Test Root R1", None, [], 3650, ca=True)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return cert.subject, key


Serve = Callable[[x509.Certificate, Key], str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`serve(cert, key)`: an HTTPS server on loopback presenting them; its base URL, named
    localhost. It answers /health with 200, anything else with 404."""
    servers: list[http.server.ThreadingHTTPServer] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    def start(cert: x509.Certificate, key: Key) -> str:
        pem = tmp_path / f"server{len(servers)}.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://localhost:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_valid_certificate_and_a_healthy_answer(
    trusted_ca: tuple[x509.Name, Key], serve: Serve
) -> None:
    url = serve(*make_cert("localhost", trusted_ca, ["localhost"], 89))
    report = probe_https(f"{url}/health")
    assert report.ok, report.problems
    assert report.certificate is not None and report.certificate.issuer == "Test Root R1"
    assert report.certificate.days_left() in (88, 89)
    assert report.summary().startswith("200; certificate 8")

    missing = probe_https(f"{url}/nope")
    assert not missing.ok and missing.problems == ("HTTP 404",)


def test_a_certificate_for_another_name(trusted_ca: tuple[x509.Name, Key], serve: Serve) -> None:
    url = serve(*make_cert("other", trusted_ca, ["other.example.org"], 60))
    report = probe_https(f"{url}/health")
    assert not report.ok
    assert report.problems[0] == "its certificate is for other.example.org, not localhost"
    assert "a browser refuses its certificate: Hostname mismatch" in report.problems[1]


def test_an_expiring_and_an_expired_certificate(
    trusted_ca: tuple[x509.Name, Key], serve: Serve
) -> None:
    soon = probe_https(f"{serve(*make_cert('localhost', trusted_ca, ['localhost'], 5))}/health")
    assert not soon.ok and soon.status == 200
    assert soon.problems[0].startswith(
        ("its certificate expires in 4 days", "its certificate expires in 5 days")
    )
    assert "renewal is failing" in soon.problems[0]

    gone = probe_https(f"{serve(*make_cert('localhost', trusted_ca, ['localhost'], -3))}/health")
    assert not gone.ok
    assert gone.problems[0].startswith("its certificate expired ")
    assert "certificate has expired" in gone.problems[1]


def test_a_staging_certificate_is_named_as_such(
    trusted_ca: tuple[x509.Name, Key], serve: Serve
) -> None:
    staging_ca = make_cert("(STAGING) Ersatz Edamame E1", None, [], 3650, ca=True)
    url = serve(*make_cert("localhost", (staging_ca[0].subject, staging_ca[1]), ["localhost"], 89))
    report = probe_https(f"{url}/health")
    assert report.certificate is not None and report.certificate.staging
    assert report.problems == (
        "its certificate is from Let's Encrypt's staging CA, which no browser trusts "
        "(support.issuer: letsencrypt-prod)",
    )
    assert "Let's Encrypt STAGING" in report.summary()


def test_a_self_signed_member_is_untrusted_by_design_but_still_checked(
    trusted_ca: tuple[x509.Name, Key], serve: Serve
) -> None:
    url = serve(*make_cert("localhost", None, ["localhost"], 89))
    assert "a browser refuses its certificate" in probe_https(f"{url}/health").problems[0]
    expected = probe_https(f"{url}/health", expect_trusted=False)
    assert expected.ok and expected.status == 200


def test_no_server_at_all() -> None:
    report = probe_https("https://localhost:9/health", timeout_s=1)
    assert not report.ok and report.problems[0].startswith("no TLS answer from localhost:9")


def test_names_match_as_browsers_match_them() -> None:
    assert name_matches(("hub.example.org",), "HUB.example.org")
    assert name_matches(("*.example.org",), "hub.example.org")
    assert not name_matches(("*.example.org",), "a.hub.example.org")
    assert not name_matches(("*.example.org",), "example.org")


def test_the_public_hosts_of_both_releases_are_checked() -> None:
    from hubfleet.deploy.health import health_checks

    tls = [{"secretName": "x", "hosts": ["h"]}]
    values = {
        "binderhub": {
            "ingress": {"enabled": True, "hosts": ["b.example.org"], "tls": tls},
            "jupyterhub": {
                "ingress": {"enabled": True, "hosts": ["hub.b.example.org"], "tls": tls}
            },
        },
        "harborEnabled": True,
        "harbor": {
            "expose": {
                "type": "ingress",
                "tls": {"enabled": True},
                "ingress": {"hosts": {"core": "registry.b.example.org"}},
            }
        },
    }
    support = {
        "grafanaEnabled": True,
        "grafana": {"ingress": {"enabled": True, "hosts": ["grafana.b.example.org"], "tls": tls}},
    }
    assert [(c.name, c.url) for c in health_checks(values, support)] == [
        ("hub", "https://hub.b.example.org/hub/api/health"),
        ("binder", "https://b.example.org/health"),
        ("registry", "https://registry.b.example.org/api/v2.0/ping"),
        ("grafana", "https://grafana.b.example.org/login"),
    ]
    assert [c.name for c in health_checks({**values, "harborEnabled": False})] == ["hub", "binder"]


def test_a_deploys_health_check_names_the_certificate_or_what_is_wrong_with_it(
    trusted_ca: tuple[x509.Name, Key], serve: Serve
) -> None:
    from hubfleet.deploy.health import HealthCheck, run_health_checks
    from hubfleet.errors import HubfleetError

    good = serve(*make_cert("localhost", trusted_ca, ["localhost"], 60))
    said: list[str] = []
    run_health_checks("alpha", [HealthCheck("binder", f"{good}/health")], say=said.append)
    assert said[0].startswith(f"  health binder: {good}/health ok (200; certificate 5")
    assert said[0].endswith("days left (issuer Test Root R1))")

    # traefik's own certificate, before cert-manager has issued the member's
    pending = serve(*make_cert("TRAEFIK DEFAULT CERT", None, ["traefik.default"], 365))
    with pytest.raises(HubfleetError) as caught:
        run_health_checks(
            "alpha", [HealthCheck("binder", f"{pending}/health")], timeout_s=0.3, interval_s=0.1
        )
    message = str(caught.value)
    assert message.startswith(f"member alpha: binder health check {pending}/health failed")
    assert "its certificate is for traefik.default, not localhost" in message
