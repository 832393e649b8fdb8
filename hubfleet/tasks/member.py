"""member.* tasks: add a member to the federation, onboard it, show the federation, take one out.

Thin: each parses its flags and calls hubfleet.members.new or hubfleet.members.remove. No task
prints a secret value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context

from hubfleet.cli import ask, run_front, terminal_prompt
from hubfleet.tasks.conventions import DEBUG_HELP, task

if TYPE_CHECKING:
    from hubfleet.members.templates import NewMember


def _gke_request(
    name: str,
    domain: str,
    stage: str,
    where: tuple[str | None, str | None, str | None],
    shape: tuple[int, float, float],
) -> NewMember:
    """member.new for a GKE member: the cluster's place, and its user nodes for sizing."""
    from hubfleet.cloud.gke import GkeCluster
    from hubfleet.errors import HubfleetError
    from hubfleet.members.templates import NewMember, NodeShape

    project, location, cluster = where
    cpus, ram_gb, disk_gb = int(shape[0]), float(shape[1]), float(shape[2])
    if not project or not location:
        raise HubfleetError("a gke member needs --gke-project and --gke-location")
    if cpus < 1 or ram_gb <= 0 or disk_gb <= 0:
        raise HubfleetError("--node-cpus, --node-ram-gb and --node-disk-gb must be positive")
    nodes = NodeShape(cpus, ram_gb, disk_gb, "GKE user nodes")
    return NewMember(
        name,
        "",
        domain,
        "gke",
        stage,
        gke=GkeCluster(project, location, cluster or name),
        nodes=nodes,
    )


@task(
    help={
        "name": "the new member's name (a DNS label; also its namespace and release)",
        "host": "the host's address (its public IP or DNS name), reached over SSH (k3s, microk8s)",
        "domain": "the member's domain: BinderHub there, hub/registry/grafana below it",
        "provider": "k3s (default), microk8s, gke (no host: --gke-project, --gke-location) or "
        "kubeconfig (an existing cluster: --kubeconfig)",
        "kubeconfig": "kubeconfig: the existing cluster's kubeconfig, imported encrypted as "
        "secrets/NAME-kubeconfig.yaml (the file itself is left as it is)",
        "context": "kubeconfig: the context to use, when the file has several",
        "gke_project": "gke: the Google Cloud project ID",
        "gke_location": "gke: the cluster's zone (us-central1-a) or region (us-central1)",
        "gke_cluster": "gke: the cluster's name (default: the member's name)",
        "node_cpus": "gke, kubeconfig: CPUs of a user node, for sizing (default 8)",
        "node_ram_gb": "gke, kubeconfig: RAM of a user node in GB, for sizing (default 30)",
        "node_disk_gb": "gke, kubeconfig: disk of a user node in GB, for sizing (default 100)",
        "stage": "staging (default) or prod",
        "email": "the ACME contact for its Let's Encrypt certificates (default: the one the "
        "other members share; with none, the self-signed issuer)",
        "issuer": "its certificates' issuer: letsencrypt-prod (default), letsencrypt-staging "
        "or selfsigned (no public DNS)",
        "kind": "binder (default: BinderHub, its JupyterHub inside) or jupyterhub (alone, with "
        "GitHub login, user resources and storage from the host, idle culling)",
        "gpus": "jupyterhub: GPUs per node; with any, users get a GPU profile",
        "github_org": "jupyterhub: the GitHub organization whose members may log in",
        "user": "SSH login on the host (default root; others use sudo -n)",
        "port": "SSH port (default 22)",
        "accept_host_key": "trust the host's SSH key with this SHA256 fingerprint (SHA256:...)",
        "identity": "private key the host accepts (until secrets/NAME.key exists)",
        "dry_run": "show what would be written (secrets masked); write nothing",
        "timeout": "seconds to wait for the host's SSH port (default 10)",
        "debug": DEBUG_HELP,
    }
)
def new(
    c: Context,
    name: str,
    domain: str,
    host: str | None = None,
    provider: str = "k3s",
    stage: str = "staging",
    user: str = "root",
    port: int = 22,
    accept_host_key: str | None = None,
    identity: str | None = None,
    dry_run: bool = False,
    timeout: int = 10,
    gke_project: str | None = None,
    gke_location: str | None = None,
    gke_cluster: str | None = None,
    node_cpus: int = 8,
    node_ram_gb: float = 30.0,
    node_disk_gb: float = 100.0,
    email: str | None = None,
    issuer: str | None = None,
    kind: str = "binder",
    gpus: int = 0,
    github_org: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    debug: bool = False,
) -> None:
    """Add a member: its registry entry, its values and its encrypted secrets.

    Writes the registry entry (with its support block: ingress, certificates, monitoring),
    config/NAME.yaml, config/support/NAME.yaml and their encrypted secrets.

    k3s and MicroK8s: connects to the host for its CPUs, RAM and disk and sizes the member from
    them (launch quota, dind resources, image cleaner, maxPods; see hubfleet.registry.sizing). GKE: no
    host; the registry gets the cluster's project, location and name, and sizing comes from
    the user nodes' shape (--node-cpus, --node-ram-gb, --node-disk-gb). Writes everything or
    nothing; refuses a name that exists.
    """

    def body() -> None:
        from dataclasses import replace

        from hubfleet.errors import HubfleetError
        from hubfleet.files.repo import find_repo
        from hubfleet.hosts.hostkeys import HostKeyDecision
        from hubfleet.members.new import NewMemberOptions, new_member
        from hubfleet.members.templates import NewMember

        if provider not in ("k3s", "microk8s", "gke", "kubeconfig"):
            raise HubfleetError(f"--provider {provider!r}: use k3s, microk8s, gke or kubeconfig")
        if stage not in ("staging", "prod"):
            raise HubfleetError(f"--stage {stage!r}: use staging or prod")
        if issuer not in (None, "letsencrypt-prod", "letsencrypt-staging", "selfsigned"):
            raise HubfleetError(
                f"--issuer {issuer!r}: use letsencrypt-prod, letsencrypt-staging or selfsigned"
            )
        if provider == "gke":
            request = _gke_request(
                name,
                domain,
                stage,
                (gke_project, gke_location, gke_cluster),
                (node_cpus, node_ram_gb, node_disk_gb),
            )
        elif provider == "kubeconfig":
            if not kubeconfig:
                raise HubfleetError("a kubeconfig member needs --kubeconfig (its cluster's file)")
            from hubfleet.members.templates import NodeShape

            nodes = NodeShape(int(node_cpus), float(node_ram_gb), float(node_disk_gb), "its nodes")
            request = NewMember(name, "", domain, "kubeconfig", stage, nodes=nodes)
            request = replace(request, kubeconfig=Path(kubeconfig), kube_context=context)
        else:
            if not host:
                raise HubfleetError(f"a {provider} member needs --host (the address to SSH to)")
            request = NewMember(name, host, domain, provider, stage, user, int(port))
        if kind not in ("binder", "jupyterhub"):
            raise HubfleetError(f"--kind {kind!r}: use binder or jupyterhub")
        if kind != "jupyterhub" and (gpus or github_org):
            raise HubfleetError("--gpus and --github-org are for --kind jupyterhub members")
        orgs = (github_org,) if github_org else ()
        request = replace(
            request, email=email, issuer=issuer, kind=kind, gpus=int(gpus), github_orgs=orgs
        )
        options = NewMemberOptions(
            dry_run=dry_run,
            identity=Path(identity) if identity else None,
            host_key=HostKeyDecision(accept=accept_host_key, prompt=terminal_prompt()),
            connect_timeout_s=float(timeout),
        )
        new_member(find_repo(), request, options)

    run_front(body, debug)


