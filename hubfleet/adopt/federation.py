"""The adopted federation's rotation, from the redirector's host list (`federationRedirect` in
the values of the member that runs it, config/prod.yaml on mybinder.org): the registry's
`federation` block (domain, redirector, image, tag) and each member's place (weight, prime;
health and versions where they are not the default URLs).

The registry's block makes hubfleet give the redirector's member the same `federationRedirect`
values its files give: the image and tag are taken from its merged values, and its own file's
host list stays the last word until an operator removes it (reported as a leftover)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubfleet.adopt.leftovers import Leftover
from hubfleet.adopt.members import FoundMember, merged_values
from hubfleet.registry.members import registry_schema

REDIRECT = "federationRedirect"


@dataclass(frozen=True)
class Rotation:
    block: Mapping[str, Any] | None  # the registry's top-level federation block
    places: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    leftovers: tuple[Leftover, ...] = ()


def _hosts(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    block = data.get(REDIRECT)
    hosts = block.get("hosts") if isinstance(block, Mapping) else None
    return hosts if isinstance(hosts, Mapping) and hosts else None


def _own(member: FoundMember) -> list[str]:
    """The member's own values files (not the common ones) among its layers."""
    mine = (f"config/{member.name}.yaml", f"secrets/config/{member.name}.yaml")
    return [layer for layer in member.layers if layer in mine]


def _fits(name: str, value: Any) -> bool:
    pattern = registry_schema()["$defs"]["federation"]["properties"][name].get("pattern")
    if pattern is None:
        pattern = registry_schema()["$defs"]["domain"]["pattern"]
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def _place(member: FoundMember, host: Mapping[str, Any]) -> dict[str, Any]:
    weight = host.get("weight", 0)
    place: dict[str, Any] = {
        "weight": weight if isinstance(weight, int) and 0 <= weight <= 1000 else 0,
        "prime": host.get("prime") is True,
    }
    for key in ("health", "versions"):
        url = host.get(key)
        if isinstance(url, str) and url != f"https://{member.domain}/{key}":
            place[key] = url
    return place


def rotation(
    members: Sequence[FoundMember],
    defaults: Mapping[str, Any],
    parsed: Mapping[str, Mapping[str, Any]],
) -> Rotation:
    """The rotation of the adopted members; no block (and why) when it cannot be kept whole."""
    by_name = {m.name: m for m in members}
    found = [(m, layer) for m in members for layer in _own(m) if _hosts(parsed[layer])]
    if not found:
        return Rotation(None)
    redirector, own = found[0]
    values = merged_values(defaults, list(redirector.layers), parsed)
    hosts = _hosts(values) or {}
    redirect = values.get(REDIRECT)
    redirect = redirect if isinstance(redirect, Mapping) else {}
    image = redirect.get("image")
    image = image if isinstance(image, Mapping) else {}
    leftovers = [
        Leftover(
            f"{own}: {REDIRECT}.hosts",
            "the redirector's host list stays in this values file, whose last word it is",
            "delete it there once the registry's rotation (invoke federation.*) should decide",
        )
    ]
    places = {}
    for name, host in hosts.items():
        if name in by_name and isinstance(host, Mapping):
            places[name] = _place(by_name[name], host)
            lacking = [key for key in ("health", "versions") if not host.get(key)]
            if lacking:  # hubfleet's rotation gives every member both URLs
                at = by_name[name].domain
                urls = ", ".join(f"https://{at}/{key}" for key in lacking)
                leftovers.append(
                    Leftover(
                        f"{REDIRECT}.hosts.{name}",
                        f"has no {' or '.join(lacking)}: the registry's rotation adds {urls}, "
                        "so the redirector's values are not quite the old ones",
                        "check those URLs answer on the member (invoke federation.status)",
                    )
                )
        else:
            leftovers.append(
                Leftover(
                    f"{REDIRECT}.hosts.{name}",
                    "not an adopted member: the registry's rotation leaves it out",
                    f"it stays in {own}'s list until the member is added",
                )
            )
    primes = [n for n, p in places.items() if p["prime"]]
    domain = redirect.get("host")
    if len(primes) != 1 or places[primes[0]]["weight"] <= 0 or not _fits("domain", domain):
        why = f"domain {domain!r}, prime among adopted members: {', '.join(primes) or 'none'}"
        leftovers.append(
            Leftover(
                f"{own}: {REDIRECT}",
                f"the rotation cannot be registered whole ({why})",
                "add the registry's federation block by hand (README 'Federation')",
            )
        )
        return Rotation(None, {}, tuple(leftovers))
    block: dict[str, Any] = {"domain": domain, "redirector": redirector.name}
    for key, value in (("image", image.get("name")), ("tag", image.get("tag"))):
        if _fits(key, value):
            block[key] = value
    return Rotation(block, places, tuple(leftovers))
