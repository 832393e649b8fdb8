"""What the support release needs beyond a Helm upgrade: cert-manager's CustomResourceDefinitions,
applied (created or upgraded) before the release, never through a chart's crds/ folder, which
Helm installs once and never upgrades. They come from the vendored cert-manager chart itself,
rendered with its `crds.enabled`, so they always match the cert-manager version deployed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hubfleet.deploy.manifests import parse_manifests
from hubfleet.errors import RenderError
from hubfleet.helm.engine import HelmEngine
from hubfleet.kube.client import KubeClient
from hubfleet.registry.members import Member

CERT_MANAGER = "cert-manager"


def support_crds(
    engine: HelmEngine, member: Member, chart_dir: Path, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """cert-manager's CustomResourceDefinitions for a support release that runs cert-manager
    (none for any other release), given its chart and its effective values."""
    if member.part != "support" or not values.get("certManagerEnabled"):
        return []
    charts = chart_dir / "charts"
    found = sorted(charts.glob(f"{CERT_MANAGER}-*.tgz")) + [
        p for p in [charts / CERT_MANAGER] if (p / "Chart.yaml").is_file()
    ]
    if not found:
        raise RenderError(
            f"member {member.name}: no {CERT_MANAGER} chart in {charts}; run invoke charts.update"
        )
    own = values.get(CERT_MANAGER)
    chart_values = dict(own) if isinstance(own, dict) else {}
    chart_values["crds"] = {**(chart_values.get("crds") or {}), "enabled": True}
    manifests = engine.render(found[0], member.release, member.namespace, chart_values)
    return [o for o in parse_manifests(manifests) if o.get("kind") == "CustomResourceDefinition"]


def apply_support_crds(
    api: KubeClient,
    crds: list[dict[str, Any]],
    member: Member,
    timeout_s: float,
    say: Callable[[str], None],
) -> None:
    """Create or upgrade the CRDs, then wait until the API server serves their kinds."""
    from hubfleet.kube.apply import apply_custom_objects, wait_established

    where = f"member {member.name}"
    outcomes = apply_custom_objects(api, crds, where)
    changed = [o for o in outcomes if o.state == "changed"]
    for outcome in changed:
        say(f"  {outcome}")
    wait_established(api, [str(c["metadata"]["name"]) for c in crds], timeout_s, where)
    say(
        f"{member.name}: {len(crds)} CustomResourceDefinition(s) of {CERT_MANAGER} in place "
        f"({len(changed)} changed)"
    )
