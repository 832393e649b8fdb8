"""`invoke member.status`: one row per member — stage, provider, nodes Ready, Kubernetes
version, release revision and when, kubeconfig certificate days left, onboarding steps left.

Each member is asked through its own decrypted kubeconfig, all at once; a member whose
cluster cannot be reached says so in its row instead of stopping the table.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.registry.members import Member, load_registry


@dataclass(frozen=True)
class MemberRow:
    member: str
    stage: str
    provider: str
    nodes: str
    version: str
    release: str
    cert_days: str
    onboarding: str


def member_row(repo: DeployRepo, member: Member, engine: HelmEngine) -> MemberRow:
    from hubfleet.cloud.credentials import member_credentials, member_secrets_file
    from hubfleet.kube import client as kube
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.kube.nodes import parse_nodes
    from hubfleet.members.onboarding import steps_left

    left = steps_left(repo, member.name)
    onboarding = f"{len(left)} left ({left[0]}...)" if left else "done"
    nodes = version = release = cert = "-"
    if member_secrets_file(repo, member).is_file():
        try:
            creds = member_credentials(repo, member)
            days = kc.client_cert_days_left(dict(creds.kubeconfig), dt.datetime.now(dt.UTC))
            cert = str(days) if days is not None else "token"
            with kube.member_api(creds) as api:
                kube.check_reachable(api, creds, timeout_s=3)
                listed = parse_nodes(kube.node_list_json(api))
            ready = sum(1 for n in listed if n.ready)
            nodes = f"{ready}/{len(listed)} Ready"
            version = listed[0].version if listed else "-"
            live = engine.status(creds, member.release, member.namespace)
            release = f"r{live.revision} {live.status} {live.updated}" if live else "not installed"
        except HubfleetError as err:
            nodes = "unreachable" if "reach" in str(err) else "error"
            release = str(err).split(": ", 1)[-1][:60]
    return MemberRow(
        member.name, member.stage, member.provider, nodes, version, release, cert, onboarding
    )


def federation_status(
    repo: DeployRepo, engine: HelmEngine, only: str | None = None
) -> list[MemberRow]:
    registry = load_registry(repo)
    members = [registry.member(only)] if only else list(registry.members.values())
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda m: member_row(repo, m, engine), members))


def status_table(rows: list[MemberRow]) -> str:
    head = ("member", "stage", "provider", "nodes", "version", "release", "cert days", "onboarding")
    table = [head] + [
        (r.member, r.stage, r.provider, r.nodes, r.version, r.release, r.cert_days, r.onboarding)
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