@task(
    help={
        "name": "the member to remove",
        "purge": "also delete its config, secrets, kubeconfig, SSH key and WireGuard keys",
        "uninstall": "first uninstall its releases (hub, then support) and delete their namespaces",
        "delete_crds": "with --uninstall: also delete cert-manager's CRDs (every Certificate "
        "and Issuer in the cluster goes with them)",
        "dry_run": "say what would be done; change nothing (cluster included)",
        "timeout": "seconds to wait for each uninstall and namespace deletion (default 300)",
        "yes": "do not ask for confirmation (needed without a terminal)",
        "debug": DEBUG_HELP,
    }
)
def remove(
    c: Context,
    name: str,
    purge: bool = False,
    uninstall: bool = False,
    delete_crds: bool = False,
    dry_run: bool = False,
    timeout: int = 300,
    yes: bool = False,
    debug: bool = False,
) -> None:
    """Take a member out of config/federation.yaml (the rest of the file unchanged).

    With --purge also delete config/NAME.yaml, secrets/config/NAME.yaml, their support/
    counterparts, secrets/NAME-kubeconfig.yaml, secrets/NAME.key(.pub) and
    secrets/NAME-wireguard.yaml. Nothing in the cluster is touched unless --uninstall:
    then its releases are uninstalled and their namespaces deleted first (cert-manager's CRDs
    too with --delete-crds). Asks first, unless --yes; --dry-run shows every step.
    """

    def body() -> None:
        import os

        from hubfleet.deploy.uninstall import UninstallOptions
        from hubfleet.errors import HubfleetError
        from hubfleet.files.repo import find_repo
        from hubfleet.helm import engine_from_env
        from hubfleet.members.remove import Uninstall, remove_member

        if delete_crds and not uninstall:
            raise HubfleetError("--delete-crds goes with --uninstall")

        def confirm(question: str) -> bool:
            if yes:
                return True
            if not sys.stdin.isatty():
                raise HubfleetError(
                    f"member {name}: no terminal to confirm on; rerun with --yes to remove it"
                )
            return ask(question)

        repo = find_repo()
        off = (
            Uninstall(
                repo,
                engine_from_env(os.environ),
                UninstallOptions(delete_crds=delete_crds, timeout_s=timeout),
            )
            if uninstall
            else None
        )
        remove_member(repo, name, purge, confirm, uninstall=off, dry_run=dry_run)

    run_front(body, debug)


