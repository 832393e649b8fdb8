"""Where a member's cluster credentials come from, by provider: its kubeconfig in
`secrets/<member>-kubeconfig.yaml`, or for GKE a service-account key exchanged for a short-lived
token (`hubfleet.cloud.gke`). Decrypted in memory, handed down as `ClusterCredentials`.
"""

from __future__ import annotations

from pathlib import Path

from hubfleet.cloud import gke
from hubfleet.errors import SecretsError
from hubfleet.files.repo import DeployRepo
from hubfleet.kube.credentials import ClusterCredentials, credentials_from_kubeconfig
from hubfleet.registry.members import Member
from hubfleet.secrets import sops


def member_secrets_file(repo: DeployRepo, member: Member) -> Path:
    """The encrypted file a member's credentials come from (it depends on the provider)."""
    if member.provider == "gke":
        return repo.member_gke_credentials(member.name)
    return repo.member_kubeconfig(member.name)


def member_credentials(repo: DeployRepo, member: Member) -> ClusterCredentials:
    """The member's credentials, from its secrets decrypted in memory.

    Most members: `secrets/<member>-kubeconfig.yaml` and the member's context in it. GKE
    members: `secrets/<member>-gke.yaml` (a service-account key, the endpoint and CA), turned
    into a kubeconfig with a fresh access token by hubfleet.cloud.gke.
    """
    path = member_secrets_file(repo, member)
    shown = repo.relative(path)
    if member.provider == "gke":
        if not path.is_file():
            raise SecretsError(
                f"member {member.name}: no GKE credentials at {shown}; store the service-account "
                f"key, endpoint and CA encrypted there (invoke secrets.encrypt {shown})"
            )
        return gke.gke_credentials(
            member.name,
            gke.cluster_of(member),
            sops.decrypt_yaml(repo, path),
            shown,
            context=member.kube_context,
        )
    if not path.is_file():
        raise SecretsError(
            f"member {member.name}: no kubeconfig at {shown}; store it encrypted there "
            f"(invoke secrets.encrypt {shown})"
        )
    data = sops.decrypt_yaml(repo, path)
    return credentials_from_kubeconfig(member.name, data, shown, member.kube_context)
