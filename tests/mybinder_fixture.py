"""A made-up repository in the mybinder.org-deploy layout, unlocked (its secrets in plaintext, as
after `git-crypt unlock`), for tests/test_adopt.py. Every value is invented here.

Members: `staging` (kubeconfig, staging), `alpha` (kubeconfig, prod, the prime), `prod` (GKE,
runs the redirector), `cloudy` (EKS: not adopted), `azzy` (Azure: not adopted), `localhost`
(in KUBECONFIG_CLUSTERS, no kubeconfig: not adopted).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import yaml

DEPLOY_PY = '''\
#!/usr/bin/env python3
"""Made-up deploy script: adoption must read it, never run it."""
import os

raise SystemExit("deploy.py was executed")  # running it would stop here

GCP_PROJECTS = {
    "prod": "fixture-binder-1234",
}

GCP_ZONES = {
    "staging": "europe-west1-b",
    "prod": "europe-west1",
}

KUBECONFIG_CLUSTERS = {
    "localhost",
    "staging",
    "alpha",
}

AWS_DEPLOYMENTS = {"cloudy": "binderhub-eks"}

AZURE_RGs = {"azzy": "rg-azzy"}


def get_config_files(release):
    return os.listdir("config")
'''

CHART_YAML = "apiVersion: v2\nname: mybinder\nversion: 0.1.0\ndescription: made-up umbrella\n"
CHART_VALUES = """\
binderhub:
  replicas: 1
  ingress:
    hosts: []
  config:
    BinderHub:
      use_registry: true
federationRedirect:
  enabled: false
  host: binder.example.org
  image:
    name: example/federation-redirect
    tag: "set-by-chartpress"
  check:
    period: 15
  hosts: {}
"""
TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-values
data:
  values.json: {{ .Values | toJson | quote }}
"""
COMMON_BASE = """\
# every member
resources: &defaults
  cpu: 0.5
  memory: 40e9
binderhub:
  config:
    BinderHub:
      build_memory_limit: 40e9
  user:
    <<: *defaults
    memory: 2G
"""
COMMON_LIMITS = """\
binderhub:
  replicas: 2
  extra: [a, b]
"""
CD_YML = """\
name: Continuous Deployment
on:
  push:
    branches: [main]
jobs:
  staging-deploy:
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        include:
          - federation_member: staging
            experimental: false
    steps:
      - run: python ./deploy.py ${{ matrix.federation_member }}
  prod-deploy:
    needs: staging-deploy
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        include:
          - federation_member: prod
          - federation_member: alpha
          - federation_member: cloudy
          - federation_member: azzy
    steps:
      - run: python ./deploy.py ${{ matrix.federation_member }}
"""


def member_values(domain: str, extra: str = "") -> str:
    return f"binderhub:\n  ingress:\n    hosts:\n      - {domain}\n{extra}"


PROD_EXTRA = """\
federationRedirect:
  enabled: true
  hosts:
    alpha:
      prime: true
      url: https://alpha.binder.example.org
      weight: 60
      health: https://alpha.binder.example.org/health
      versions: https://alpha.binder.example.org/versions
    prod:
      prime: false
      url: https://gke.binder.example.org
      weight: 40
      health: https://gke.binder.example.org/health
      versions: https://gke.binder.example.org/versions
    cloudy:
      prime: false
      url: https://cloudy.binder.example.org
      weight: 10
      health: https://cloudy.binder.example.org/health
      versions: https://cloudy.binder.example.org/versions
"""


def certificate_and_key(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, PEM (a real one, made for the test)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=300))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def kubeconfig(member: str, server: str) -> str:
    ca, _ = certificate_and_key(f"{member}-ca")
    cert, key = certificate_and_key(f"{member}-admin")
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": member,
                    "cluster": {"server": server, "certificate-authority-data": b64(ca)},
                }
            ],
            "users": [
                {
                    "name": f"{member}-admin",
                    "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
                }
            ],
            "contexts": [
                {"name": member, "context": {"cluster": member, "user": f"{member}-admin"}}
            ],
            "current-context": member,
        }
    )