@task(
    help={
        "name": "the member to onboard (a new name, or one onboarding was started for)",
        "host": "the bare VM's address (for a member not registered yet)",
        "domain": "the member's domain (for a member not registered yet)",
        "provider": "k3s (default) or microk8s",
        "stage": "staging (default) or prod",
        "user": "SSH user on the host (root by default; others use sudo)",
        "port": "SSH port (22)",
        "identity": "a private key the host accepts, for the first contact",
        "accept_host_key": "trust the host's unknown SSH key if it has this fingerprint",
        "from_step": "start at this step instead of the first unfinished one",
        "dry_run": (
            "ask each step what it would do (preflight and DNS are checked, bootstrap, the S3 "
            "lifecycle and deploy run their own dry runs); change and record nothing"
        ),
        "resolver": "DNS resolver IP[:PORT] for dns-check (default HUBFLEET_DNS_RESOLVER, then the system's)",
        "timeout": "seconds to wait for nodes and rollouts (default 300)",
        "email": "the ACME contact for its certificates (as member.new --email)",
        "issuer": "letsencrypt-prod (default), letsencrypt-staging or selfsigned",
        "debug": DEBUG_HELP,
    }
)
def onboard(
    c: Context,
    name: str,
    host: str | None = None,
    domain: str | None = None,
    provider: str = "k3s",
    stage: str = "staging",
    user: str = "root",
    port: int = 22,
    identity: str | None = None,
    accept_host_key: str | None = None,
    from_step: str | None = None,
    dry_run: bool = False,
    resolver: str | None = None,
    timeout: int = 300,
    email: str | None = None,
    issuer: str | None = None,
    debug: bool = False,
) -> None:
    """Turn a bare VM into a serving member in one resumable command.

    Steps: preflight, member-new, bootstrap, dns-check, s3-lifecycle, deploy, harbor-secrets,
    deploy-again, health. A rerun resumes at the first unfinished step; the end lists what is
    left by hand."""

    def go() -> None:
        import dataclasses
        from pathlib import Path

        from hubfleet.console import Console
        from hubfleet.files.repo import find_repo
        from hubfleet.members.onboarding import MANUAL, OnboardingFailed, OnboardOptions, checklist
        from hubfleet.members.onboarding_steps import onboard as run

        console = Console()
        options = OnboardOptions(
            host=host,
            domain=domain,
            provider=provider,
            stage=stage,
            user=user,
            port=port,
            identity=Path(identity) if identity else None,
            accept_host_key=accept_host_key,
            from_step=from_step,
            dry_run=dry_run,
            resolver=resolver,
            timeout_s=timeout,
            email=email,
            issuer=issuer,
        )
        try:
            with console.steps(f"onboarding member {name}") as progress:
                states = run(
                    find_repo(),
                    name,
                    dataclasses.replace(options, watcher=progress),
                    say=progress.say,
                )
        except OnboardingFailed as err:
            print(checklist(err.states))
            raise
        print(checklist(states))
        print("left by hand:")
        for item in MANUAL:
            print(f"  - {item.replace('NAME', name)}")

    run_front(go, debug)


@task(
    help={
        "member": "only this member (default: all)",
        "json": "print the rows as JSON (every field, for scripts) instead of the table",
        "debug": DEBUG_HELP,
    },
    optional=["member"],
)
def status(c: Context, member: str | None = None, json: bool = False, debug: bool = False) -> None:
    """Show the federation's members and how each one is doing.

    Per member: stage, provider, nodes Ready, version, release revision and when, kubeconfig
    certificate days left, onboarding steps left. Exits 1 when a member cannot be reached
    (after the whole table: each problem is listed under it)."""

    def go() -> None:
        import json as json_module
        import os

        from hubfleet.console import Console
        from hubfleet.errors import HubfleetError
        from hubfleet.files.repo import find_repo
        from hubfleet.helm import engine_from_env
        from hubfleet.members.status import COLUMNS, federation_status, unreachable_summary

        console = Console()
        repo, engine = find_repo(), engine_from_env(os.environ)
        if json:
            rows = federation_status(repo, engine, member)
            print(json_module.dumps([row.as_json() for row in rows], indent=1))
        else:
            with console.waiting("asking every member's cluster"):
                rows = federation_status(repo, engine, member)
            console.table(COLUMNS, [row.cells() for row in rows])
            down = [row for row in rows if row.problem]
            for row in down[1:]:  # the first one is the failure line below
                console.say(f"member {row.member}: {row.problem}")
        problem = unreachable_summary(rows)
        if problem:
            raise HubfleetError(problem)

    run_front(go, debug)
