"""pytest plugin: throwaway deploy repos with real sops/age encryption.

`deploy_repo(members=...)` builds a deploy repo in a temp dir: the demo chart, a registry with
the given members, their values, and their secrets and kubeconfigs encrypted with sops to a
fresh age key made for the test session. SOPS_AGE_KEY_FILE is set for the test (monkeypatch),
HOME points at an empty dir so no personal sops key is picked up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.secrets import sops

PROJECT = Path(__file__).resolve().parent.parent


def age_key(directory: Path) -> tuple[Path, str]:
    key = directory / "operator.agekey"
    proc = subprocess.run(
        ["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True
    )
    recipient = proc.stderr.strip().split()[-1]
    return key, recipient


@pytest.fixture(scope="session")
def operator_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh age identity (key file, recipient) for this test session."""
    return age_key(tmp_path_factory.mktemp("age"))


def secret_values(member: str) -> dict[str, Any]:
    """Distinctive made-up secrets, so a test can look for them in output."""
    seed = member.encode().hex()
    return {
        "hub": {
            "cookieSecret": (seed * 64)[:64],
            "proxyToken": f"proxy-token-of-{member}-{seed}",
        },
        "demo": {"adminPassword": f"admin-password-of-{member}"},
    }


MakeRepo = Callable[..., DeployRepo]


@pytest.fixture
def deploy_repo(
    tmp_path: Path, operator_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> MakeRepo:
    key, recipient = operator_key
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.delenv("HUBFLEET_HELM", raising=False)
    monkeypatch.delenv("CI", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))

    def make(
        members: Mapping[str, Mapping[str, Any]],
        kubeconfigs: Mapping[str, Mapping[str, Any]] | None = None,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: Mapping[str, Mapping[str, Any]] | None = None,
        common: Mapping[str, Any] | None = None,
    ) -> DeployRepo:
        root = tmp_path / "repo"
        shutil.copytree(PROJECT / "charts" / "demo", root / "charts" / "demo")
        (root / "config").mkdir(parents=True)
        (root / "secrets" / "config").mkdir(parents=True)
        (root / ".sops.yaml").write_text(
            yaml.safe_dump({"creation_rules": [{"path_regex": "(^|/)secrets/", "age": recipient}]})
        )
        records = {
            name: {"stage": "staging", "provider": "kubeconfig", "chart": "charts/demo", **rec}
            for name, rec in members.items()
        }
        (root / "config" / "federation.yaml").write_text(yaml.safe_dump({"members": records}))
        (root / "config" / "common.yaml").write_text(
            yaml.safe_dump(common or {"demo": {"greeting": "hello"}})
        )
        repo = DeployRepo(root)
        for name in members:
            member_values = (values or {}).get(name, {"hub": {"replicas": 1}})
            (root / "config" / f"{name}.yaml").write_text(yaml.safe_dump(dict(member_values)))
            secret = (secrets or {}).get(name, secret_values(name))
            sops.write_encrypted(
                repo, repo.member_secret_values(name), yaml.safe_dump(dict(secret))
            )
            kubeconfig = (kubeconfigs or {}).get(name)
            if kubeconfig is not None:
                sops.write_encrypted(
                    repo, repo.member_kubeconfig(name), yaml.safe_dump(dict(kubeconfig))
                )
        return repo

    return make


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its content (to prove nothing was written)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def age_env(key: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY_FILE"] = str(key)
    return env
