"""HTTP health checks of a deployed member, derived from its values.

A hub answers /hub/api/health and a BinderHub /health. Their hosts come from the ingress hosts
in the values (jupyterhub.ingress.hosts, binderhub.ingress.hosts; for a BinderHub the hub is
binderhub.jupyterhub.ingress.hosts); https when the ingress has tls, else http.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hubfleet.errors import HubfleetError


@dataclass(frozen=True)
class HealthCheck:
    name: str
    url: str


def _section(values: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    here: Any = values
    for key in path:
        here = here.get(key) if isinstance(here, Mapping) else None
    return here if isinstance(here, Mapping) else {}


def _base_url(ingress: Mapping[str, Any]) -> str | None:
    if ingress.get("enabled") is False:
        return None
    hosts = ingress.get("hosts") or []
    if not hosts or not isinstance(hosts[0], str):
        return None
    scheme = "https" if ingress.get("tls") else "http"
    return f"{scheme}://{hosts[0]}"


def health_checks(values: Mapping[str, Any]) -> list[HealthCheck]:
    """The checks a member's effective values imply (none when no ingress host is set)."""
    checks: list[HealthCheck] = []
    hub_ingress = _section(values, "jupyterhub", "ingress") or _section(
        values, "binderhub", "jupyterhub", "ingress"
    )
    hub = _base_url(hub_ingress)
    if hub:
        checks.append(HealthCheck("hub", f"{hub}/hub/api/health"))
    binder = _base_url(_section(values, "binderhub", "ingress"))
    if binder:
        checks.append(HealthCheck("binder", f"{binder}/health"))
    return checks


def run_health_checks(
    member: str,
    checks: list[HealthCheck],
    timeout_s: float = 60.0,
    interval_s: float = 2.0,
    say: Callable[[str], None] = print,
) -> None:
    """Poll each URL until it answers 2xx or `timeout_s` passes; a timeout names the check."""
    for check in checks:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(check.url, timeout=min(5.0, timeout_s)) as answer:
                    if 200 <= answer.status < 300:
                        say(f"  health {check.name}: {check.url} ok ({answer.status})")
                        break
                    last = f"HTTP {answer.status}"
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError) as err:
                last = str(getattr(err, "reason", err))
            if time.monotonic() >= deadline:
                raise HubfleetError(
                    f"member {member}: {check.name} health check {check.url} failed after "
                    f"{timeout_s:.0f}s ({last}); the release is deployed, check its pods"
                )
            time.sleep(interval_s)
