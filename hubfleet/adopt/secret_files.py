"""The secrets an adoption takes over, re-encrypted with sops to the recipients .sops.yaml names:
kubeconfigs, members' SSH keys, secret values layers, and GKE service-account keys (into the
member's secrets/<member>-gke.yaml). Plaintext stays in memory: sops reads it from a pipe and
its ciphertext comes back on one.

sops rewrites YAML as YAML 1.2 while Helm reads values as YAML 1.1 (`yes` is true to Helm, a
string to sops), so each encrypted file is decrypted again in memory and read back: a file
whose values would change is encrypted from its values instead (its comments and anchors are
not kept, and the report says so); one that still differs stops the adoption. A file whose
encrypted copy already holds the same values is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubfleet.adopt.files import CHANGED, NEW, UNCHANGED, AdoptedFile
from hubfleet.adopt.leftovers import KNOWN, Leftover, unused_secret
from hubfleet.adopt.members import FoundMember
from hubfleet.adopt.source import SourceRepo
from hubfleet.errors import ConfigError, SecretsError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import parse_with_lines
from hubfleet.helm.values_yaml import parse_values
from hubfleet.secrets import sops
from hubfleet.secrets.failures import not_encrypted_message

VALUES, YAML, TEXT = "values", "yaml", "text"
WORKERS = 4
REWRITTEN = "encrypted from its values: sops would have read some of them differently"


@dataclass(frozen=True)
class SecretSource:
    """A secret of the adopted repository and where it goes; `kind` says how it is read."""

    source: str
    target: Path
    kind: str
    plaintext: str = field(repr=False)


def reading(kind: str, text: str, shown: str) -> Any:
    """What `text` means to its reader: Helm for values, YAML for the others, else the text."""
    if kind == VALUES:
        return parse_values(text, shown)
    if kind == YAML:
        return parse_with_lines(text, Path(shown), shown).data
    return text


def _gke_key(source: SourceRepo, relative: str) -> str:
    # bounded; the message names a line, never a value
    key = parse_json(source.read_text(relative), source.shown(relative))
    if not isinstance(key, dict):
        raise ConfigError(f"{source.shown(relative)}: not a service-account key (a JSON object)")
    return yaml.safe_dump({"service_account": key}, sort_keys=False)


def secret_sources(
    repo: DeployRepo, source: SourceRepo, members: Sequence[FoundMember]
) -> tuple[list[SecretSource], list[Leftover]]:
    """Every secret the adopted members use, and every other file under secrets/ as a leftover."""
    wanted: dict[str, tuple[Path, str]] = {
        rel: (repo.root / rel, VALUES) for rel in source.files("secrets/config/common", "*.yaml")
    }
    for member in members:
        name = member.name
        wanted[f"secrets/config/{name}.yaml"] = (repo.member_secret_values(name), VALUES)
        wanted[f"secrets/{name}.key"] = (repo.secrets_dir / f"{name}.key", TEXT)
        if member.provider == "kubeconfig":
            wanted[f"secrets/{name}-kubeconfig.yaml"] = (repo.member_kubeconfig(name), YAML)
        else:
            wanted[f"secrets/gke-auth-key-{name}.json"] = (repo.member_gke_credentials(name), YAML)
    found, leftovers = [], []
    public = {f"secrets/{m.name}.key.pub" for m in members}
    for relative in source.walk("secrets"):
        if relative in wanted:
            target, kind = wanted[relative]
            if relative.endswith(".json"):
                text = _gke_key(source, relative)
            else:
                text = source.read_text(relative)
            found.append(SecretSource(relative, target, kind, text))
        elif relative not in public and relative not in KNOWN:
            leftovers.append(unused_secret(relative))
    return found, leftovers


def _encrypted(repo: DeployRepo, secret: SecretSource, want: Any) -> tuple[bytes, str]:
    shown = repo.relative(secret.target)
    content = sops.encrypted(repo, secret.target, secret.plaintext)
    back = sops.decrypt_content(repo, secret.target, content)
    if reading(secret.kind, back, shown) == want:
        return content, ""
    if secret.kind == TEXT:
        raise SecretsError(f"{shown}: sops does not give back what it was given; store it by hand")
    content = sops.encrypted(repo, secret.target, yaml.safe_dump(want, sort_keys=False))
    back = sops.decrypt_content(repo, secret.target, content)
    if reading(secret.kind, back, shown) != want:
        raise SecretsError(
            f"{shown}: its values do not survive sops' YAML (from {secret.source}); "
            "quote its ambiguous values (yes, no, on, off, 0777) there, then adopt again"
        )
    return content, REWRITTEN


def planned_secret(repo: DeployRepo, secret: SecretSource, dry_run: bool) -> AdoptedFile:
    """The secret's encrypted file; unchanged when its current copy decrypts to the same."""
    want = reading(secret.kind, secret.plaintext, secret.source)
    target = secret.target
    change = NEW
    if target.exists():
        if not sops.is_encrypted(target):
            raise SecretsError(not_encrypted_message(repo, target))
        current = sops.decrypt(repo, target)
        if reading(secret.kind, current, repo.relative(target)) == want:
            return AdoptedFile(target, secret.source, UNCHANGED, secret=True)
        change = CHANGED
    if dry_run:
        return AdoptedFile(target, secret.source, change, secret=True)
    content, note = _encrypted(repo, secret, want)
    return AdoptedFile(target, secret.source, change, content, secret=True, note=note)


def planned_secrets(
    repo: DeployRepo, secrets: Sequence[SecretSource], dry_run: bool
) -> list[AdoptedFile]:
    """Each secret planned (sops runs for several at once); the first failure is raised."""
    if not secrets:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(secrets))) as pool:
        futures = [pool.submit(planned_secret, repo, s, dry_run) for s in secrets]
    return [future.result() for future in futures]
