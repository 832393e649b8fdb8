"""Kubeconfig files as data: the member rewrite, client certificate expiry, and the merge into
an operator's personal kubeconfig.

The kubeconfig k3s writes (`default` cluster, user and context, server 127.0.0.1) or MicroK8s
prints (`microk8s-cluster`, `admin`, `microk8s`) becomes the member's: every name the member's,
the server the address clients use, the member's namespace on the context. All of it works on
the parsed YAML, never on its text. The file helpers at the end are for the one place hubfleet
writes a personal kubeconfig, on request: a timestamped backup first, mode 0600, atomically.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from hubfleet.errors import ConfigError
from hubfleet.files.atomic import write_atomically
from hubfleet.files.yamlfile import load_with_lines

CERT_WARN_DAYS = 30
SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


# --- the member rewrite -----------------------------------------------------------------------


def _entries(kubeconfig: Mapping[str, Any], section: str, source: str) -> list[dict[str, Any]]:
    entries = kubeconfig.get(section)
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries
    ):
        raise ConfigError(f"{source}: `{section}` is not a list of named entries")
    return entries


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in entries if e["name"] == name), None)


def _single_context(kubeconfig: Mapping[str, Any], source: str) -> dict[str, Any]:
    contexts = _entries(kubeconfig, "contexts", source)
    if len(contexts) != 1:
        names = ", ".join(c["name"] for c in contexts) or "none"
        raise ConfigError(f"{source}: expected a kubeconfig with one context, found: {names}")
    return contexts[0]


def member_entries(
    kubeconfig: Mapping[str, Any],
    member: str,
    context: str | None = None,
    source: str = "kubeconfig",
) -> dict[str, Any]:
    """The kubeconfig of one context (the only one, or the one named) with the cluster, user
    and context all renamed to `member` and current-context `member`; nothing else changes."""
    if not isinstance(kubeconfig, Mapping):
        raise ConfigError(f"{source}: not a kubeconfig (not a mapping)")
    if context is None:
        chosen = _single_context(kubeconfig, source)
    else:
        found = _named(_entries(kubeconfig, "contexts", source), context)
        if found is None:
            raise ConfigError(f"{source}: no context {context!r}")
        chosen = found
    ctx = chosen.get("context")
    if not isinstance(ctx, dict) or not isinstance(ctx.get("cluster"), str):
        raise ConfigError(f"{source}: context {chosen['name']!r} names no cluster")
    cluster = _named(_entries(kubeconfig, "clusters", source), ctx["cluster"])
    if cluster is None:
        raise ConfigError(
            f"{source}: context {chosen['name']!r} names cluster {ctx['cluster']!r}, which is not defined"
        )
    user = None
    if ctx.get("user") is not None:
        user = _named(_entries(kubeconfig, "users", source), str(ctx["user"]))
        if user is None:
            raise ConfigError(
                f"{source}: context {chosen['name']!r} names user {ctx['user']!r}, which is not defined"
            )
    renamed_ctx = {**copy.deepcopy(ctx), "cluster": member}
    if user is not None:
        renamed_ctx["user"] = member
    parts = {
        "clusters": [{**copy.deepcopy(cluster), "name": member}],
        "contexts": [{**copy.deepcopy(chosen), "name": member, "context": renamed_ctx}],
        "users": [{**copy.deepcopy(user), "name": member}] if user is not None else [],
        "current-context": member,
    }
    result: dict[str, Any] = {}
    for key, value in kubeconfig.items():  # keep the file's own key order
        result[key] = parts.pop(key) if key in parts else copy.deepcopy(value)
    result.update(parts)
    return result


def rewrite(
    kubeconfig: Mapping[str, Any],
    member: str,
    server: str,
    namespace: str | None = None,
    source: str = "kubeconfig",
) -> dict[str, Any]:
    """A fetched single-context kubeconfig (k3s, MicroK8s, ...) made the member's: every name
    `member`, the cluster's server `server`, the context's namespace `namespace` (left as it
    is when None), current-context `member`. Credentials and CA data are kept as they are."""
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            f"server {server!r} is not an https:// URL (like https://203.0.113.7:6443)"
        )
    result = member_entries(kubeconfig, member, None, source)
    result["clusters"][0].setdefault("cluster", {})
    if not isinstance(result["clusters"][0]["cluster"], dict):
        raise ConfigError(f"{source}: cluster entry has no `cluster` mapping")
    result["clusters"][0]["cluster"]["server"] = server
    if namespace is not None:
        result["contexts"][0]["context"]["namespace"] = namespace
    return result


def as_yaml(kubeconfig: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(kubeconfig), sort_keys=False, default_flow_style=False)


# --- client certificate expiry ----------------------------------------------------------------


def _current_user(kubeconfig: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `user` mapping of the current context (or of the only context, or the only user)."""
    contexts = [c for c in kubeconfig.get("contexts") or [] if isinstance(c, dict)]
    users = [u for u in kubeconfig.get("users") or [] if isinstance(u, dict)]
    only = contexts[0] if len(contexts) == 1 else None
    ctx = next((c for c in contexts if c.get("name") == kubeconfig.get("current-context")), only)
    if ctx is None:
        user = users[0] if len(users) == 1 else None
    else:
        inner = ctx.get("context")
        name = inner.get("user") if isinstance(inner, Mapping) else None
        user = next((u for u in users if u.get("name") == name), None)
    entry = (user or {}).get("user")
    return entry if isinstance(entry, Mapping) else None


