"""A k3s member's cluster token: chosen once by hubfleet, kept encrypted in the deploy repo.

k3s takes any string as the server's `token` option, and agents join with the same value. So
hubfleet chooses it up front (a fresh random secret) instead of reading it from the server
after its install: every host of the member can install at once, the agents joining as soon
as the server answers. A member whose server already runs keeps its token: it is read once
from the server and stored, never shown.

It lives sops-encrypted in `secrets/<member>-k3s.yaml` (key `token`): a file of its own, not a
values layer, so it never reaches Helm. On the hosts it is in the server's config.yaml (0600)
and the agents' unit environment (written by the install script, 0600); it travels on stdin,
never on a command line, and is never printed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hubfleet.errors import HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.k3s.config import TOKEN_PATH
from hubfleet.k3s.install import check_token
from hubfleet.registry import roles

if TYPE_CHECKING:
    from hubfleet.hosts.member_run import HostContext, MemberRun
    from hubfleet.hosts.steps import Outcome

TOKEN_KEY = "token"
TOKEN_BYTES = 32
_LOCKS_GUARD = threading.Lock()

Source = Literal["stored", "adopted", "generated"]


@dataclass(frozen=True)
class ClusterToken:
    """The member's token and where it came from (stored in the repo, adopted from the
    server, or generated now). Its repr never shows the value."""

    value: str
    source: Source

    def __repr__(self) -> str:
        return f"ClusterToken(<hidden>, source={self.source!r})"


def token_file(repo: DeployRepo, member: str) -> Path:
    """Where the member's cluster token is kept (sops-encrypted)."""
    return repo.member_k3s_token(member)


def token_secret(token: str) -> str:
    """The secret part k3s compares: of K10<ca-hash>::server:<secret>, of server:<secret>, or
    the whole string when it is a plain secret."""
    value = token.strip()
    if "::" in value:
        value = value.split("::", 1)[1]
    for prefix in ("server:", "node:"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def choose(
    member: str, stored: str | None, on_server: str | None, where: str, fresh: str, kept_in: str
) -> ClusterToken:
    """The token to use: the stored one (which must be the server's when it has one), else
    the one the server already has, else `fresh`. Pure; `kept_in` names the file for errors."""
    if stored is not None:
        if on_server is not None and token_secret(stored) != token_secret(on_server):
            raise HubfleetError(
                f"member {member}: the cluster token in {kept_in} is not the one "
                f"server {where} runs with ({TOKEN_PATH}); k3s keeps its first token: restore the "
                f"file from git, or delete it to adopt the server's"
            )
        return ClusterToken(check_token(stored), "stored")
    if on_server is not None:
        return ClusterToken(check_token(on_server), "adopted")
    return ClusterToken(check_token(fresh), "generated")


def read_stored(repo: DeployRepo, member: str) -> str | None:
    """The stored token, decrypted in memory; None when there is none yet."""
    from hubfleet.secrets import sops

    path = token_file(repo, member)
    if not path.exists():
        return None
    value = sops.decrypt_mapping(repo, path).get(TOKEN_KEY)
    if not isinstance(value, str) or not value.strip():
        raise HubfleetError(
            f"{repo.relative(path)}: no `{TOKEN_KEY}` string in it; restore it from git, or "
            "delete it to adopt the server's token (or choose a new one for a new member)"
        )
    return value.strip()


def encrypted_token(repo: DeployRepo, member: str, value: str) -> bytes:
    """The token file's content for `value`, encrypted (the plaintext reaches sops on stdin,
    never a file)."""
    import yaml

    from hubfleet.secrets import sops

    text = yaml.safe_dump({TOKEN_KEY: value}, default_flow_style=False)
    return sops.encrypted(repo, token_file(repo, member), text)


@dataclass(frozen=True)
class Prepared:
    """The token as found before connecting: the stored one (decrypted), or a fresh one
    already encrypted (stored only if the cluster-token step chooses it)."""

    stored: str | None
    fresh: str = ""
    content: bytes = b""

    def __repr__(self) -> str:
        return "Prepared(<hidden>)"


def prepare_token(run: MemberRun) -> None:
    """Start finding the token while the hosts are connected to: decrypt the stored one, or
    make and encrypt a fresh one (not in a dry run). The sops call is then off the first
    server's way; cluster_token takes it."""
    from hubfleet.secrets.generate import token_hex

    repo, member = run.repo, run.member.name

    def fresh() -> Prepared:
        value = token_hex(TOKEN_BYTES)
        return Prepared(None, value, encrypted_token(repo, member, value))

    if token_file(repo, member).exists():
        run.start_ahead("cluster-token", lambda: Prepared(read_stored(repo, member)))
    elif not run.options.dry_run:
        run.start_ahead("cluster-token", fresh)


def _server_token(run: MemberRun) -> str | None:
    """The token the member's first server already runs with (from the run's snapshot, or
    read once over SSH), None when k3s has not made one."""
    server = roles.first_server(run.member)
    snapshot = run.snapshots.get(server.address)
    if snapshot is not None and TOKEN_PATH in snapshot.files:
        found = snapshot.files[TOKEN_PATH]
        return found[0].strip() or None if found else None
    read = run.session_for(server).read_files([TOKEN_PATH])[TOKEN_PATH]
    return read.strip() or None if read else None


def cluster_token(run: MemberRun, dry_run: bool) -> ClusterToken:
    """The member's cluster token, found once per run (every host asks; the first finds it):
    stored, else adopted from the server, else generated; a new one is stored encrypted
    before any host gets it (not in a dry run), so a run that stops later resumes with it."""
    from hubfleet.secrets import sops
    from hubfleet.secrets.generate import token_hex

    with _LOCKS_GUARD:
        lock = run.shared.setdefault("cluster-token-lock", threading.Lock())
    with lock:
        known = run.shared.get("cluster-token")
        if isinstance(known, ClusterToken):
            return known
        member = run.member.name
        server = roles.first_server(run.member)
        prepared = run.taken("cluster-token")
        if not isinstance(prepared, Prepared):
            prepared = Prepared(read_stored(run.repo, member))
        stored = prepared.stored
        on_server = _server_token(run)
        fresh = ""
        if stored is None and on_server is None:
            fresh = prepared.fresh or token_hex(TOKEN_BYTES)
        shown = run.repo.relative(token_file(run.repo, member))
        token = choose(member, stored, on_server, server.address, fresh, shown)
        if token.source != "stored" and not dry_run:
            content = prepared.content if token.value == prepared.fresh else b""
            sops.store(
                token_file(run.repo, member),
                content or encrypted_token(run.repo, member, token.value),
            )
        run.shared["cluster-token"] = token
        return token


def cluster_token_step(context: HostContext, dry_run: bool) -> Outcome:
    """The `cluster-token` step (on the member's first server): the token found, adopted or
    generated, and stored encrypted; never shown."""
    from hubfleet.hosts.steps import Outcome

    token = cluster_token(context.run, dry_run)
    shown = context.repo.relative(token_file(context.repo, context.member.name))
    if token.source == "stored":
        return Outcome.ok(f"{shown} (encrypted)")
    what = {
        "adopted": f"adopt the token k3s on {context.label} runs with",
        "generated": "generate a new token",
    }[token.source]
    if dry_run:
        return Outcome.changed(f"would {what} and store it encrypted in {shown}", True)
    done = what.replace("adopt ", "adopted ", 1).replace("generate ", "generated ", 1)
    return Outcome.changed(f"{done}; stored it encrypted in {shown}", False)
