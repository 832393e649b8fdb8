"""Health checks of a deployed member as its users reach it, derived from its values.

A hub answers /hub/api/health, a BinderHub /health, Harbor /api/v2.0/ping and Grafana (in the
support release) its /login page. Their hosts come from the ingress hosts in the values
(jupyterhub.ingress.hosts, binderhub.ingress.hosts; for a BinderHub the hub is
binderhub.jupyterhub.ingress.hosts; harbor.expose.ingress.hosts.core; grafana.ingress.hosts);
https when the ingress has tls, else http. Over https, the certificate is judged as a browser
would (hubfleet.deploy.https_check): valid for the host, trusted, not about to expire.
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


def health_checks(
    values: Mapping[str, Any], support: Mapping[str, Any] | None = None
) -> list[HealthCheck]:
    """The checks a member's effective values (and its support release's) imply (none when no
    ingress host is set)."""
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
    expose = _section(values, "harbor", "expose")
    core = _section(expose, "ingress", "hosts").get("core")
    if values.get("harborEnabled") and expose.get("type", "ingress") == "ingress" and core:
        tls = _section(expose, "tls").get("enabled", True)
        checks.append(
            HealthCheck("registry", f"{'https' if tls else 'http'}://{core}/api/v2.0/ping")
        )
    grafana = _base_url(_section(support or {}, "grafana", "ingress"))
    if grafana and (support or {}).get("grafanaEnabled", True):
        checks.append(HealthCheck("grafana", f"{grafana}/login"))
    return checks


def run_health_checks(
    member: str,
    checks: list[HealthCheck],
    timeout_s: float = 60.0,
    interval_s: float = 2.0,
    say: Callable[[str], None] = print,
    trusted: bool = True,
) -> None:
    """Poll each URL until it answers 2xx (over https, with a certificate a browser accepts;
    `trusted` False for a member whose issuer is self-signed) or `timeout_s` passes; a
    timeout names the check and what is still wrong."""
    from hubfleet.deploy.https_check import probe_https

    for check in checks:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            if check.url.startswith("https://"):
                report = probe_https(check.url, trusted, timeout_s=min(5.0, timeout_s))
                if report.ok:
                    say(f"  health {check.name}: {check.url} ok ({report.summary()})")
                    break
                last = "; ".join(report.problems)
            else:
                answered = _http_get(check.url, timeout_s)
                if isinstance(answered, int):
                    say(f"  health {check.name}: {check.url} ok ({answered})")
                    break
                last = answered
            if time.monotonic() >= deadline:
                raise HubfleetError(
                    f"member {member}: {check.name} health check {check.url} failed after "
                    f"{timeout_s:.0f}s ({last}); the release is deployed, check its pods"
                )
            time.sleep(interval_s)


def _http_get(url: str, timeout_s: float) -> int | str:
    """The 2xx status of a plain-HTTP GET, or what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=min(5.0, timeout_s)) as answer:
            if 200 <= answer.status < 300:
                return int(answer.status)
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err))
