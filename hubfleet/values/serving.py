"""The values that make a member's hub serve HTTPS through its support release: each Ingress
of a chart the member runs is switched on, in the support release's ingress class, with the
annotation that has cert-manager issue its certificate from the member's ClusterIssuer. They
come from the registry's `support` block (so switching issuer is one edit there); the hosts
and TLS secret names stay in the member's own values file. Only charts the member runs get
values, so none is left that no chart reads."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hubfleet.registry.members import Member
from hubfleet.registry.support import support_of

ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"


def serving_values(member: Member, enabled: Collection[str]) -> dict[str, Any]:
    """Ingress settings for the charts in `enabled` (the umbrella's dependencies the member's
    values turn on); {} for a member without a support release."""
    support = support_of(member)
    if support is None:
        return {}
    annotations = {ISSUER_ANNOTATION: support.issuer}
    hub_ingress = {
        "enabled": True,
        "ingressClassName": support.ingress_class,
        "annotations": annotations,
    }
    values: dict[str, Any] = {}
    if "binderhub" in enabled:
        values["binderhub"] = {"ingress": dict(hub_ingress), "jupyterhub": {"ingress": hub_ingress}}
    if "jupyterhub" in enabled:
        values["jupyterhub"] = {"ingress": dict(hub_ingress)}
    if "harbor" in enabled:
        values["harbor"] = {
            "expose": {"ingress": {"className": support.ingress_class, "annotations": annotations}}
        }
    return values
