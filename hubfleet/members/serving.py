"""What makes a new member serve: its registry `support` block (the support release's
ACME contact, issuer and, on MicroK8s, load-balancer address)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hubfleet.errors import ConfigError
from hubfleet.files.yamlfile import YamlDocument
from hubfleet.members.templates import NewMember


def support_block(request: NewMember) -> dict[str, Any]:
    """The member's support release (traefik, cert-manager, prometheus, grafana): its ACME
    contact and issuer; on MicroK8s, the MetalLB address traefik's Service asks for (the host's,
    the pool's only one)."""
    block: dict[str, Any] = {}
    if request.issuer:
        block["issuer"] = request.issuer
    if request.email:
        block["email"] = request.email
    if request.provider == "microk8s":
        block["load_balancer_ip"] = request.address
    return block


def federation_email(doc: YamlDocument) -> str | None:
    """The ACME contact the registry's members share, when they all give the same one."""
    emails = {
        str(record["support"]["email"])
        for record in (doc.data.get("members") or {}).values()
        if isinstance(record, dict)
        and isinstance(record.get("support"), dict)
        and record["support"].get("email")
    }
    return emails.pop() if len(emails) == 1 else None


def with_contact(request: NewMember, doc: YamlDocument, say: Callable[[str], None]) -> NewMember:
    """The request with an ACME contact: --email, else the one the other members share; with
    none, certificates from the self-signed issuer until support.email is set."""
    if request.email or request.issuer == "selfsigned":
        return request
    shared = federation_email(doc)
    if shared:
        return dataclasses.replace(request, email=shared)
    if request.issuer:
        raise ConfigError(
            f"member {request.name}: --issuer {request.issuer} needs --email (the ACME contact)"
        )
    say(
        f"member {request.name}: no --email: its certificates come from the self-signed issuer "
        "until its support block in config/federation.yaml has an email and issuer "
        "letsencrypt-prod"
    )
    return dataclasses.replace(request, issuer="selfsigned")
