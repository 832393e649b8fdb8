"""Where the deploy repo is and what its paths are called.

hubfleet works on the deploy repo it is run in: found from a start directory upward by its
`config/federation.yaml`, or given by `HUBFLEET_ROOT`. Never on paths relative to this package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubfleet.errors import HubfleetError

REGISTRY = Path("config/federation.yaml")


@dataclass(frozen=True)
class DeployRepo:
    """The paths of one deploy repo, all derived from its root."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / REGISTRY

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def sops_config(self) -> Path:
        return self.root / ".sops.yaml"

    def part_config_dir(self, part: str = "member") -> Path:
        """Where the values layers of a member's release live: config/ for its hub, and
        config/support/ for its support release (secrets/config/ and secrets/config/support/
        for the encrypted ones)."""
        return self.config_dir if part == "member" else self.config_dir / part

    def part_secrets_dir(self, part: str = "member") -> Path:
        base = self.secrets_dir / "config"
        return base if part == "member" else base / part

    def common_values(self, part: str = "member") -> Path:
        return self.part_config_dir(part) / "common.yaml"

    def common_secret_values(self, part: str = "member") -> Path:
        return self.part_secrets_dir(part) / "common.yaml"

    def common_values_folder(self, part: str = "member") -> Path:
        """config/common/: more values for every member, read in sorted order after
        config/common.yaml (the layout of a mybinder.org-deploy repository)."""
        return self.part_config_dir(part) / "common"

    def common_secret_values_folder(self, part: str = "member") -> Path:
        return self.part_secrets_dir(part) / "common"

    def member_values(self, member: str, part: str = "member") -> Path:
        return self.part_config_dir(part) / f"{member}.yaml"

    def member_secret_values(self, member: str, part: str = "member") -> Path:
        return self.part_secrets_dir(part) / f"{member}.yaml"

    def member_kubeconfig(self, member: str) -> Path:
        return self.secrets_dir / f"{member}-kubeconfig.yaml"

    def member_k3s_token(self, member: str) -> Path:
        """A k3s member's cluster token (hubfleet.k3s.token); not a values layer."""
        return self.secrets_dir / f"{member}-k3s.yaml"

    def member_gke_credentials(self, member: str) -> Path:
        """A GKE member's service-account key, cluster endpoint and CA (hubfleet.cloud.gke)."""
        return self.secrets_dir / f"{member}-gke.yaml"

    def relative(self, path: Path) -> str:
        """`path` as shown to operators: relative to the repo root when inside it."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def find_repo(start: Path | None = None, environ: Mapping[str, str] | None = None) -> DeployRepo:
    """The deploy repo named by HUBFLEET_ROOT, else the nearest one above `start` (or cwd)."""
    env = os.environ if environ is None else environ
    explicit = env.get("HUBFLEET_ROOT")
    if explicit:
        root = Path(explicit)
        if not (root / REGISTRY).is_file():
            raise HubfleetError(
                f"HUBFLEET_ROOT={explicit} has no {REGISTRY}; point it at a deploy repo"
            )
        return DeployRepo(root.resolve())
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / REGISTRY).is_file():
            return DeployRepo(candidate)
    raise HubfleetError(
        f"no deploy repo here: no {REGISTRY} in {here} or above; cd into one or set HUBFLEET_ROOT"
    )
