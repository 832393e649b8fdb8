"""dns.check: a member's domain and a wildcard under it resolve to its public address.

The one DNS adapter (dnspython). Every query goes to one explicit resolver, chosen in this
order: `--resolver IP[:PORT]`, else the environment variable HUBFLEET_DNS_RESOLVER (from the
mapping the caller passes in), else the first `nameserver` of /etc/resolv.conf. A resolver is
always an IP address, never a name to look up. Nothing is queried at import or load time.

What "the member's public address" is:
- k3s / microk8s members: the `public_address` (default: `address`) of the first server host
  (k3s) or of the main host (microk8s), as the registry says.
- kubeconfig / gke members: the registry has no address for them, so it comes from an explicit
  `--address`, else from the member's values at `ingress-nginx.controller.service.loadBalancerIP`
  (the static IP the chart asks the cloud load balancer for), else it is an error saying so.
- `--address` wins for every provider (an operator who fronts a member with something else).

What is checked: the domain itself and a wildcard under it. The wildcard is probed with a random
label (`hubfleet-check-<random>.<domain>`) that only a wildcard record can answer. The record type
follows the address: A for IPv4, AAAA for IPv6. A record is ok when it resolves to exactly the
expected address (an extra address is a problem: some clients would go there).

Timeouts: each query has a 2 s budget. A timeout stops the whole check (one line naming the
record and the resolver) since nothing after it could be trusted or answered quickly.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.registry.members import Member
from hubfleet.registry.roles import entry_host

ENV_RESOLVER = "HUBFLEET_DNS_RESOLVER"
RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_PORT = 53
DEFAULT_TIMEOUT_S = 2.0
PROBE_PREFIX = "hubfleet-check-"
LOAD_BALANCER_IP = ("ingress-nginx", "controller", "service", "loadBalancerIP")
SELF_HOSTED = ("k3s", "microk8s")


class DnsError(HubfleetError):
    """The DNS check could not run, or found a record that is wrong."""


# --- the resolver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolver:
    """One DNS server every query goes to, and where that choice came from."""

    host: str
    port: int = DEFAULT_PORT
    origin: str = "--resolver"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def described(self) -> str:
        return f"{self} (from {self.origin})"


def _ip(text: str, origin: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError(
            f"{origin}: {text!r} is not an IP address; a DNS resolver is given as IP[:PORT]"
        ) from None


def parse_resolver(text: str, origin: str = "--resolver") -> Resolver:
    """`IP`, `IP:PORT`, `IPv6`, `[IPv6]` or `[IPv6]:PORT`; anything else names `origin`."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{origin}: {text!r} is not IP[:PORT] (use [IPv6]:PORT)")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    port = DEFAULT_PORT
    if port_text or value.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(f"{origin}: {text!r} has no valid port (1-65535)")
        port = int(port_text)
    return Resolver(_ip(host, origin), port, origin)


def system_resolver(resolv_conf: Path = RESOLV_CONF) -> Resolver:
    """The first `nameserver` in resolv.conf (port 53), as the system would use it."""
    shown = str(resolv_conf)
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError as err:
        raise DnsError(
            f"cannot read {shown} ({err.strerror}); pass --resolver IP[:PORT] or set {ENV_RESOLVER}"
        ) from None
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            return Resolver(_ip(words[1], shown), DEFAULT_PORT, shown)
    raise DnsError(f"{shown} names no nameserver; pass --resolver IP[:PORT] or set {ENV_RESOLVER}")


def choose_resolver(
    option: str | None, environ: Mapping[str, str], resolv_conf: Path = RESOLV_CONF
) -> Resolver:
    """--resolver, else HUBFLEET_DNS_RESOLVER in `environ`, else the system's resolver."""
    if option:
        return parse_resolver(option, "--resolver")
    from_env = environ.get(ENV_RESOLVER, "").strip()
    if from_env:
        return parse_resolver(from_env, ENV_RESOLVER)
    return system_resolver(resolv_conf)


# --- what the records should say ---------------------------------------------------------------


