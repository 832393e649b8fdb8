"""The WireGuard private keys of a member's hosts, kept sops-encrypted in the repo
(`secrets/<member>-wireguard.yaml`: host address -> private key), made once per host."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from hubfleet.files.repo import DeployRepo
    from hubfleet.hosts.member_run import MemberRun


def keys_path(repo: DeployRepo, member: str) -> Path:
    return repo.secrets_dir / f"{member}-wireguard.yaml"


def member_keys(run: MemberRun, dry_run: bool) -> dict[str, str]:
    """Every host's private key: read (decrypted in memory) once per run; a host without one
    gets a fresh key, stored at once (not in a dry run, where it lives only in memory)."""
    import yaml

    from hubfleet.microk8s.wireguard import new_keypair
    from hubfleet.secrets import sops

    with run.lock:
        if "wireguard-keys" in run.shared:
            keys: dict[str, str] = run.shared["wireguard-keys"]
            return keys
        path = keys_path(run.repo, run.member.name)
        stored = sops.decrypt_yaml(run.repo, path) if path.is_file() else None
        keys = {str(k): str(v) for k, v in (stored or {}).items()}
        missing = [h.address for h in run.member.hosts if h.address not in keys]
        for address in missing:
            keys[address] = new_keypair()[0]
        if missing and not dry_run:
            sops.write_encrypted(run.repo, path, yaml.safe_dump(keys, sort_keys=True))
        run.shared["wireguard-keys"] = keys
        return keys
