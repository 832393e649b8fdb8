"""A member's support release: the cluster-wide parts (traefik, cert-manager and its
ClusterIssuers, prometheus and grafana) deployed before its hub, as the registry's `support`
block says. A member without the block runs none (its cluster has them, or it predates them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hubfleet.errors import ConfigError
from hubfleet.registry.members import Member

SUPPORT_RELEASE = "support"
PARTS = ("support", "member")  # a member's releases, in deploy order


def check_part(part: str, flag: str) -> None:
    """A release named on the command line: support or member, else a one-line error."""
    if part not in PARTS:
        raise ConfigError(f"{flag}: {part!r} is not a release of a member (use support or member)")


@dataclass(frozen=True)
class Support:
    """The member's `support` block, defaults filled in."""

    ingress: bool
    cert_manager: bool
    monitoring: bool
    issuer: str
    email: str | None
    ingress_class: str
    entrypoint: str
    load_balancer_ip: str | None
    namespace: str
    chart: str


def support_of(member: Member) -> Support | None:
    """The member's support settings, or None when it runs no support release."""
    block = member.record.get("support")
    if not isinstance(block, dict) or block.get("enabled") is False:
        return None
    return Support(
        ingress=bool(block.get("ingress", True)),
        cert_manager=bool(block.get("cert_manager", True)),
        monitoring=bool(block.get("monitoring", True)),
        issuer=str(block.get("issuer", "letsencrypt-prod")),
        email=block.get("email"),
        ingress_class=str(block.get("ingress_class", "traefik")),
        entrypoint=str(block.get("entrypoint", "loadbalancer")),
        load_balancer_ip=block.get("load_balancer_ip"),
        namespace=str(block.get("namespace", SUPPORT_RELEASE)),
        chart=str(block.get("chart", "support")),
    )


def support_release(member: Member) -> Member | None:
    """The member as its support release (chart, release and namespace of the support part),
    or None when it runs none."""
    support = support_of(member)
    if support is None:
        return None
    return replace(
        member,
        part="support",
        chart=support.chart,
        release=SUPPORT_RELEASE,
        namespace=support.namespace,
    )


def releases(member: Member, only: str | None = None) -> list[Member]:
    """The member's releases in deploy order (support, then the hub), or the one `only` names
    ("support" or "member")."""
    support = support_release(member)
    ordered = [r for r in (support, member) if r is not None]
    if only is None:
        return ordered
    return [r for r in ordered if r.part == only]