def write(root: Path, relative: str, content: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def mybinder_repo(root: Path) -> list[str]:
    """Build the repository at `root`; returns its secret strings, to look for afterwards."""
    secrets = {
        "common_token": "ghp-common-token-7f3a9c1e5b",
        "cryptnono": "cryptnono-secret-55aa9911",
        "alpha_cookie": "alpha-cookie-secret-0b9d7e21",
        "staging_cookie": "staging-cookie-secret-4c2f8a10",
        "prod_cookie": "prod-cookie-secret-9e1d3b77",
        "unused": "allowed-ip-secret-6f6f6f",
    }
    write(root, "deploy.py", DEPLOY_PY)
    write(root, "mybinder/Chart.yaml", CHART_YAML)
    write(root, "mybinder/values.yaml", CHART_VALUES)
    write(root, "mybinder/templates/values.yaml", TEMPLATE)
    write(root, "mybinder-kube-system/Chart.yaml", CHART_YAML.replace("mybinder", "kube-sys"))
    write(root, "cert-manager.env", "CERT_MANAGER_VERSION=v1.0.0\n")
    write(root, "config/common/00-base.yaml", COMMON_BASE)
    write(root, "config/common/10-limits.yaml", COMMON_LIMITS)
    write(root, "config/staging.yaml", member_values("staging.binder.example.org"))
    write(root, "config/alpha.yaml", member_values("alpha.binder.example.org", "  replicas: 3\n"))
    write(root, "config/prod.yaml", member_values("gke.binder.example.org", PROD_EXTRA))
    write(root, "config/cloudy.yaml", member_values("cloudy.binder.example.org"))
    write(root, "config/azzy.yaml", member_values("azzy.binder.example.org"))
    write(root, "config/cert-manager.yaml", "ingressShim: {}\n")
    write(root, ".github/workflows/cd.yml", CD_YML)
    common = f"binderhub:\n  config:\n    GitHubRepoProvider:\n      access_token: {secrets['common_token']}\n"
    write(root, "secrets/config/common/common.yaml", common)
    write(
        root, "secrets/config/common/cryptnono.yaml", f"cryptnono:\n  key: {secrets['cryptnono']}\n"
    )
    for member in ("alpha", "staging", "prod"):
        extra = "  debug: yes\n" if member == "alpha" else ""  # YAML 1.1: Helm reads true
        write(
            root,
            f"secrets/config/{member}.yaml",
            f"binderhub:\n  cookieSecret: {secrets[member + '_cookie']}\n{extra}",
        )
    for member, server in (
        ("staging", "https://10.0.0.1:6443"),
        ("alpha", "https://10.0.0.2:6443"),
    ):
        text = kubeconfig(member, server)
        write(root, f"secrets/{member}-kubeconfig.yaml", text)
        data = yaml.safe_load(text)
        secrets[f"{member}_client_key"] = data["users"][0]["user"]["client-key-data"][-60:]
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "alpha",
            "-f",
            str(root / "secrets/alpha.key"),
        ],
        check=True,
    )
    key_lines = (root / "secrets/alpha.key").read_text().splitlines()
    secrets["alpha_ssh"] = key_lines[2]
    _, gke_key = certificate_and_key("gke-sa")
    service_account = {
        "type": "service_account",
        "project_id": "fixture-binder-1234",
        "private_key_id": "k1",
        "private_key": gke_key.decode(),
        "client_email": "deployer@fixture-binder-1234.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    write(root, "secrets/gke-auth-key-prod.json", json.dumps(service_account, indent=2))
    secrets["gke_key"] = gke_key.decode().splitlines()[2]
    write(root, "secrets/allowed_ips.txt", f"10.1.0.0/16 {secrets['unused']}\n")
    write(root, "secrets/ban.py", "print('bans')\n")
    return list(secrets.values())
