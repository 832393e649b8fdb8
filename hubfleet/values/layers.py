"""A member's values layers, read from the deploy repo (secret layers decrypted in memory).

Order, last wins: chart defaults < the member's registry facts (`hubfleet.*`, and Harbor's
bucket from the member's `s3` block) < config/common.yaml < config/common/*.yaml (sorted) <
secrets/config/common.yaml < secrets/config/common/*.yaml (sorted) < config/<m>.yaml <
secrets/config/<m>.yaml. The two common folders are the layout of a mybinder.org-deploy
repository (`invoke adopt.mybinder` keeps its files as they were): its deploy.py passes
config/common/*.yaml, then secrets/config/common/*.yaml, then the member's two files, so the
common files of either kind come where hubfleet's single common file of that kind is. A
member's support release has the same layers under config/support/ and
secrets/config/support/, over its registry facts (hubfleet.values.support).
A layer file that does not exist is simply absent; a secrets file that is plaintext stops
everything before anything is decrypted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hubfleet.errors import SecretsError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import check_bounds, key_lines, read_text
from hubfleet.helm.values_yaml import parse_values
from hubfleet.registry.members import Member
from hubfleet.values.harbor_storage import harbor_storage_values
from hubfleet.values.merge import MergedValues, ValuesLayer, merge_layers, merge_leaves


@dataclass(frozen=True)
class MemberValues:
    """What a deploy hands to Helm, and what an operator is shown."""

    member: str
    layers: tuple[ValuesLayer, ...]
    user: MergedValues  # every layer but the chart defaults, nulls kept: passed to Helm
    effective: MergedValues  # all layers, nulls applied: what the release ends up with
    decrypt_s: float = 0.0  # how long decrypting the secret layers took


def registry_layer(member: Member, registry_name: str) -> ValuesLayer:
    """Facts from the registry the chart may use, so no member name is written in values.

    `hubfleet.member`, `.stage` and `.domain`; and, for a member with an `s3` block, where its
    Harbor keeps images: harbor.persistence.imageChartStorage.s3.bucket, .region (default
    us-east-1) and .regionendpoint (`hubfleet.values.harbor_storage.harbor_storage_values`), so the bucket is
    written once, in the registry, for Harbor and for the s3.* tasks alike. The S3 keys are
    not facts of the registry: they come from the member's secrets layer.

    The layer sits just above the chart defaults, so, like `hubfleet.*`, any of it can be
    overridden by config/common.yaml or the member's own files (the registry does not win);
    `invoke values MEMBER --show-origin` names whichever file set each value.
    """
    facts = {"member": member.name, "stage": member.stage, "domain": member.domain}
    if member.part == "support":
        from hubfleet.values.support import support_values

        return ValuesLayer(registry_name, {"hubfleet": facts, **support_values(member)})
    return ValuesLayer(registry_name, {"hubfleet": facts, **harbor_storage_values(member)})


def values_layer(text: str, shown: str, secret: bool = False) -> ValuesLayer:
    """A layer from a values file's text, read as `helm -f` reads it (Helm's own parser), with
    the line of each key for messages."""
    check_bounds(text, shown)  # before anything recursive reads it
    lines, stopped = key_lines(text)
    values = parse_values(text, shown, line_hint=stopped, bounded=True)
    return ValuesLayer(shown, values, secret, lines)


def read_values_file(path: Path, shown: str) -> ValuesLayer:
    return values_layer(read_text(path, shown), shown)


def chart_defaults(repo: DeployRepo, member: Member) -> ValuesLayer:
    path = repo.root / member.chart / "values.yaml"
    shown = repo.relative(path)
    if not path.is_file():
        return ValuesLayer(shown, {})
    return read_values_file(path, shown)


def ensure_secrets_encrypted(repo: DeployRepo) -> None:
    """Refuse to go on when any file under secrets/ is plaintext."""
    from hubfleet.secrets import failures, sops

    plaintext = sops.check_tree(repo)
    if len(plaintext) == 1:
        raise SecretsError(failures.not_encrypted_message(repo, plaintext[0]))
    if plaintext:
        names = ", ".join(repo.relative(p) for p in plaintext)
        raise SecretsError(
            f"plaintext under secrets/: {names}; encrypt with: invoke secrets.encrypt FILE"
        )


def folder_layers(folder: Path) -> list[Path]:
    """The values files of a common folder (config/common/), in the sorted order deploy.py of
    a mybinder.org-deploy repository reads them."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def secret_layer_files(repo: DeployRepo, member: Member) -> list[Path]:
    """The secrets files among `member`'s layers that exist."""
    part = member.part
    files = [
        repo.common_secret_values(part),
        *folder_layers(repo.common_secret_values_folder(part)),
        repo.member_secret_values(member.name, part),
    ]
    return [p for p in files if p.is_file()]