def _checked_address(text: str, member: Member, origin: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ConfigError(
            f"member {member.name}: {origin} {text!r} is not an IP address; "
            "DNS records point at an IP (pass --address IP)"
        ) from None


def _values_address(values: Mapping[str, Any] | None) -> Any:
    here: Any = values
    for key in LOAD_BALANCER_IP:
        if not isinstance(here, Mapping) or key not in here:
            return None
        here = here[key]
    return here


def expected_address(
    member: Member, address: str | None = None, values: Mapping[str, Any] | None = None
) -> str:
    """The IP the member's domain and wildcard must resolve to (see the module docstring)."""
    if address:
        return _checked_address(address, member, "--address")
    if member.provider in SELF_HOSTED:
        host, role = entry_host(member)
        return _checked_address(host.public, member, f"the public address of its {role}")
    found = _values_address(values)
    if found:
        return _checked_address(str(found), member, ".".join(LOAD_BALANCER_IP))
    raise ConfigError(
        f"member {member.name} is a {member.provider} member: the registry has no public "
        f"address for it; pass --address IP or set {'.'.join(LOAD_BALANCER_IP)} in its values"
    )


# --- the check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordCheck:
    """One record: what it resolves to against what it should be."""

    member: str
    name: str  # as shown: the domain, or *.domain for the wildcard
    queried: str  # the name actually asked (the random probe for the wildcard)
    rdtype: str  # A or AAAA
    expected: str
    found: tuple[str, ...]
    problem: str | None = None  # set when the record is wrong: one line, names the fix

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        if self.problem is None:
            return f"ok: {self.name} {self.rdtype} {self.expected}"
        return f"mismatch: {self.problem}"


def _probe_name(domain: str, label: str | None) -> str:
    return f"{label or PROBE_PREFIX + secrets.token_hex(6)}.{domain}"


def _judge(
    member: Member, shown: str, queried: str, rdtype: str, expected: str, found: tuple[str, ...]
) -> RecordCheck:
    who = f"member {member.name}: {shown}"
    record = f"{rdtype} record {shown}"
    problem: str | None = None
    if not found:
        problem = f"{who} has no {rdtype} record, should be {expected}: add the {record}"
    elif expected not in found:
        problem = f"{who} resolves to {', '.join(found)}, should be {expected}: fix the {record}"
    elif len(found) > 1:
        others = ", ".join(a for a in found if a != expected)
        problem = (
            f"{who} resolves to {', '.join(found)}, should be only {expected}: "
            f"remove {others} from the {record}"
        )
    return RecordCheck(member.name, shown, queried, rdtype, expected, found, problem)


def _query(
    member: Member,
    shown: str,
    queried: str,
    rdtype: str,
    expected: str,
    resolver: Resolver,
    timeout_s: float,
) -> RecordCheck:
    import dns.exception
    import dns.resolver

    client = dns.resolver.Resolver(configure=False)
    client.nameservers = [resolver.host]
    client.port = resolver.port
    client.timeout = timeout_s
    client.lifetime = timeout_s
    client.cache = None
    who = f"member {member.name}: {shown}"
    record = f"{rdtype} record {shown}"
    try:
        answer = client.resolve(f"{queried}.", rdtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        problem = (
            f"{who} does not exist (NXDOMAIN from {resolver}), should be {expected}: "
            f"add the {record}"
        )
        return RecordCheck(member.name, shown, queried, rdtype, expected, (), problem)
    except dns.resolver.NoNameservers as err:
        problem = (
            f"{who}: resolver {resolver} gave no usable answer ({_short(err)}), should be "
            f"{expected}: check the zone is served and the {record} exists"
        )
        return RecordCheck(member.name, shown, queried, rdtype, expected, (), problem)
    except dns.exception.Timeout:
        raise DnsError(
            f"member {member.name}: no answer for {record} within {timeout_s:g} s from DNS "
            f"resolver {resolver.described}; is it reachable?"
        ) from None
    found = tuple(sorted({str(ipaddress.ip_address(r.to_text())) for r in answer}))
    return _judge(member, shown, queried, rdtype, expected, found)


def _short(err: Exception) -> str:
    """dnspython's NoNameservers names each server's answer; keep just the rcode words."""
    text = str(err)
    for rcode in ("SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"):
        if rcode in text:
            return f"answered {rcode}"
    return text.splitlines()[0] if text else type(err).__name__


def check(
    member: Member,
    resolver: Resolver,
    expected: str | None = None,
    probe_label: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[RecordCheck]:
    """Query the domain and a wildcard probe under it; one RecordCheck each.

    `expected` defaults to `expected_address(member)` (self-hosted members only); a resolver
    that does not answer raises DnsError naming it.
    """
    address = expected if expected is not None else expected_address(member)
    address = _checked_address(address, member, "the expected address")
    rdtype = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    domain = member.domain.rstrip(".").lower()
    wanted = [(domain, domain), (f"*.{domain}", _probe_name(domain, probe_label))]
    return [
        _query(member, shown, queried, rdtype, address, resolver, timeout_s)
        for shown, queried in wanted
    ]


def require_ok(member: Member, checks: list[RecordCheck]) -> None:
    """A DnsError with the first problem (and how many more) when any record is wrong."""
    problems = [c for c in checks if not c.ok]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DnsError(f"{problems[0].problem}{more}")
