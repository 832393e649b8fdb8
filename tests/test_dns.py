"""dns.check against a real DNS server (dnsmasq on 127.0.0.1, tests/conftest_dns.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context

from hubfleet.cloud import dns
from hubfleet.errors import ConfigError
from hubfleet.registry.members import Member, member_from_record
from hubfleet.tasks import dns as dns_tasks
from tests.conftest_dns import DnsServer, apex_only, nxdomain, wildcard_only, zone
from tests.conftest_repo import MakeRepo

pytest_plugins = ["tests.conftest_dns"]

DOMAIN = "binder.example.org"
PUBLIC = "203.0.113.10"
WRONG = "198.51.100.7"
PROBE = "hubfleet-check-test"


def k3s_member(public: str = PUBLIC, domain: str = DOMAIN) -> Member:
    return member_from_record(
        "m1",
        {
            "stage": "staging",
            "provider": "k3s",
            "domain": domain,
            "hosts": [
                {"address": "10.0.0.5", "role": "agent"},
                {"address": "10.0.0.4", "public_address": public},
                {"address": "10.0.0.6", "public_address": "192.0.2.99"},
            ],
        },
    )


def run_check(member: Member, server: DnsServer, **kwargs: Any) -> list[dns.RecordCheck]:
    return dns.check(member, dns.parse_resolver(server.resolver), probe_label=PROBE, **kwargs)


# --- the check against a real server ------------------------------------------------------------


def test_domain_and_wildcard_ok(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, PUBLIC))
    checks = run_check(k3s_member(), dns_server)
    assert [(c.name, c.queried, c.rdtype, c.found, c.ok) for c in checks] == [
        (DOMAIN, DOMAIN, "A", (PUBLIC,), True),
        (f"*.{DOMAIN}", f"{PROBE}.{DOMAIN}", "A", (PUBLIC,), True),
    ]
    assert [c.line() for c in checks] == [f"ok: {DOMAIN} A {PUBLIC}", f"ok: *.{DOMAIN} A {PUBLIC}"]
    assert dns_server.queries() == [f"A {DOMAIN}", f"A {PROBE}.{DOMAIN}"]
    dns.require_ok(k3s_member(), checks)


def test_wildcard_probe_is_random_by_default(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, PUBLIC))
    first, second = (
        dns.check(k3s_member(), dns.parse_resolver(dns_server.resolver))[1] for _ in range(2)
    )
    assert first.ok and second.ok
    assert first.queried != second.queried
    assert first.queried.startswith(dns.PROBE_PREFIX) and first.queried.endswith(f".{DOMAIN}")


def test_wildcard_missing(dns_server: DnsServer) -> None:
    dns_server.serve(*apex_only(DOMAIN, PUBLIC))
    apex, wildcard = run_check(k3s_member(), dns_server)
    assert apex.ok
    assert not wildcard.ok and wildcard.found == ()
    assert wildcard.problem == (
        f"member m1: *.{DOMAIN} does not exist (NXDOMAIN from {dns_server.resolver}), "
        f"should be {PUBLIC}: add the A record *.{DOMAIN}"
    )
    with pytest.raises(dns.DnsError, match=r"^member m1: \*\.binder\.example\.org does not"):
        dns.require_ok(k3s_member(), [apex, wildcard])


def test_apex_points_elsewhere(dns_server: DnsServer) -> None:
    dns_server.serve(*apex_only(DOMAIN, WRONG)[1:], *wildcard_only(DOMAIN, PUBLIC))
    apex, wildcard = run_check(k3s_member(), dns_server)
    assert wildcard.ok
    assert apex.found == (WRONG,)
    assert apex.problem == (
        f"member m1: {DOMAIN} resolves to {WRONG}, should be {PUBLIC}: fix the A record {DOMAIN}"
    )
    assert apex.line().startswith("mismatch: member m1: binder.example.org resolves to")


def test_both_wrong_reports_first_and_count(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, WRONG))
    checks = run_check(k3s_member(), dns_server)
    assert [c.ok for c in checks] == [False, False]
    assert checks[1].problem == (
        f"member m1: *.{DOMAIN} resolves to {WRONG}, should be {PUBLIC}: fix the A record *.{DOMAIN}"
    )
    with pytest.raises(dns.DnsError, match=r"resolves to 198\.51\.100\.7.* \(and 1 more\)$"):
        dns.require_ok(k3s_member(), checks)


def test_extra_address_is_a_problem(dns_server: DnsServer) -> None:
    dns_server.serve(f"--host-record={DOMAIN},{PUBLIC}", f"--host-record={DOMAIN},{WRONG}")
    apex, _ = run_check(k3s_member(), dns_server)
    assert apex.found == tuple(sorted((PUBLIC, WRONG)))
    assert apex.problem is not None
    assert f"should be only {PUBLIC}: remove {WRONG} from the A record {DOMAIN}" in apex.problem


def test_nxdomain(dns_server: DnsServer) -> None:
    dns_server.serve(*nxdomain(DOMAIN))
    checks = run_check(k3s_member(), dns_server)
    assert [c.ok for c in checks] == [False, False]
    assert checks[0].problem is not None
    assert checks[0].problem.startswith(f"member m1: {DOMAIN} does not exist (NXDOMAIN from")


def test_zone_not_served_is_refused(dns_server: DnsServer) -> None:
    dns_server.serve(*zone("other.example.net", PUBLIC))
    apex, _ = run_check(k3s_member(), dns_server)
    assert apex.problem == (
        f"member m1: {DOMAIN}: resolver {dns_server.resolver} gave no usable answer "
        f"(answered REFUSED), should be {PUBLIC}: check the zone is served and the A record "
        f"{DOMAIN} exists"
    )


def test_ipv6_address_checks_aaaa(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, "2001:db8::10"))
    checks = run_check(k3s_member(public="2001:DB8:0::10"), dns_server)
    assert [(c.rdtype, c.found, c.ok) for c in checks] == [
        ("AAAA", ("2001:db8::10",), True),
        ("AAAA", ("2001:db8::10",), True),
    ]
    assert dns_server.queries() == [f"AAAA {DOMAIN}", f"AAAA {PROBE}.{DOMAIN}"]


def test_ipv6_missing_aaaa(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, PUBLIC))  # A records only: AAAA is NODATA
    apex, _ = run_check(k3s_member(public="2001:db8::10"), dns_server)
    assert apex.problem == (
        f"member m1: {DOMAIN} has no AAAA record, should be 2001:db8::10: "
        f"add the AAAA record {DOMAIN}"
    )


def test_restart_with_other_records(dns_server: DnsServer) -> None:
    dns_server.serve(*zone(DOMAIN, WRONG))
    assert not run_check(k3s_member(), dns_server)[0].ok
    port = dns_server.port
    dns_server.restart(*zone(DOMAIN, PUBLIC))
    assert dns_server.port == port
    assert all(c.ok for c in run_check(k3s_member(), dns_server))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 UDP port with a socket bound that never answers (nothing else can take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_resolver_unreachable_times_out_naming_it(closed_port: int) -> None:
    resolver = dns.parse_resolver(f"127.0.0.1:{closed_port}")
    started = time.monotonic()
    with pytest.raises(dns.DnsError) as caught:
        dns.check(k3s_member(), resolver)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert str(caught.value) == (
        f"member m1: no answer for A record {DOMAIN} within 2 s from DNS resolver "
        f"127.0.0.1:{closed_port} (from --resolver); is it reachable?"
    )


def test_nothing_listening_is_a_timeout_too() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    resolver = dns.parse_resolver(f"127.0.0.1:{port}", dns.ENV_RESOLVER)
    with pytest.raises(dns.DnsError, match=r"from HUBFLEET_DNS_RESOLVER\); is it reachable\?$"):
        dns.check(k3s_member(), resolver, timeout_s=0.3)


# --- the expected address ----------------------------------------------------------------------


def test_expected_address_k3s_first_server_public() -> None:
    assert dns.expected_address(k3s_member()) == PUBLIC


def test_expected_address_k3s_falls_back_to_address() -> None:
    member = member_from_record(
        "m1",
        {"stage": "prod", "provider": "k3s", "domain": DOMAIN, "hosts": [{"address": "192.0.2.1"}]},
    )
    assert dns.expected_address(member) == "192.0.2.1"


def test_expected_address_microk8s_main_host() -> None:
    member = member_from_record(
        "mk",
        {
            "stage": "prod",
            "provider": "microk8s",
            "domain": DOMAIN,
            "microk8s": {},
            "hosts": [
                {"address": "10.1.0.2", "role": "worker"},
                {"address": "10.1.0.1", "role": "main", "public_address": "192.0.2.7"},
            ],
        },
    )
    assert dns.expected_address(member) == "192.0.2.7"


def test_expected_address_hostname_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^member m1: the public address of its first server"):
        dns.expected_address(k3s_member(public="node1.example.org"))


def kubeconfig_member() -> Member:
    return member_from_record("cloud", {"stage": "prod", "provider": "gke", "domain": DOMAIN})


def test_expected_address_cloud_member() -> None:
    member = kubeconfig_member()
    values = {"ingress-nginx": {"controller": {"service": {"loadBalancerIP": "192.0.2.50"}}}}
    assert dns.expected_address(member, values=values) == "192.0.2.50"
    assert dns.expected_address(member, "192.0.2.51", values) == "192.0.2.51"
    with pytest.raises(ConfigError) as caught:
        dns.expected_address(member, values={"ingress-nginx": {"controller": {}}})
    assert str(caught.value) == (
        "member cloud is a gke member: the registry has no public address for it; pass "
        "--address IP or set ingress-nginx.controller.service.loadBalancerIP in its values"
    )
    with pytest.raises(ConfigError, match=r"^member cloud: --address 'lb\.example' is not an IP"):
        dns.expected_address(member, "lb.example")


# --- choosing the resolver (no queries) --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("::1", "::1", 53),
        ("[::1]", "::1", 53),
        ("[::1]:5353", "::1", 5353),
    ],
)
def test_parse_resolver(text: str, host: str, port: int) -> None:
    resolver = dns.parse_resolver(text)
    assert (resolver.host, resolver.port) == (host, port)


def test_resolver_shown_with_brackets_for_ipv6() -> None:
    assert str(dns.parse_resolver("[::1]:5353")) == "[::1]:5353"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dns.example", r"^--resolver: 'dns.example' is not an IP address"),
        ("127.0.0.1:", r"^--resolver: '127.0.0.1:' has no valid port"),
        ("127.0.0.1:99999", r"has no valid port"),
        ("[::1", r"is not IP\[:PORT\]"),
    ],
)
def test_parse_resolver_rejects(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dns.parse_resolver(text)


def test_choose_resolver_order(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    env = {dns.ENV_RESOLVER: "127.0.0.2:5300"}
    assert dns.choose_resolver("127.0.0.3", env, conf).described == "127.0.0.3:53 (from --resolver)"
    assert dns.choose_resolver(None, env, conf).described == (
        "127.0.0.2:5300 (from HUBFLEET_DNS_RESOLVER)"
    )
    assert dns.choose_resolver(None, {}, conf).described == f"192.0.2.53:53 (from {conf})"


def test_system_resolver_problems(tmp_path: Path) -> None:
    empty = tmp_path / "resolv.conf"
    empty.write_text("search example.org\n")
    with pytest.raises(dns.DnsError, match=r"names no nameserver; pass --resolver"):
        dns.choose_resolver(None, {}, empty)
    with pytest.raises(dns.DnsError, match=r"^cannot read .*missing"):
        dns.choose_resolver(None, {}, tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"^HUBFLEET_DNS_RESOLVER: 'x' is not an IP"):
        dns.choose_resolver(None, {dns.ENV_RESOLVER: "x"}, empty)


# --- the task (called directly: the dns collection is registered elsewhere) -------------------


@pytest.fixture
def k3s_repo(deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = deploy_repo(
        {
            "m1": {
                "provider": "k3s",
                "domain": DOMAIN,
                "hosts": [{"address": "10.0.0.4", "public_address": PUBLIC}],
            }
        }
    )
    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    monkeypatch.delenv(dns.ENV_RESOLVER, raising=False)
    return repo.root


def test_task_ok(k3s_repo: Path, dns_server: DnsServer, capsys: pytest.CaptureFixture[str]) -> None:
    dns_server.serve(*zone(DOMAIN, PUBLIC))
    dns_tasks.check(Context(), "m1", resolver=dns_server.resolver)
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        f"member m1: asking {dns_server.resolver} (from --resolver) for {DOMAIN}",
        f"ok: {DOMAIN} A {PUBLIC}",
        f"ok: *.{DOMAIN} A {PUBLIC}",
    ]
    assert out.err == ""


def test_task_mismatch_exits_1(
    k3s_repo: Path,
    dns_server: DnsServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(dns.ENV_RESOLVER, dns_server.resolver)
    dns_server.serve(f"--host-record={DOMAIN},{PUBLIC}", *wildcard_only(DOMAIN, WRONG))
    with pytest.raises(SystemExit) as exited:
        dns_tasks.check(Context(), "m1")
    assert exited.value.code == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].endswith("(from HUBFLEET_DNS_RESOLVER) for binder.example.org")
    assert lines[1] == f"ok: {DOMAIN} A {PUBLIC}"
    assert lines[2] == (
        f"mismatch: member m1: *.{DOMAIN} resolves to {WRONG}, should be {PUBLIC}: "
        f"fix the A record *.{DOMAIN}"
    )
    assert out.err == (
        f"error: member m1: *.{DOMAIN} resolves to {WRONG}, should be {PUBLIC}: "
        f"fix the A record *.{DOMAIN}\n"
    )


def test_task_unknown_member_and_bad_resolver(
    k3s_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        dns_tasks.check(Context(), "m2", resolver="127.0.0.1:1")
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("error: unknown member 'm2'")
    with pytest.raises(SystemExit):
        dns_tasks.check(Context(), "m1", resolver="resolver.example")
    assert capsys.readouterr().err == (
        "error: --resolver: 'resolver.example' is not an IP address; "
        "a DNS resolver is given as IP[:PORT]\n"
    )


def test_task_unreachable_resolver(
    k3s_repo: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        dns_tasks.check(Context(), "m1", resolver=f"127.0.0.1:{closed_port}")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: member m1: no answer for A record {DOMAIN} within 2 s")
    assert f"127.0.0.1:{closed_port} (from --resolver)" in err


def test_task_cloud_member_from_values(
    deploy_repo: MakeRepo,
    dns_server: DnsServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lb = "192.0.2.50"
    repo = deploy_repo(
        {"cloud": {"provider": "kubeconfig", "domain": DOMAIN}},
        values={"cloud": {"ingress-nginx": {"controller": {"service": {"loadBalancerIP": lb}}}}},
    )
    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    dns_server.serve(*zone(DOMAIN, lb))
    dns_tasks.check(Context(), "cloud", resolver=dns_server.resolver)
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"ok: {DOMAIN} A {lb}",
        f"ok: *.{DOMAIN} A {lb}",
    ]
    with pytest.raises(SystemExit):
        dns_tasks.check(Context(), "cloud", resolver=dns_server.resolver, address=PUBLIC)
    assert f"mismatch: member cloud: {DOMAIN} resolves to {lb}" in capsys.readouterr().out
