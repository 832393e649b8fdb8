"""Helm: the engine interface, the embedded SDK and the helm CLI engines, chart dependencies, Helm's errors in one line.

`engine_from_env` picks the engine; `hubfleet.helm.engine` is the interface both implement.
"""

from __future__ import annotations

from collections.abc import Mapping

from hubfleet.errors import HubfleetError
from hubfleet.helm.dependencies import chart_cache_from_env
from hubfleet.helm.engine import HelmEngine


def engine_from_env(environ: Mapping[str, str]) -> HelmEngine:
    """The engine `HUBFLEET_HELM` asks for: unset or `sdk` the embedded SDK, `cli` the binary.

    `HUBFLEET_CHART_CACHE` names the local chart cache (default `~/.cache/hubfleet/charts`);
    `HUBFLEET_HELM_FETCH=1` allows fetching a dependency that is neither vendored nor cached.
    """
    choice = environ.get("HUBFLEET_HELM", "").strip().lower() or "sdk"
    cache = chart_cache_from_env(environ)
    fetch = environ.get("HUBFLEET_HELM_FETCH", "") in ("1", "true", "yes")
    if choice == "sdk":
        from hubfleet.helm.sdk import SdkEngine

        return SdkEngine(chart_cache=cache, fetch_dependencies=fetch)
    if choice == "cli":
        from hubfleet.helm.cli import CliEngine

        return CliEngine(environ=environ, chart_cache=cache, fetch_dependencies=fetch)
    raise HubfleetError(
        f"HUBFLEET_HELM={environ['HUBFLEET_HELM']!r} is not a Helm engine; use sdk or cli"
    )
