"""Taking a member off its cluster (member.remove --uninstall): its hub's release, then its
support release, then their namespaces; cert-manager's CRDs (and with them every certificate
and issuer in the cluster) only when asked. A dry run says what each step would do and changes
nothing; a second run finds nothing left and says so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from hubfleet.deploy.member import render_member
from hubfleet.deploy.support import support_crds
from hubfleet.files.repo import DeployRepo
from hubfleet.helm.engine import HelmEngine
from hubfleet.kube.credentials import ClusterCredentials
from hubfleet.registry.members import Member
from hubfleet.registry.support import releases, support_release


@dataclass(frozen=True)
class UninstallOptions:
    dry_run: bool = False
    delete_crds: bool = False  # cert-manager's CRDs: every Certificate in the cluster goes too
    timeout_s: int = 300


def cert_manager_crd_names(repo: DeployRepo, member: Member, engine: HelmEngine) -> list[str]:
    """The CRDs the member's support release applied, from its vendored cert-manager chart."""
    support = support_release(member)
    if support is None:
        return []
    rendered = render_member(repo, support, engine)
    crds = support_crds(engine, support, rendered.chart_dir, rendered.values.effective.values)
    return [str(c["metadata"]["name"]) for c in crds]


def uninstall_member(
    repo: DeployRepo,
    member: Member,
    engine: HelmEngine,
    options: UninstallOptions,
    say: Callable[[str], None],
    credentials: ClusterCredentials | None = None,
) -> list[str]:
    """Uninstall the member's releases and delete their namespaces (and cert-manager's CRDs
    with `delete_crds`); returns what was done (or, in a dry run, what would be)."""
    from hubfleet.cloud.credentials import member_credentials
    from hubfleet.kube import client as kube
    from hubfleet.kube.teardown import (
        delete_crds,
        delete_namespace,
        existing_crds,
        namespace_exists,
    )

    crds = cert_manager_crd_names(repo, member, engine) if options.delete_crds else []
    creds = credentials or member_credentials(repo, member)
    where = f"member {member.name}"
    done: list[str] = []

    def step(what: str, run: Callable[[], object]) -> None:
        if options.dry_run:
            say(f"{member.name}: would {what}")
        else:
            run()
            say(f"{member.name}: {what}: done")
        done.append(what)

    with kube.member_api(creds) as api:
        kube.check_reachable(api, creds)
        ordered = list(reversed(releases(member)))  # the hub first: it uses the support parts
        for release in ordered:
            live = engine.status(creds, release.release, release.namespace)
            if live is None:
                say(
                    f"{member.name}: release {release.release} in {release.namespace}: not installed"
                )
                continue
            step(
                f"uninstall release {release.release} in {release.namespace} "
                f"(revision {live.revision})",
                partial(
                    engine.uninstall, creds, release.release, release.namespace, options.timeout_s
                ),
            )
        for namespace in dict.fromkeys(r.namespace for r in ordered):
            if not namespace_exists(api, namespace, where):
                say(f"{member.name}: namespace {namespace}: not there")
                continue
            step(
                f"delete namespace {namespace}",
                partial(delete_namespace, api, namespace, options.timeout_s, where),
            )
        present = existing_crds(api, crds, where) if crds else []
        if present:
            step(
                f"delete {len(present)} CustomResourceDefinition(s) of cert-manager "
                "(every Certificate and Issuer in the cluster with them)",
                partial(delete_crds, api, present, where),
            )
        elif crds:
            say(f"{member.name}: cert-manager's CustomResourceDefinitions: not there")
    return done