def client_cert_days_left(kubeconfig: Mapping[str, Any], now: dt.datetime) -> int | None:
    """Whole days until the current user's client certificate expires (negative: expired),
    or None when it authenticates otherwise (a token, an exec plugin, a certificate file)."""
    from cryptography import x509

    user = _current_user(kubeconfig)
    data = user.get("client-certificate-data") if user else None
    if not data:
        return None
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(str(data)))
    except ValueError as err:
        raise ConfigError(f"client-certificate-data is not a PEM certificate ({err})") from None
    left = cert.not_valid_after_utc - now.astimezone(dt.UTC)
    return left // dt.timedelta(days=1)


def cert_warning(
    kubeconfig: Mapping[str, Any], now: dt.datetime, warn_days: int = CERT_WARN_DAYS
) -> str | None:
    """A warning when the client certificate expires within `warn_days`, else None."""
    days = client_cert_days_left(kubeconfig, now)
    if days is None or days >= warn_days:
        return None
    when = "has expired" if days < 0 else f"expires in {days} day{'s' if days != 1 else ''}"
    return (
        f"the client certificate {when}; k3s renews its own copy on restart, but a copy taken "
        "off the host does not renew: fetch the kubeconfig again"
    )


# --- merging into a personal kubeconfig -------------------------------------------------------


@dataclass(frozen=True)
class MergeChange:
    """One entry of the personal kubeconfig a merge touches (names only, never credentials)."""

    section: str  # cluster, user or context
    name: str
    action: Literal["added", "updated", "unchanged"]

    def __str__(self) -> str:
        return f"{self.section} {self.name}: {self.action}"


def _empty_kubeconfig() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "contexts": [],
        "users": [],
        "preferences": {},
    }


