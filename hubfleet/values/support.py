"""The values of a member's support release that come from its registry `support` block:
which parts run, the issuers' ACME contact and ingress class, and how traffic reaches traefik.
Only parts that run get values, so no value is left that no chart reads."""

from __future__ import annotations

from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.registry.members import Member
from hubfleet.registry.support import support_of


def support_values(member: Member) -> dict[str, Any]:
    support = support_of(member)
    if support is None:
        raise ConfigError(f"member {member.name}: runs no support release (no support block)")
    values: dict[str, Any] = {
        "certManagerEnabled": support.cert_manager,
        "traefikEnabled": support.ingress,
        "prometheusEnabled": support.monitoring,
        "grafanaEnabled": support.monitoring,
        "issuers": {"email": support.email or "", "ingressClass": support.ingress_class},
    }
    if support.ingress:
        traefik: dict[str, Any] = {"ingressClass": {"name": support.ingress_class}}
        if support.entrypoint == "hostports":
            # each node answers on 80 and 443 itself; no LoadBalancer Service to wait for
            traefik["ports"] = {"web": {"hostPort": 80}, "websecure": {"hostPort": 443}}
            traefik["service"] = {"spec": {"type": "ClusterIP"}}
        elif support.load_balancer_ip:
            traefik["service"] = {"spec": {"loadBalancerIP": support.load_balancer_ip}}
        values["traefik"] = traefik
    if support.monitoring:
        # Grafana's login page served like the hub's (its host is in the member's file)
        values["grafana"] = {
            "ingress": {
                "enabled": True,
                "ingressClassName": support.ingress_class,
                "annotations": {"cert-manager.io/cluster-issuer": support.issuer},
            }
        }
    return values
