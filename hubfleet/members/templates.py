"""The files a new member starts with, from the deploy repo's templates.

config/NAME.yaml is filled in from config/templates/member.yaml (the member's name, domain
and hostnames, its host's facts and its sizing); secrets/config/NAME.yaml from
config/templates/member-secrets.yaml (fresh random secrets). The templates are plain YAML
with placeholders in braces filled by `str.format_map`; a mistake in one names the template.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubfleet.errors import ConfigError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import parse_with_lines, read_text
from hubfleet.registry import sizing
from hubfleet.secrets import generate as secretgen

if TYPE_CHECKING:
    from hubfleet.cloud.gke import GkeCluster

VALUES_TEMPLATE = Path("config/templates/member.yaml")
SECRETS_TEMPLATE = Path("config/templates/member-secrets.yaml")
# the member's support release (ingress, certificates, monitoring): config/support/NAME.yaml
# and secrets/config/support/NAME.yaml
SUPPORT_VALUES_TEMPLATE = Path("config/templates/member-support.yaml")
SUPPORT_SECRETS_TEMPLATE = Path("config/templates/member-support-secrets.yaml")
# a member that runs JupyterHub alone (member.new --kind jupyterhub)
JUPYTERHUB_VALUES_TEMPLATE = Path("config/templates/member-jupyterhub.yaml")
JUPYTERHUB_SECRETS_TEMPLATE = Path("config/templates/member-jupyterhub-secrets.yaml")
KINDS = ("binder", "jupyterhub")


@dataclass(frozen=True)
class Hostnames:
    """Where a member serves, by mybinder.org's convention: BinderHub at the domain itself."""

    binder: str
    hub: str
    registry: str
    grafana: str


def hostnames(domain: str) -> Hostnames:
    return Hostnames(
        binder=domain,
        hub=f"hub.{domain}",
        registry=f"registry.{domain}",
        grafana=f"grafana.{domain}",
    )


@dataclass(frozen=True)
class NodeShape:
    """What a member is sized from: a host's facts, or the node type of a cloud pool."""

    cpus: int
    ram_gb: float
    disk_gb: float
    source: str  # for the file's comment: "host 192.0.2.10", "GKE user nodes"


@dataclass(frozen=True)
class NewMember:
    """What the operator asked for: `invoke member.new NAME --host ADDR --domain DOMAIN ...`."""

    name: str
    address: str
    domain: str
    provider: str = "k3s"
    stage: str = "staging"
    user: str = "root"
    port: int = 22
    chart: str | None = None  # default: the umbrella chart, chart/
    gke: GkeCluster | None = None  # provider gke: where the cluster is (no hosts)
    nodes: NodeShape | None = None  # provider gke: the user pool's node type, for sizing
    email: str | None = None  # the ACME contact of its certificates (support.email)
    issuer: str | None = None  # its ClusterIssuer (support.issuer), when not letsencrypt-prod
    kind: str = "binder"  # binder (BinderHub, its JupyterHub inside) or jupyterhub (alone)
    # provider kubeconfig: an existing cluster's kubeconfig, imported encrypted, and its context
    kubeconfig: Path | None = None
    kube_context: str | None = None
    gpus: int = 0  # GPUs per node: a jupyterhub member then offers a GPU profile
    github_orgs: tuple[str, ...] = ()  # a jupyterhub member's users: these GitHub orgs

    def templates(self) -> tuple[Path, Path]:
        """The (values, secrets) templates of its kind."""
        if self.kind == "jupyterhub":
            return JUPYTERHUB_VALUES_TEMPLATE, JUPYTERHUB_SECRETS_TEMPLATE
        return VALUES_TEMPLATE, SECRETS_TEMPLATE


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def fill_template(repo: DeployRepo, template: Path, values: Mapping[str, object]) -> str:
    """The template's text with its placeholders filled; a mistake names the template."""
    path = repo.root / template
    if not path.exists():
        raise ConfigError(f"{template}: template not found (a deploy repo keeps it there)")
    text = read_text(path, str(template))  # bounded, like every YAML file
    try:
        for _, field_name, spec, conversion in string.Formatter().parse(text):
            if field_name is not None and (spec or conversion):
                # {name:>999999999} would fill memory: placeholders are names, nothing more
                raise ConfigError(
                    f"{template}: placeholder {{{field_name}}} has a format or conversion; "
                    "write it as a bare {name}"
                )
    except ValueError as err:
        raise ConfigError(f"{template}: malformed placeholder ({err})") from None
    try:
        filled = text.format_map(_Placeholders({k: str(v) for k, v in values.items()}))
    except KeyError as err:
        raise ConfigError(
            f"{template}: unknown placeholder {{{err.args[0]}}} (known: {', '.join(values)})"
        ) from None
    except (ValueError, IndexError) as err:
        raise ConfigError(f"{template}: malformed placeholder ({err})") from None
    parsed = parse_with_lines(filled, path, str(template)).data
    if not isinstance(parsed, dict):
        raise ConfigError(f"{template}: does not fill in to a YAML mapping")
    return filled


