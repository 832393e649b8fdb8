"""`federation.refresh-credentials`: every stored kubeconfig whose client certificate ends
within N days, fetched again before it breaks a deploy.

What hubfleet does, from how k3s behaves (REFERENCE.md): k3s's client certificates last 365
days, and k3s renews one that has 90 days or fewer left when it starts; a copy of the admin
kubeconfig taken before keeps the old certificate. So for a k3s member hubfleet first fetches
k3s.yaml again (k3s may have restarted and renewed it meanwhile); when that copy too ends
within N days, `--restart` restarts k3s on the first server (the API server is away for the
restart; workloads keep running) and fetches the renewed one. Each new copy is stored
encrypted, as `k3s.kubeconfig` stores it. Other providers are named with what to do by hand;
GKE members hold no certificate (their tokens are minted for each run)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import Member, load_registry


@dataclass(frozen=True)
class Refreshed:
    member: str
    before: int | None  # days the stored client certificate had left
    after: int | None  # and has now
    action: str  # what was done, or what is left to do

    def line(self) -> str:
        days = "-" if self.before is None else f"{self.before}d"
        if self.after is not None and self.after != self.before:
            days += f" -> {self.after}d"
        return f"member {self.member}: {days}: {self.action}"


def stored_days(repo: DeployRepo, member: Member) -> int | None:
    """Days left on the stored kubeconfig's client certificate; None without one."""
    from hubfleet.kube import kubeconfig as kc
    from hubfleet.secrets import sops

    path = repo.member_kubeconfig(member.name)
    if not path.is_file():
        return None
    config = sops.decrypt_yaml(repo, path)
    if not isinstance(config, dict):
        return None
    return kc.client_cert_days_left(config, dt.datetime.now(dt.UTC))


def refresh_credentials(
    repo: DeployRepo,
    days: int,
    restart: bool,
    options: Any,
    say: Callable[[str], None] = print,
) -> list[Refreshed]:
    """Each member's stored client certificate, refreshed when it ends within `days`."""
    from hubfleet.k3s.bootstrap import refresh_kubeconfig, renew_certificates

    rows: list[Refreshed] = []
    for member in load_registry(repo).members.values():
        before = stored_days(repo, member)
        if before is None:
            what = (
                "short-lived tokens, nothing to refresh"
                if member.provider == "gke"
                else ("no client certificate stored")
            )
            rows.append(Refreshed(member.name, None, None, what))
            continue
        if before >= days:
            rows.append(Refreshed(member.name, before, before, "ok"))
            continue
        if member.provider != "k3s":
            rows.append(Refreshed(member.name, before, before, _by_hand(member)))
            continue
        try:
            refresh_kubeconfig(repo, member.name, options, say=say)
            after = stored_days(repo, member)
            action = "fetched k3s.yaml again"
            if after is not None and after < days:
                if not restart:
                    rows.append(
                        Refreshed(
                            member.name,
                            before,
                            after,
                            (
                                "still ends soon: k3s renews it when it restarts; rerun with --restart"
                            ),
                        )
                    )
                    continue
                renew_certificates(repo, member.name, options, say=say)
                after = stored_days(repo, member)
                action = "k3s restarted, renewed certificate fetched"
        except HubfleetError as err:
            rows.append(Refreshed(member.name, before, before, f"failed: {err}"))
            continue
        if options.dry_run:
            action = "would " + action.replace("fetched", "fetch").replace("restarted", "restart")
        rows.append(Refreshed(member.name, before, after, action))
    return rows


def _by_hand(member: Member) -> str:
    if member.provider == "microk8s":
        return (
            "renew it on the host (microk8s refresh-certs --cert client.crt), then "
            f"invoke microk8s.bootstrap {member.name} to store the new kubeconfig"
        )
    return f"ask its cluster's admins for a new one and store it as secrets/{member.name}-kubeconfig.yaml"