def member_values(
    repo: DeployRepo,
    member: Member,
    registry_name: str = "config/federation.yaml",
    decrypted: Mapping[Path, str | Exception] | None = None,
) -> MemberValues:
    """Read and merge all layers of `member`. Its secrets files are decrypted concurrently (to
    their text, read like every layer by Helm's parser), unless `decrypted` already holds
    their texts (a value that is an exception is raised)."""
    from hubfleet.secrets import sops

    present = secret_layer_files(repo, member)
    started = time.perf_counter()
    if decrypted is None:
        ensure_secrets_encrypted(repo)
        decrypted = sops.decrypt_texts(repo, present) if present else {}
    for path in present:
        failed = decrypted.get(path)
        if isinstance(failed, Exception):
            raise failed
    decrypt_s = time.perf_counter() - started

    def plain(path: Path) -> ValuesLayer | None:
        if not path.is_file():
            return None
        return read_values_file(path, repo.relative(path))

    def secret(path: Path) -> ValuesLayer | None:
        if path not in decrypted:
            return None
        return values_layer(str(decrypted[path]), repo.relative(path), secret=True)

    defaults = chart_defaults(repo, member)
    part = member.part
    registry = registry_layer(member, registry_name)
    ordered = [
        registry,
        plain(repo.common_values(part)),
        *(plain(p) for p in folder_layers(repo.common_values_folder(part))),
        secret(repo.common_secret_values(part)),
        *(secret(p) for p in folder_layers(repo.common_secret_values_folder(part))),
        plain(repo.member_values(member.name, part)),
        secret(repo.member_secret_values(member.name, part)),
    ]
    user_layers = tuple(layer for layer in ordered if layer is not None)
    if part == "support":
        from hubfleet.values.redirect import federation_in, monitoring_values

        extra = monitoring_values(federation_in(repo), member)
        if extra:
            data, _, _ = merge_leaves(dict(registry.data), extra, registry.name)
            user_layers = (ValuesLayer(registry.name, data), *user_layers[1:])
    if part == "member":
        serving = _with_serving(repo, member, registry, defaults, user_layers)
        user_layers = (serving, *user_layers[1:])
        quota = _rotation_quota(repo, member, registry_name, defaults, user_layers)
        if quota is not None:
            user_layers = (*user_layers, quota)
    return MemberValues(
        member=member.name,
        layers=(defaults, *user_layers),
        user=merge_layers(user_layers, keep_nulls=True),
        effective=merge_layers((defaults, *user_layers)),
        decrypt_s=decrypt_s,
    )


def _with_serving(
    repo: DeployRepo,
    member: Member,
    registry: ValuesLayer,
    defaults: ValuesLayer,
    layers: tuple[ValuesLayer, ...],
) -> ValuesLayer:
    """The registry layer with the ingress settings that make the charts the member runs
    serve HTTPS (hubfleet.values.serving: which charts run is known only from all layers),
    and, for the member running it, the federation redirector (hubfleet.values.redirect)."""
    from hubfleet.helm.dependencies import declared_dependencies, enabled_dependencies
    from hubfleet.registry.support import support_of
    from hubfleet.values.redirect import federation_in, redirect_values
    from hubfleet.values.serving import serving_values

    extra = redirect_values(federation_in(repo), member)
    if support_of(member) is not None:
        merged = merge_layers((defaults, *layers)).values
        enabled = enabled_dependencies(declared_dependencies(repo.root / member.chart), merged)
        extra.update(serving_values(member, enabled))
    if not extra:
        return registry
    data, _, _ = merge_leaves(dict(registry.data), extra, registry.name)
    return ValuesLayer(registry.name, data, registry.secret, registry.lines)


def _rotation_quota(
    repo: DeployRepo,
    member: Member,
    registry_name: str,
    defaults: ValuesLayer,
    layers: tuple[ValuesLayer, ...],
) -> ValuesLayer | None:
    """The launch quota the federation gives a BinderHub member (0 while it is drained), as
    the last layer: the rotation decides it, whatever the member's own files say."""
    from hubfleet.values.redirect import federation_in

    federation = federation_in(repo)
    place = federation.place(member.name) if federation else None
    if place is None or place.quota is None:
        return None
    if not merge_layers((defaults, *layers)).values.get("binderhubEnabled"):
        return None
    quota = {"binderhub": {"config": {"LaunchQuota": {"total_quota": place.quota}}}}
    return ValuesLayer(f"{registry_name} (rotation)", quota)


def write_secret_leaves(
    repo: DeployRepo, path: Path, incoming: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Set every leaf of `incoming` in the encrypted values file `path` (Harbor's pinned
    secrets, a stack's outputs): decrypted in memory, merged (`merge_leaves`), re-encrypted
    only when a leaf changed. Returns the changed and the unchanged paths, dotted."""
    from hubfleet.secrets import sops

    current = sops.decrypt_mapping(repo, path)
    merged, changed, unchanged = merge_leaves(current, incoming, repo.relative(path))
    if changed:
        sops.write_encrypted(repo, path, yaml.safe_dump(merged, sort_keys=False))
    return changed, unchanged