def values_placeholders(
    request: NewMember, shape: NodeShape, sized: sizing.MemberSizing
) -> dict[str, object]:
    names = hostnames(request.domain)
    resources = sized.dind.as_values()
    return {
        "name": request.name,
        "domain": request.domain,
        "address": request.address,
        "sized_from": shape.source,
        "cpus": shape.cpus,
        "ram_gb": shape.ram_gb,
        "disk_gb": shape.disk_gb,
        "binder_host": names.binder,
        "hub_host": names.hub,
        "registry_host": names.registry,
        "grafana_host": names.grafana,
        "ram_per_user_mb": sized.ram_per_user_mb,
        "max_pods": sized.max_pods,
        "launch_quota": sized.launch_quota,
        "dind_cpu_request": resources["requests"]["cpu"],
        "dind_memory_request": resources["requests"]["memory"],
        "dind_cpu_limit": resources["limits"]["cpu"],
        "dind_memory_limit": resources["limits"]["memory"],
        "image_cleaner_high_gb": _number(sized.image_cleaner_high_gb),
        "image_cleaner_low_gb": _number(sized.image_cleaner_low_gb),
        "image_cleaner_high_bytes": round(sized.image_cleaner_high_gb * sizing.BYTES_PER_GB),
        "image_cleaner_low_bytes": round(sized.image_cleaner_low_gb * sizing.BYTES_PER_GB),
        **user_placeholders(request, shape, sized),
    }


def user_placeholders(
    request: NewMember, shape: NodeShape, sized: sizing.MemberSizing
) -> dict[str, object]:
    """A JupyterHub member's per-user resources from its node: the RAM sizing guarantees each
    user (twice that as the limit), half a CPU guaranteed and up to two, and half the disk
    shared among the users it holds at once (1 to 10 GB each); a GPU profile when it has GPUs."""
    users = max(1, sized.launch_quota)
    storage = int(max(1, min(10, shape.disk_gb * 0.5 // users)))
    cpu_limit = min(2, shape.cpus)
    gpu_profile = ""
    if request.gpus > 0:
        gpu_profile = (
            "      - display_name: GPU\n"
            '        description: "1 NVIDIA GPU"\n'
            "        kubespawner_override:\n"
            "          extra_resource_limits:\n"
            '            nvidia.com/gpu: "1"\n'
            "          node_selector:\n"
            '            nvidia.com/gpu.present: "true"\n'
            "          tolerations:\n"
            "            - key: nvidia.com/gpu\n"
            "              operator: Exists\n"
            "              effect: NoSchedule\n"
        )
    return {
        "user_cpu_guarantee": 0.5,
        "user_cpu_limit": cpu_limit,
        "user_memory_limit_mb": 2 * sized.ram_per_user_mb,
        "user_storage_gb": storage,
        "gpu_profile": gpu_profile,
        "allowed_organizations": "[" + ", ".join(request.github_orgs) + "]",
    }


def fresh_jupyterhub_secrets() -> dict[str, str]:
    """A JupyterHub-only member's: the hub's and proxy's, and a placeholder for the GitHub
    OAuth app's client secret (fresh and random, so it is never someone else's)."""
    return {
        "hub_cookie_secret": secretgen.token_hex(32),
        "proxy_secret_token": secretgen.token_hex(32),
        "crypt_keeper_key": secretgen.token_hex(32),
        "github_client_secret": "REPLACE-WITH-THE-OAUTH-APP-SECRET-" + secretgen.password(12),
    }


def fresh_support_secrets() -> dict[str, str]:
    """New random values for the support release (Grafana's admin password: its chart would
    make a new one on each render, and no deploy would look unchanged)."""
    return {"grafana_admin_password": secretgen.password(24)}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def fresh_secrets() -> dict[str, str]:
    """New random values for everything the chart needs that no one else makes."""
    return {
        "hub_cookie_secret": secretgen.token_hex(32),
        "proxy_secret_token": secretgen.token_hex(32),
        "binder_api_token": secretgen.token_hex(32),
        # JupyterHub's chart makes this one itself, but twice on its first install (once for
        # its Secret, once for the hub's checksum annotation): the hub restarts on the next
        # deploy and that deploy never looks unchanged
        "crypt_keeper_key": secretgen.token_hex(32),
        "harbor_admin_password": secretgen.password(24),
        "harbor_secret_key": secretgen.password(16),  # Harbor wants exactly 16 characters
        "harbor_database_password": secretgen.password(24),
    }
