"""dns.check: a member's domain and its wildcard resolve to the member's public address.

Thin: flags in, hubfleet.cloud.dns out.
"""

from __future__ import annotations

from invoke.context import Context

from hubfleet.cli import run_front
from hubfleet.tasks.conventions import DEBUG_HELP, task


@task(
    help={
        "member": "the member, as named in config/federation.yaml",
        "resolver": "DNS server to ask, IP[:PORT] (default: $HUBFLEET_DNS_RESOLVER, "
        "else the first nameserver of /etc/resolv.conf)",
        "address": "the IP the records must point at (default: the first server/main host's "
        "public address; kubeconfig/gke members: ingress-nginx.controller.service."
        "loadBalancerIP from the values)",
        "debug": DEBUG_HELP,
    }
)
def check(
    c: Context,
    member: str,
    resolver: str | None = None,
    address: str | None = None,
    debug: bool = False,
) -> None:
    """Check that DOMAIN and *.DOMAIN resolve to the member's public address (A, or AAAA).

    Prints one line per record; exits 1 when any record is missing or points elsewhere.
    """

    def body() -> None:
        import os

        from hubfleet.cloud import dns
        from hubfleet.console import Console
        from hubfleet.files.repo import find_repo
        from hubfleet.registry.members import load_registry

        repo = find_repo()
        record = load_registry(repo).member(member)
        chosen = dns.choose_resolver(resolver, os.environ)
        values = None
        if not address and record.provider not in dns.SELF_HOSTED:
            from hubfleet.values.layers import member_values

            values = member_values(repo, record).effective.values
        expected = dns.expected_address(record, address, values)
        console = Console()
        with console.waiting(
            f"member {record.name}: asking {chosen.described} for {record.domain}"
        ):
            checks = dns.check(record, chosen, expected)
        for result in checks:
            console.say(result.line())
        dns.require_ok(record, checks)

    run_front(body, debug)