def merge_into(personal: Mapping[str, Any] | None, member_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`personal` with `member_cfg`'s clusters, users and contexts upserted by name.

    Entries of other names stay as they are, where they are. The current-context is never
    changed; it is set to `member_cfg`'s only when `personal` had none.
    """
    result = copy.deepcopy(dict(personal)) if personal else _empty_kubeconfig()
    for section, _ in SECTIONS:
        if result.get(section) is None:  # missing, or `null` as kubectl sometimes writes
            result[section] = []
        entries = _entries(result, section, "personal kubeconfig")  # the list itself
        for entry in _entries(member_cfg, section, "member kubeconfig"):
            index = next((i for i, e in enumerate(entries) if e["name"] == entry["name"]), None)
            if index is None:
                entries.append(copy.deepcopy(entry))
            else:
                entries[index] = copy.deepcopy(entry)
    if not result.get("current-context") and member_cfg.get("current-context"):
        result["current-context"] = member_cfg["current-context"]
    return result


def merge_changes(
    personal: Mapping[str, Any] | None, member_cfg: Mapping[str, Any]
) -> list[MergeChange]:
    """What `merge_into(personal, member_cfg)` adds, updates or leaves, entry by entry."""
    changes = []
    for section, singular in SECTIONS:
        before = {e["name"]: e for e in _entries(personal or {}, section, "personal kubeconfig")}
        for entry in _entries(member_cfg, section, "member kubeconfig"):
            old = before.get(entry["name"])
            action: Literal["added", "updated", "unchanged"] = (
                "added" if old is None else "unchanged" if old == entry else "updated"
            )
            changes.append(MergeChange(singular, entry["name"], action))
    return changes


# --- the personal kubeconfig file -------------------------------------------------------------


def default_path(environ: Mapping[str, str]) -> Path:
    """~/.kube/config, from HOME as the environment gives it."""
    home = environ.get("HOME")
    if not home:
        raise ConfigError("HOME is not set; name the kubeconfig to merge into with --into")
    return Path(home) / ".kube" / "config"


def read_file(path: Path) -> dict[str, Any] | None:
    """A kubeconfig file's content; None when it does not exist or is empty."""
    if not path.exists():
        return None
    try:  # bounded: size, depth, aliases, core tags only (hubfleet.files.yamlfile)
        data = load_with_lines(path).data
    except ConfigError as err:
        raise ConfigError(f"{err}; not a kubeconfig, not touching it") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a kubeconfig (not a mapping)")
    return data


KUBECONFIG_KEYS = frozenset(
    (
        "apiVersion",
        "kind",
        "clusters",
        "contexts",
        "users",
        "current-context",
        "preferences",
        "extensions",
    )
)


def _not_a_kubeconfig(data: Mapping[str, Any]) -> str | None:
    """Why a YAML mapping is not a kubeconfig, or None when it is one."""
    foreign = set(data) - KUBECONFIG_KEYS
    if foreign:
        return "keys " + ", ".join(sorted(map(str, foreign)))
    if data.get("kind") != "Config":
        return "no kind: Config" if data.get("kind") is None else f"kind {data['kind']}"
    if data.get("apiVersion") != "v1":
        version = data.get("apiVersion")
        return "no apiVersion: v1" if version is None else f"apiVersion {version}"
    return None


def check_merge_target(path: Path, follow_symlinks: bool = False) -> None:
    """Refuse a place to merge into that is not a kubeconfig's: a symlink (unless
    `follow_symlinks`; never one to nothing), a path two or more folders of which are missing
    (only the last is made), a file that is not a kubeconfig (apiVersion v1, kind Config)."""
    if path.is_symlink():
        if not path.exists():
            raise ConfigError(
                f"{path} is a symlink to {os.readlink(path)}, which does not exist; "
                "point --into at a kubeconfig file"
            )
        if not follow_symlinks:
            raise ConfigError(
                f"{path} is a symlink to {os.readlink(path)}; to write that file, "
                "add --follow-symlinks"
            )
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is not a file; point --into at a kubeconfig file")
    parent = path.resolve().parent
    if not parent.is_dir() and not parent.parent.is_dir():
        raise ConfigError(
            f"{parent.parent} does not exist; create it first (only the last folder is made)"
        )
    existing = read_file(path)
    if existing is None:
        return
    what = _not_a_kubeconfig(existing)
    if what:
        raise ConfigError(f"{path} is not a kubeconfig ({what}); not touching it")


MAX_IMPORT_BYTES = 1 << 20  # a kubeconfig is a few KB; a bigger file is not one


def import_file(path: Path, member: str, context: str | None = None) -> dict[str, Any]:
    """The kubeconfig of an existing cluster, for member `member`: the one context of `path`
    (or the one named), every name made the member's (`member_entries`). Read once into
    memory, bounded; the file is left as it is."""
    shown = str(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ConfigError(f"{shown}: cannot be read ({err.strerror})") from None
    if not path.is_file():
        raise ConfigError(f"{shown}: not a file; give the kubeconfig's path")
    if size > MAX_IMPORT_BYTES:
        raise ConfigError(
            f"{shown}: {size} bytes, over the {MAX_IMPORT_BYTES} a kubeconfig may have"
        )
    data = read_file(path)
    if data is None:
        raise ConfigError(f"{shown}: empty; not a kubeconfig")
    return member_entries(data, member, context, shown)


def backup_path(path: Path, now: dt.datetime) -> Path:
    """Where the backup of `path` taken at `now` goes: <path>.bak-YYYYmmddHHMMSS."""
    return path.with_name(f"{path.name}.bak-{now.strftime('%Y%m%d%H%M%S')}")


def _write_new(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def write_file(path: Path, kubeconfig: Mapping[str, Any], now: dt.datetime) -> Path | None:
    """Replace the kubeconfig at `path` (a symlink's target) atomically, mode 0600.

    An existing file is first copied to a timestamped backup (0600, never overwriting an older
    backup); returns the backup's path, or None when there was no file.
    """
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(mode=0o700, exist_ok=True)  # ~/.kube; never a chain of folders
    backup: Path | None = None
    if target.exists():
        old = target.read_bytes()
        first = candidate = backup_path(target, now)
        n = 1
        while True:
            try:
                _write_new(candidate, old)
                break
            except FileExistsError:  # a backup from this same second: keep it, add another
                n += 1
                candidate = first.with_name(f"{first.name}-{n}")
        backup = candidate
    write_atomically(target, as_yaml(kubeconfig), mode=0o600)
    return backup
