"""`invoke member.status`: one row per member — stage, provider, nodes Ready, Kubernetes
version, release revision and when, kubeconfig certificate days left, onboarding steps left.

Each member is asked through its own decrypted kubeconfig, all at once; a member whose
cluster cannot be reached says so in its row (and in `problem`) instead of stopping the
table. The rows are records; the front draws them as a table that fits 80 columns, or as JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.registry.members import Member, load_registry

COLUMNS = ("member", "stage", "provider", "nodes", "version", "release", "cert", "onboarding")


@dataclass(frozen=True)
class MemberRow:
    member: str
    stage: str
    provider: str
    onboarding_left: tuple[str, ...] = ()
    nodes_ready: int | None = None
    nodes_total: int | None = None
    version: str | None = None
    release_revision: int | None = None
    release_status: str | None = None  # deployed | failed | ... | "not installed"
    release_updated: str | None = None  # RFC 3339, as Helm reports it
    cert_days_left: int | None = None  # the kubeconfig's client certificate
    credential: str = "none"  # client certificate | token | none (no credentials stored)
    problem: str | None = None  # why the cluster could not be asked; None: it answered

    @property
    def reachable(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["onboarding_left"] = list(self.onboarding_left)
        record["reachable"] = self.reachable
        return record

    def cells(self) -> tuple[str, ...]:
        """The row as the table shows it: short words, so eight columns fit 80."""
        if self.problem is not None:
            nodes = "down" if "reach" in self.problem else "error"
        elif self.nodes_total is not None:
            nodes = f"{self.nodes_ready}/{self.nodes_total}"
        else:
            nodes = "-"
        if self.release_status is None:
            release = "-"
        elif self.release_revision is None:
            release = self.release_status
        else:
            when = (self.release_updated or "")[:10]
            release = f"r{self.release_revision} {self.release_status} {when}".rstrip()
        if self.cert_days_left is not None:
            cert = f"{self.cert_days_left}d"
        else:
            cert = "token" if self.credential == "token" else "-"
        left = self.onboarding_left
        onboarding = f"{len(left)} left" if left else "done"
        return (
            self.member,
            self.stage,
            self.provider,
            nodes,
            self.version or "-",
            release,
            cert,
            onboarding,
        )


def member_row(repo: DeployRepo, member: Member, engine: HelmEngine) -> MemberRow:
    from hubfleet.cloud.credentials import member_credentials, member_secrets_file
    from hubfleet.kube import client as kube
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.kube.nodes import parse_nodes
    from hubfleet.members.onboarding import steps_left

    row = MemberRow(
        member.name, member.stage, member.provider, tuple(steps_left(repo, member.name))
    )
    secrets_file = member_secrets_file(repo, member)
    if not secrets_file.is_file():
        return dataclasses.replace(
            row, problem=f"no credentials at {repo.relative(secrets_file)} to reach it with"
        )
    try:
        creds = member_credentials(repo, member)
        days = kc.client_cert_days_left(dict(creds.kubeconfig), dt.datetime.now(dt.UTC))
        row = dataclasses.replace(
            row,
            cert_days_left=days,
            credential="client certificate" if days is not None else "token",
        )
        with kube.member_api(creds) as api:
            kube.check_reachable(api, creds, timeout_s=3)
            listed = parse_nodes(kube.node_list_json(api))
        row = dataclasses.replace(
            row,
            nodes_ready=sum(1 for n in listed if n.ready),
            nodes_total=len(listed),
            version=listed[0].version if listed else None,
        )
        live = engine.status(creds, member.release, member.namespace)
    except HubfleetError as err:
        return dataclasses.replace(row, problem=str(err).removeprefix(f"member {member.name}: "))
    if live is None:
        return dataclasses.replace(row, release_status="not installed")
    return dataclasses.replace(
        row,
        release_revision=live.revision,
        release_status=live.status,
        release_updated=live.updated,
    )


def federation_status(
    repo: DeployRepo, engine: HelmEngine, only: str | None = None
) -> list[MemberRow]:
    registry = load_registry(repo)
    members = [registry.member(only)] if only else list(registry.members.values())
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda m: member_row(repo, m, engine), members))


def unreachable_summary(rows: list[MemberRow]) -> str | None:
    """The one line a status run fails with when some member could not be asked."""
    down = [r for r in rows if not r.reachable]
    if not down:
        return None
    if len(down) == 1:
        return f"member {down[0].member}: {down[0].problem}"
    names = ", ".join(r.member for r in down)
    return f"{len(down)} members could not be asked ({names}); the first: {down[0].problem}"
