"""The federation redirector's values, for the member that runs it: computed from the
registry at deploy time, never written in a values file. Its host list is every member in
rotation (weight > 0) with its URL, weight, prime and the health and versions URLs the
redirector checks; its Ingress serves the federation's domain in the member's ingress class,
with its certificate from the member's issuer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import load_mapping
from hubfleet.registry.federation import Federation, federation_of
from hubfleet.registry.members import Member
from hubfleet.registry.support import support_of
from hubfleet.values.serving import ISSUER_ANNOTATION


@lru_cache(maxsize=4)
def _federation(path: Path, signature: tuple[int, int]) -> Federation | None:
    """The registry's federation, read once per version of the file."""
    data = load_mapping(path, "config/federation.yaml").data
    return federation_of(data) if isinstance(data, dict) else None


def federation_in(repo: DeployRepo) -> Federation | None:
    try:
        stat = repo.registry.stat()
    except OSError:
        return None
    return _federation(repo.registry, (stat.st_mtime_ns, stat.st_size))


def redirect_values(federation: Federation | None, member: Member) -> dict[str, Any]:
    """`federationRedirect` for the member running the redirector; {} for any other."""
    if federation is None or federation.redirector != member.name:
        return {}
    hosts = {
        place.member: {
            "url": place.url,
            "weight": place.weight,
            "health": place.health,
            "versions": place.versions,
            "prime": place.prime,
        }
        for place in federation.in_rotation
    }
    values: dict[str, Any] = {
        "enabled": True,
        "host": federation.domain,
        "hosts": hosts,
        "image": {"name": federation.image, "tag": federation.tag},
    }
    support = support_of(member)
    if support is not None:
        values["ingress"] = {
            "ingressClassName": support.ingress_class,
            "annotations": {ISSUER_ANNOTATION: support.issuer},
        }
    return {"federationRedirect": values}


LOCAL_PROMETHEUS = "http://support-prometheus-server.support.svc.cluster.local"


def monitoring_values(federation: Federation | None, member: Member) -> dict[str, Any]:
    """For a member's support release: its Prometheus served at prometheus.DOMAIN (when it is
    in the federation), and, on the member whose Grafana is the federation's, one data source
    per member besides its own."""
    support = support_of(member)
    if federation is None or support is None or not support.monitoring:
        return {}
    values: dict[str, Any] = {}
    place = federation.place(member.name)
    if place is not None:
        host = place.prometheus.removeprefix("https://")
        values["prometheus"] = {
            "server": {
                "ingress": {
                    "enabled": True,
                    "ingressClassName": support.ingress_class,
                    "annotations": {ISSUER_ANNOTATION: support.issuer},
                    "hosts": [host],
                    "tls": [{"secretName": f"{member.name}-prometheus-tls", "hosts": [host]}],
                }
            }
        }
    if federation.grafana == member.name:
        sources = [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "url": LOCAL_PROMETHEUS,
                "access": "proxy",
                "isDefault": True,
            },
        ]
        sources += [
            {"name": p.member, "type": "prometheus", "url": p.prometheus, "access": "proxy"}
            for p in federation.places
            if p.monitored and p.member != member.name
        ]
        values["grafana"] = {
            "datasources": {"datasources.yaml": {"apiVersion": 1, "datasources": sources}}
        }
    return values
