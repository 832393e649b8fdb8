"""The federation as the registry describes it: its public domain, the member running the
redirector, and each member's place in the rotation (weight, prime, launch quota, the URLs the
redirector checks). Pure: records and the rules they must keep, each broken one a Problem with
file:line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hubfleet.registry.problem import Problem

DEFAULT_IMAGE = "jupyterhub/mybinder.org-federation-redirect"
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Place:
    """One member's place in the rotation."""

    member: str
    domain: str
    weight: int
    prime: bool
    quota: int | None
    health: str
    versions: str
    drained: Mapping[str, int] | None  # what readmit gives back, while drained
    monitored: bool = False  # it runs the support release's prometheus

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    @property
    def prometheus(self) -> str:
        """Where the federation's Grafana reaches its Prometheus."""
        return f"https://prometheus.{self.domain}"


@dataclass(frozen=True)
class Federation:
    domain: str
    redirector: str
    image: str
    tag: str
    places: tuple[Place, ...]
    grafana: str = ""  # the member whose Grafana shows every member's Prometheus

    def place(self, member: str) -> Place | None:
        return next((p for p in self.places if p.member == member), None)

    @property
    def prime(self) -> Place | None:
        return next((p for p in self.places if p.prime), None)

    @property
    def in_rotation(self) -> tuple[Place, ...]:
        """The members the redirector sends launches to (weight 0 ones are left out)."""
        return tuple(p for p in self.places if p.weight > 0)


def place_of(member: str, record: Mapping[str, Any]) -> Place | None:
    block = record.get("federation")
    if not isinstance(block, Mapping):
        return None
    domain = str(record.get("domain", ""))
    drained = block.get("drained")
    support = record.get("support")
    monitored = (
        isinstance(support, Mapping)
        and support.get("enabled") is not False
        and support.get("monitoring") is not False
    )
    return Place(
        member=member,
        domain=domain,
        weight=int(block.get("weight", 0)),
        prime=bool(block.get("prime", False)),
        quota=int(block["quota"]) if isinstance(block.get("quota"), int) else None,
        health=str(block.get("health") or f"https://{domain}/health"),
        versions=str(block.get("versions") or f"https://{domain}/versions"),
        drained=dict(drained) if isinstance(drained, Mapping) else None,
        monitored=monitored,
    )


def federation_of(data: Mapping[str, Any]) -> Federation | None:
    """The federation of a (schema-valid) registry document; None when it has no block."""
    block = data.get("federation")
    if not isinstance(block, Mapping):
        return None
    members = data.get("members") or {}
    places = tuple(
        place
        for name, record in members.items()
        if isinstance(record, Mapping) and (place := place_of(str(name), record)) is not None
    )
    return Federation(
        domain=str(block.get("domain", "")),
        redirector=str(block.get("redirector", "")),
        image=str(block.get("image") or DEFAULT_IMAGE),
        tag=str(block.get("tag") or DEFAULT_TAG),
        places=places,
        grafana=str(block.get("grafana") or block.get("redirector", "")),
    )


def federation_problems(
    data: Mapping[str, Any], shown: str, line_of: Callable[[tuple[Any, ...]], int | None]
) -> list[Problem]:
    """The rules the rotation keeps: the redirector is a member; exactly one prime, in
    rotation (weight > 0); at least one member in rotation; a member's block only with the
    federation's."""
    members = data.get("members") or {}
    federation = federation_of(data)
    if federation is None:
        stray = [n for n, r in members.items() if isinstance(r, Mapping) and "federation" in r]
        return [
            Problem(
                shown,
                line_of(("members", n, "federation")),
                str(n),
                "federation",
                "a member's rotation needs the registry's top-level federation block "
                "(domain, redirector)",
            )
            for n in stray
        ]
    problems = []
    if federation.redirector not in members:
        problems.append(
            Problem(
                shown,
                line_of(("federation", "redirector")),
                None,
                "redirector",
                f"{federation.redirector!r} is not a member",
            )
        )
    primes = [p for p in federation.places if p.prime]
    if len(primes) != 1:
        where = (
            line_of(("members", primes[1].member, "federation", "prime"))
            if primes
            else (line_of(("federation",)))
        )
        named = ", ".join(p.member for p in primes) or "none"
        problems.append(
            Problem(
                shown,
                where,
                None,
                "prime",
                f"exactly one member must be prime (prime: true), not {named}",
            )
        )
    for prime in primes[:1]:
        if prime.weight <= 0:
            problems.append(
                Problem(
                    shown,
                    line_of(("members", prime.member, "federation")),
                    prime.member,
                    "weight",
                    "the prime member must have weight > 0 (all traffic falls back to it)",
                )
            )
    if federation.places and not federation.in_rotation:
        problems.append(
            Problem(
                shown,
                line_of(("federation",)),
                None,
                "weight",
                "no member has weight > 0: the redirector would have nowhere to send launches",
            )
        )
    return problems
