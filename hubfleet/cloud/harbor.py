"""Pinning the secrets Harbor generates, so that deploys stop restarting Harbor.

Left unset, the Harbor chart makes new random values on every deploy (core secret, CSRF key,
token certificate, jobservice and registry secrets, registry credentials), and every deploy
restarts Harbor's pods. After the first deploy, `stabilize_secrets` reads what Harbor generated
from the member's cluster and stores it in secrets/config/MEMBER.yaml under the chart values
that make Harbor reuse it (the umbrella chart's `harbor.` keys). Values stay in memory: read
through the Kubernetes adapter, merged into the decrypted secrets, encrypted again by sops.
Only key names are ever reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubfleet.errors import ClusterError
from hubfleet.files.repo import DeployRepo
from hubfleet.values.layers import write_secret_leaves

if TYPE_CHECKING:
    from hubfleet.kube.credentials import ClusterCredentials


# The Secret holding the key and certificate Harbor's core signs registry tokens with. The
# umbrella chart makes it (chart/templates/harbor-token.yaml) and points Harbor at it
# (`harbor.core.secretName` in chart/values.yaml): left to itself, Harbor's chart creates a CA
# on every render, an RSA key each time, even when the token is pinned (0.2 s of CPU, most of a
# member's render).
TOKEN_SECRET = "harbor-token"


@dataclass(frozen=True)
class PinnedSecret:
    """One generated value: in a Secret at `key`; pinned by chart value `value`. The Secret is
    `<fullname>-<secret>` (Harbor's own), or `secret` itself when the umbrella chart makes it."""

    secret: str
    key: str
    value: str  # the chart value path, dotted, under the umbrella chart
    umbrella: bool = False

    @property
    def value_path(self) -> list[str]:
        return self.value.split(".")

    def secret_name(self, release: str) -> str:
        return self.secret if self.umbrella else f"{harbor_fullname(release)}-{self.secret}"


# The Harbor chart's table (REFERENCE.md): chart value <- generated Secret and key.
PINNED_SECRETS: tuple[PinnedSecret, ...] = (
    PinnedSecret("core", "secret", "harbor.core.secret"),
    PinnedSecret("core", "CSRF_KEY", "harbor.core.xsrfKey"),
    PinnedSecret(TOKEN_SECRET, "tls.key", "harbor.core.tokenKey", umbrella=True),
    PinnedSecret(TOKEN_SECRET, "tls.crt", "harbor.core.tokenCert", umbrella=True),
    PinnedSecret("core", "REGISTRY_CREDENTIAL_PASSWORD", "harbor.registry.credentials.password"),
    PinnedSecret("jobservice", "JOBSERVICE_SECRET", "harbor.jobservice.secret"),
    PinnedSecret("registry", "REGISTRY_HTTP_SECRET", "harbor.registry.secret"),
    PinnedSecret(
        "registry-htpasswd", "REGISTRY_HTPASSWD", "harbor.registry.credentials.htpasswdString"
    ),
)


def harbor_fullname(release: str) -> str:
    """The Harbor chart's `harbor.fullname`: the release name alone when it contains "harbor",
    else `<release>-harbor`; its Secrets are called `<fullname>-core` and so on."""
    return release if "harbor" in release else f"{release}-harbor"


def secret_names(release: str) -> list[str]:
    return list(dict.fromkeys(p.secret_name(release) for p in PINNED_SECRETS))


@dataclass(frozen=True)
class StabilizeResult:
    changed: tuple[str, ...]  # chart value paths written (new or different)
    unchanged: tuple[str, ...]

    @property
    def wrote(self) -> bool:
        return bool(self.changed)

    def __str__(self) -> str:
        if not self.changed:
            return f"all {len(self.unchanged)} Harbor secrets already pinned"
        return f"pinned {len(self.changed)} Harbor secret(s), {len(self.unchanged)} already pinned"


def generated_values(
    member: str, namespace: str, release: str, read: Callable[[str], Mapping[str, str] | None]
) -> dict[str, str]:
    """Chart value path -> value, from the Secrets `read(name)` returns (None: missing)."""
    secrets: dict[str, Mapping[str, str]] = {}
    for name in secret_names(release):
        data = read(name)
        if data is None:
            raise ClusterError(
                f"member {member}: Secret {namespace}/{name} not found; Harbor has not been "
                f"deployed yet: deploy first (invoke deploy {member}), then rerun"
            )
        secrets[name] = data
    values: dict[str, str] = {}
    for pinned in PINNED_SECRETS:
        name = pinned.secret_name(release)
        if pinned.key not in secrets[name]:
            raise ClusterError(
                f"member {member}: Secret {namespace}/{name} has no key {pinned.key} "
                f"(needed for {pinned.value}); is Harbor's chart version one this supports?"
            )
        values[pinned.value] = secrets[name][pinned.key]
    return values


def nested_values(generated: Mapping[str, str]) -> dict[str, Any]:
    """Values by dotted chart path as nested mappings."""
    nested: dict[str, Any] = {}
    for path, value in generated.items():
        *parents, leaf = path.split(".")
        here = nested
        for key in parents:
            here = here.setdefault(key, {})
        here[leaf] = value
    return nested


def stabilize_secrets(
    repo: DeployRepo,
    member_name: str,
    say: Callable[[str], None] = print,
    credentials: ClusterCredentials | None = None,
) -> StabilizeResult:
    """Read Harbor's generated secrets from the member's cluster and pin them in its secrets
    file, re-encrypted; a second run finds them pinned and writes nothing. `credentials`
    replace the member's own kubeconfig (secrets/MEMBER-kubeconfig.yaml) when given."""
    from hubfleet.cloud.credentials import member_credentials
    from hubfleet.kube import client as kube
    from hubfleet.registry.members import load_registry

    member = load_registry(repo).member(member_name)
    creds = credentials or member_credentials(repo, member)
    with kube.member_api(creds) as api:
        generated = generated_values(
            member.name,
            member.namespace,
            member.release,
            lambda name: kube.read_secret(api, member.namespace, name),
        )
    path = repo.member_secret_values(member.name)
    shown = repo.relative(path)
    changed, unchanged = write_secret_leaves(repo, path, nested_values(generated))
    if not changed:
        say(f"member {member.name}: Harbor's {len(unchanged)} secrets already pinned in {shown}")
        return StabilizeResult((), tuple(unchanged))
    for value_path in changed:
        say(f"  {value_path}: pinned")
    say(
        f"member {member.name}: pinned {len(changed)} Harbor secret(s) in {shown} "
        f"({len(unchanged)} already pinned)"
    )
    return StabilizeResult(tuple(changed), tuple(unchanged))
