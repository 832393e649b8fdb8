"""What an adoption does not take over, each with why and what to do: members hubfleet cannot
deploy (EKS, Azure, no credentials), and the parts of a mybinder.org-deploy repository that
have no place in hubfleet (other charts, cert-manager's env file, network bans, Grafana data,
secrets no values layer uses)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubfleet.adopt.source import CHART, SourceRepo
from hubfleet.helm.dependencies import declared_dependencies


@dataclass(frozen=True)
class Leftover:
    """One thing not adopted: `what` (a member or a path of the adopted repository)."""

    what: str
    why: str
    todo: str

    def line(self) -> str:
        return f"{self.what}: {self.why}; {self.todo}"


# Paths of a mybinder.org-deploy repository hubfleet has no place for, and what to do instead.
KNOWN: dict[str, tuple[str, str]] = {
    "cert-manager.env": (
        "the cert-manager version deploy.py installs before each deploy",
        "a member with a support block runs cert-manager from the support release "
        "(support/; its version is pinned there)",
    ),
    "config/cert-manager.yaml": (
        "values of the separate cert-manager release",
        "put what is still needed in config/support/<member>.yaml under cert-manager:",
    ),
    "system-config": (
        "values of the system charts (kube-system, tigera-operator)",
        "deploy those charts as before, or move what they do into the support release",
    ),
    "config/k3s": (
        "k3s host files (kubelet config, upgrade plan, S3 lifecycle)",
        "k3s hosts are described in the registry (hosts:, k3s:); see README 'Self-hosted k3s "
        "members'",
    ),
    "grafana-data": (
        "Grafana dashboards and data sources kept as data",
        "copy the dashboards you still use into support/dashboards/",
    ),
    "secrets/ban.py": (
        "the network-ban script deploy.py runs before each deploy",
        "run it by hand before a deploy, or express the bans as values",
    ),
    "secrets/generate-banned-ips.py": (
        "the network-ban script deploy.py runs before each deploy",
        "run it by hand before a deploy, or express the bans as values",
    ),
    "chartpress.yaml": (
        "images built and tagged by chartpress in CD",
        f"run chartpress before `invoke deploy` (it sets the image tags in {CHART}/values.yaml)",
    ),
    "terraform": (
        "the adopted repository's infrastructure",
        "keep applying it from there, or port it to terraform/ (invoke tofu.*)",
    ),
}


def other_charts(source: SourceRepo) -> list[Leftover]:
    """Charts beside the umbrella chart (mybinder-kube-system, ...): not deployed by hubfleet."""
    found = []
    for chart_yaml in source.files(".", "*/Chart.yaml"):
        folder = chart_yaml.rsplit("/", 1)[0]
        if folder != CHART:
            found.append(
                Leftover(
                    f"{folder}/",
                    "a chart deploy.py installs into its own namespace",
                    "deploy it as before (helm), or move what it does into the support release",
                )
            )
    return found


def unvendored_dependencies(source: SourceRepo, here: Path) -> list[Leftover]:
    """The adopted chart's dependencies that neither the adopted repository nor this repo
    has vendored (mybinder.org-deploy fetches them with `helm dep up` before each deploy):
    a deploy needs them, pinned by digest."""
    declared = declared_dependencies(source.root / CHART)
    vendored = [source.root / CHART / "charts", here / CHART / "charts"]
    missing = [
        str(dep.get("name"))
        for dep in declared
        if not any(
            (folder / str(dep.get("name"))).is_dir() or any(folder.glob(f"{dep.get('name')}-*.tgz"))
            for folder in vendored
        )
    ]
    if not missing:
        return []
    return [
        Leftover(
            f"{CHART}/Chart.yaml",
            f"its dependencies {', '.join(missing)} are not vendored",
            f"run invoke charts.update --chart {CHART} (it fetches them and pins their digests "
            "in charts.lock) before deploying",
        )
    ]


def known_leftovers(source: SourceRepo) -> list[Leftover]:
    found = other_charts(source)
    for relative, (why, todo) in KNOWN.items():
        if (source.root / relative).exists():
            found.append(Leftover(relative, why, todo))
    return found


def unused_secret(relative: str) -> Leftover:
    return Leftover(
        relative,
        "a secret no values layer or cluster credential of an adopted member uses",
        "if still needed, copy it under secrets/ here and encrypt it (invoke secrets.encrypt)",
    )
