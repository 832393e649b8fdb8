#!/usr/bin/env python3
"""Build a throwaway deploy repo for the e2e workflow (.github/workflows/e2e.yaml).

    scripts/e2e_repo.py DEST AGE_KEY

DEST gets this repo's demo chart and support chart, a registry with one k3s member `e2e` on
127.0.0.1 (the runner itself) that runs its support release with the self-signed issuer (the
runner has no public DNS), its values (Grafana served at GRAFANA_HOST through traefik), its
encrypted secrets and a .sops.yaml naming a fresh age key, written to AGE_KEY (outside DEST).
Nothing here talks to a cluster.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.secrets import sops

PROJECT = Path(__file__).resolve().parent.parent
MEMBER = "e2e"
CHART = "charts/demo"
GRAFANA_HOST = "grafana.e2e.hubfleet.example"


def build(dest: Path, age_key: Path) -> DeployRepo:
    proc = subprocess.run(
        ["age-keygen", "-o", str(age_key)], capture_output=True, text=True, check=True
    )
    recipient = proc.stderr.strip().split()[-1]
    shutil.copytree(PROJECT / CHART, dest / CHART)
    shutil.copytree(PROJECT / "support", dest / "support", ignore=shutil.ignore_patterns("charts"))
    (dest / "config").mkdir(parents=True)
    (dest / "secrets" / "config").mkdir(parents=True)
    (dest / ".sops.yaml").write_text(
        yaml.safe_dump({"creation_rules": [{"path_regex": "(^|/)secrets/", "age": recipient}]})
    )
    registry = {
        "members": {
            MEMBER: {
                "stage": "staging",
                "provider": "k3s",
                "domain": "e2e.hubfleet.example",
                "chart": CHART,
                "hosts": [{"address": "127.0.0.1"}],
                "support": {"issuer": "selfsigned"},
            }
        }
    }
    (dest / "config" / "federation.yaml").write_text(yaml.safe_dump(registry))
    (dest / "config" / "common.yaml").write_text("{}\n")
    (dest / "config" / f"{MEMBER}.yaml").write_text(yaml.safe_dump({"hub": {"replicas": 1}}))
    repo = DeployRepo(dest)
    secret = {"hub": {"cookieSecret": secrets.token_hex(32), "proxyToken": secrets.token_hex(16)}}
    sops.write_encrypted(repo, repo.member_secret_values(MEMBER), yaml.safe_dump(secret))
    grafana = {
        "ingress": {
            "hosts": [GRAFANA_HOST],
            "tls": [{"secretName": f"{MEMBER}-grafana-tls", "hosts": [GRAFANA_HOST]}],
        }
    }
    support_values = repo.member_values(MEMBER, "support")
    support_values.parent.mkdir(parents=True)
    support_values.write_text(yaml.safe_dump({"grafana": grafana}))
    password = {"grafana": {"adminPassword": secrets.token_hex(16)}}
    sops.write_encrypted(
        repo, repo.member_secret_values(MEMBER, "support"), yaml.safe_dump(password)
    )
    return repo


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    dest, age_key = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    build(dest, age_key)
    print(f"e2e_repo: deploy repo in {dest}, member {MEMBER}, age key {age_key}")


if __name__ == "__main__":
    main(sys.argv[1:])
