"""`invoke federation.status`: the federation as its users and the redirector see it, one row
per member in the rotation: stage, weight (and prime), whether its health URL answers, whether
its versions are the prime's (a member whose versions differ gets no traffic), the days left on
its HTTPS certificate and on its kubeconfig's client certificate. Every probe runs at once,
each bounded by a timeout; a row says what needs attention, and the run fails when one does.
With a Helm engine, each member's cluster is asked too, as member.status asks it: nodes
Ready and its release."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hubfleet.deploy.https_check import HttpsReport, probe_https
from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.members.status import MemberRow
from hubfleet.registry.federation import Place, federation_of
from hubfleet.registry.members import Member, load_registry

ATTENTION_DAYS = 30  # a certificate with fewer days left needs someone
COLUMNS = (
    "member",
    "stage",
    "weight",
    "health",
    "versions",
    "https",
    "kubeconfig",
    "nodes",
    "release",
    "attention",
)


@dataclass(frozen=True)
class FederationRow:
    member: str
    stage: str
    weight: int
    prime: bool
    health: str  # ok | the problem
    versions: str  # same | skew | unknown
    https_days_left: int | None
    kubeconfig_days_left: int | None
    attention: tuple[str, ...]
    nodes: str = "-"  # Ready/total, from its cluster (when asked)
    release: str = "-"  # revision and status of its hub's release

    def as_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["attention"] = list(self.attention)
        return record

    def cells(self) -> tuple[str, ...]:
        weight = f"{self.weight}{' prime' if self.prime else ''}"
        health = "ok" if self.health == "ok" else "FAIL"
        https = "-" if self.https_days_left is None else f"{self.https_days_left}d"
        kube = "-" if self.kubeconfig_days_left is None else f"{self.kubeconfig_days_left}d"
        return (
            self.member,
            self.stage,
            weight,
            health,
            self.versions,
            https,
            kube,
            self.nodes,
            self.release,
            "; ".join(self.attention) or "-",
        )


def _get(url: str, timeout_s: float) -> HttpsReport:
    """An HTTPS GET judged as a browser would; a plain HTTP one just answered."""
    if url.startswith("https://"):
        return probe_https(url, timeout_s=timeout_s)
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            body = answer.read(64 * 1024)
            problems = () if 200 <= answer.status < 300 else (f"HTTP {answer.status}",)
            return HttpsReport(url, answer.status, None, problems, body)
    except urllib.error.HTTPError as err:
        return HttpsReport(url, err.code, None, (f"HTTP {err.code}",))
    except (urllib.error.URLError, OSError) as err:
        return HttpsReport(url, None, None, (str(getattr(err, "reason", err)),))


def _answered(report: HttpsReport) -> bool:
    """It answered 2xx over a connection a browser accepts (a certificate that is merely
    close to its end is its own column)."""
    serious = [p for p in report.problems if not p.startswith("its certificate expires in")]
    return report.status is not None and 200 <= report.status < 300 and not serious


def _versions(report: HttpsReport) -> Any:
    if not _answered(report):
        return None
    try:
        return parse_json(report.body, "versions")
    except ConfigError:
        return None


def _kubeconfig_days(repo: DeployRepo, member: Member) -> int | None:
    """Days left on the stored kubeconfig's client certificate (None: none, or a token)."""
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.secrets import sops

    path = repo.member_kubeconfig(member.name)
    if not path.is_file():
        return None
    try:
        config = sops.decrypt_yaml(repo, path)
    except HubfleetError:
        return None
    if not isinstance(config, dict):
        return None
    return kc.client_cert_days_left(config, dt.datetime.now(dt.UTC))


def federation_status(
    repo: DeployRepo,
    timeout_s: float = 5.0,
    workers: int = 32,
    engine: HelmEngine | None = None,
) -> list[FederationRow]:
    """Every member in rotation's row; with `engine`, its cluster asked too (nodes Ready, its
    release) through its stored credentials (a member without them is not asked)."""
    registry = load_registry(repo)
    federation = federation_of(registry.document.data)
    if federation is None:
        raise HubfleetError(
            f"{registry.shown} has no federation block (domain, redirector): no rotation to show"
        )
    places = list(federation.places)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        health = list(pool.map(lambda p: _get(p.health, timeout_s), places))
        versions = list(pool.map(lambda p: _get(p.versions, timeout_s), places))
        kube_days = list(
            pool.map(lambda p: _kubeconfig_days(repo, registry.member(p.member)), places)
        )
        clusters: list[MemberRow | None] = [None] * len(places)
        if engine is not None:
            asked = engine
            clusters = list(
                pool.map(lambda p: _cluster_row(repo, registry.member(p.member), asked), places)
            )
    prime_versions = next(
        (_versions(v) for p, v in zip(places, versions, strict=True) if p.prime), None
    )
    return [
        _with_cluster(_row(registry.member(p.member), p, h, v, prime_versions, k), c)
        for p, h, v, k, c in zip(places, health, versions, kube_days, clusters, strict=True)
    ]


def _cluster_row(repo: DeployRepo, member: Member, engine: HelmEngine) -> MemberRow | None:
    from hubfleet.cloud.credentials import member_secrets_file
    from hubfleet.members.status import member_row

    if not member_secrets_file(repo, member).is_file():
        return None  # its credentials are not in this repository: not asked
    return member_row(repo, member, engine)


def _with_cluster(row: FederationRow, cluster: MemberRow | None) -> FederationRow:
    if cluster is None:
        return row
    if cluster.problem is not None:
        return dataclasses.replace(
            row, nodes="down", attention=(*row.attention, f"cluster: {cluster.problem}")
        )
    nodes = f"{cluster.nodes_ready}/{cluster.nodes_total}"
    release = (
        f"r{cluster.release_revision} {cluster.release_status}"
        if cluster.release_revision is not None
        else str(cluster.release_status or "-")
    )
    attention = list(row.attention)
    if cluster.nodes_ready != cluster.nodes_total:
        attention.append(f"cluster: {nodes} nodes Ready")
    if cluster.release_status not in ("deployed", None):
        attention.append(f"release: {cluster.release_status}")
    return dataclasses.replace(row, nodes=nodes, release=release, attention=tuple(attention))


def _row(
    member: Member,
    place: Place,
    health: HttpsReport,
    versions: HttpsReport,
    prime_versions: Any,
    kube_days: int | None,
) -> FederationRow:
    attention: list[str] = []
    health_state = "ok" if _answered(health) else "; ".join(health.problems) or "no answer"
    if health_state != "ok" and place.weight > 0:
        attention.append(f"health: {health_state}")
    mine = _versions(versions)
    if mine is None or prime_versions is None:
        version_state = "unknown"
        if place.weight > 0:
            attention.append("versions: no answer" if mine is None else "versions: prime's unknown")
    elif mine == prime_versions:
        version_state = "same"
    else:
        version_state = "skew"
        if place.weight > 0:
            attention.append("versions differ from the prime's: the redirector sends it nothing")
    days = health.certificate.days_left() if health.certificate else None
    if days is not None and days < ATTENTION_DAYS:
        attention.append(f"HTTPS certificate: {days} days left")
    if kube_days is not None and kube_days < ATTENTION_DAYS:
        attention.append(
            f"kubeconfig certificate: {kube_days} days left (invoke k3s.kubeconfig {member.name})"
        )
    return FederationRow(
        member.name,
        member.stage,
        place.weight,
        place.prime,
        health_state,
        version_state,
        days,
        kube_days,
        tuple(attention),
    )
