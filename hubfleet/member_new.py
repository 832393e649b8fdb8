"""Adding a member to the federation and taking one out: the registry entry and its files.

`new_member` checks the name and domain, reaches the host over SSH (pinned host keys) for its
facts, sizes the member from them (hubfleet.sizing) and writes, all or nothing: the member's
block appended to config/federation.yaml (comments and the other members kept), config/NAME.yaml
from config/templates/member.yaml and secrets/config/NAME.yaml, encrypted, from
config/templates/member-secrets.yaml with fresh random secrets. The templates are plain YAML
with placeholders in braces filled by `str.format_map`. `remove_member` takes the member's
block out of the registry (the rest of the file byte for byte) and, when purging, deletes
its files.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hubfleet import secretgen, sizing
from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.hostkeys import HostKeyDecision, PinnedHostKeys
from hubfleet.registry import (
    Host,
    check_registry,
    member_from_record,
    registry_schema,
    schema_problems,
)
from hubfleet.repo import DeployRepo
from hubfleet.yamlfile import YamlDocument, load_mapping, parse_with_lines

if TYPE_CHECKING:
    import paramiko

    from hubfleet.hostfacts import HostFacts

VALUES_TEMPLATE = Path("config/templates/member.yaml")
SECRETS_TEMPLATE = Path("config/templates/member-secrets.yaml")
MICROK8S_CHANNEL = "1.32/stable"
MASK = "********"


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


@dataclass(frozen=True)
class NewMemberOptions:
    dry_run: bool = False
    identity: Path | None = None  # a private key the host's root (or --user) accepts
    host_key: HostKeyDecision = field(default_factory=HostKeyDecision)
    connect_timeout_s: float = 10.0


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


# --- checks before anything is touched ----------------------------------------------------


def check_name(name: str) -> None:
    if not re.fullmatch(registry_schema()["$defs"]["name"]["pattern"], name):
        raise ConfigError(
            f"member name {name!r} is not a DNS label (lower-case letters, digits and '-', "
            "starting with a letter, at most 40 characters)"
        )


def check_domain(domain: str) -> None:
    if not re.fullmatch(registry_schema()["$defs"]["domain"]["pattern"], domain):
        raise ConfigError(
            f"domain {domain!r} is malformed: want lower-case DNS labels joined by dots, "
            "e.g. binder.example.org (no scheme, port, path or trailing dot)"
        )


def check_new(repo: DeployRepo, request: NewMember) -> YamlDocument:
    """The registry document, after checking that `request` fits in it (name, domain, files)."""
    check_name(request.name)
    check_domain(request.domain)
    shown = repo.relative(repo.registry)
    doc = load_mapping(repo.registry, shown)
    members = doc.data.get("members") or {}
    if request.name in members:
        line = doc.line_of(("members", request.name))
        raise HubfleetError(f"member {request.name} exists in {shown}:{line}")
    for other, record in members.items():
        if isinstance(record, dict) and record.get("domain") == request.domain:
            line = doc.line_of(("members", other, "domain"))
            raise HubfleetError(
                f"domain {request.domain} is already member {other}'s ({shown}:{line})"
            )
    for path in (repo.member_values(request.name), repo.member_secret_values(request.name)):
        if path.exists():
            raise HubfleetError(
                f"{repo.relative(path)} exists but member {request.name} is not in {shown}; "
                "remove the leftover file (or register the member by hand)"
            )
    return doc


# --- the registry entry -------------------------------------------------------------------


def member_record(request: NewMember) -> dict[str, Any]:
    host: dict[str, Any] = {"address": request.address}
    if request.user != "root":
        host["user"] = request.user
    if request.port != 22:
        host["port"] = request.port
    record: dict[str, Any] = {
        "stage": request.stage,
        "provider": request.provider,
        "domain": request.domain,
    }
    if request.chart:
        record["chart"] = request.chart
    if request.provider == "microk8s":
        host["role"] = "main"
        record["microk8s"] = {"channel": MICROK8S_CHANNEL, "metallb": _metallb_pool(request)}
    record["hosts"] = [host]
    return record


def _metallb_pool(request: NewMember) -> str:
    try:
        address = ipaddress.IPv4Address(request.address)
    except ValueError:
        raise HubfleetError(
            f"member {request.name}: a microk8s member's MetalLB pool starts as its host's IPv4 "
            f"address, and {request.address!r} is not one; pass --host as an IPv4 address"
        ) from None
    return f"{address}/32"


class _IndentedDumper(yaml.SafeDumper):
    """Block lists indented under their key, as the registry file writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def registry_block(name: str, record: Mapping[str, Any], indent: int, note: str = "") -> str:
    """The member's entry as text to append under `members:` (indented by `indent`)."""
    body = yaml.dump(
        {name: dict(record)}, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False
    )
    pad = " " * indent
    first, *rest = body.splitlines(keepends=True)
    note_line = [f"{pad}  # {note}\n"] if note else []  # inside the block: removed with it
    return "".join([pad + first, *note_line, *(pad + line for line in rest)])


def _member_indent(text: str, doc: YamlDocument) -> int:
    lines = text.splitlines()
    for key in doc.data.get("members") or {}:
        line = doc.line_of(("members", key))
        if line:
            return len(lines[line - 1]) - len(lines[line - 1].lstrip(" "))
    return 2


def registry_with(text: str, doc: YamlDocument, block: str) -> str:
    """The registry text with `block` appended as the last member."""
    if not doc.data.get("members"):  # `members:` or `members: {}`: the block becomes its body
        text = re.sub(r"(?m)^members:.*$", "members:", text, count=1)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


# --- the values and secrets files ---------------------------------------------------------


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def fill_template(repo: DeployRepo, template: Path, values: Mapping[str, object]) -> str:
    """The template's text with its placeholders filled; a mistake names the template."""
    path = repo.root / template
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{template}: template not found (a deploy repo keeps it there)"
        ) from None
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
    request: NewMember, facts: HostFacts, sized: sizing.MemberSizing
) -> dict[str, object]:
    names = hostnames(request.domain)
    resources = sized.dind.as_values()
    return {
        "name": request.name,
        "domain": request.domain,
        "address": request.address,
        "cpus": facts.cpus,
        "ram_gb": facts.ram_gb,
        "disk_gb": facts.disk_free_gb,
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
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def fresh_secrets() -> dict[str, str]:
    """New random values for everything the chart needs that no one else makes."""
    return {
        "hub_cookie_secret": secretgen.token_hex(32),
        "proxy_secret_token": secretgen.token_hex(32),
        "binder_api_token": secretgen.token_hex(32),
        "grafana_admin_password": secretgen.password(24),
        "harbor_admin_password": secretgen.password(24),
        "harbor_secret_key": secretgen.password(16),  # Harbor wants exactly 16 characters
        "harbor_database_password": secretgen.password(24),
    }


# --- reaching the host --------------------------------------------------------------------


class DeferredPins(PinnedHostKeys):
    """Host keys accepted during this run, pinned in config/known_hosts only at the end."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.pending: list[tuple[str, paramiko.PKey]] = []

    def pin(self, name: str, key: paramiko.PKey) -> None:
        self.pending.append((name, key))

    def lines(self) -> list[str]:
        return [f"{name} {key.get_name()} {key.get_base64()}" for name, key in self.pending]

    def commit(self) -> None:
        for name, key in self.pending:
            PinnedHostKeys.pin(self, name, key)


def gather_facts(
    repo: DeployRepo, request: NewMember, options: NewMemberOptions, pins: DeferredPins
) -> HostFacts:
    """Log in to the host (the member's key if it exists, else --identity) and gather facts."""
    from hubfleet.bootstrap import load_connect_keys
    from hubfleet.hostfacts import GATHER_SCRIPT, parse_facts
    from hubfleet.ssh import KeyRefusedError, connect

    member = member_from_record(request.name, member_record(request))
    host = Host(request.address, user=request.user, port=request.port)
    keys, _ = load_connect_keys(repo, member, options.identity)
    for i, key in enumerate(keys):
        try:
            session = connect(
                request.name, host, key, pins, options.host_key, options.connect_timeout_s
            )
            break
        except KeyRefusedError:
            if i == len(keys) - 1:
                raise
    try:
        facts = parse_facts(session.run(GATHER_SCRIPT, what="gathering facts").stdout)
    finally:
        session.close()
    if facts.cpus < 1 or facts.ram_gb <= 0 or facts.disk_free_gb <= 0:
        raise HubfleetError(
            f"member {request.name}: host {request.address}: could not read its CPUs, RAM or "
            f"disk (cpus={facts.cpus}, RAM {facts.ram_gb} GB, disk {facts.disk_free_gb} GB)"
        )
    return facts


# --- the whole thing ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    content: str  # for the secrets file: the plaintext, kept in memory only
    shown: str  # what a dry run prints (secret values masked)
    encrypted: bool = False


@dataclass(frozen=True)
class NewMemberPlan:
    registry_text: str
    registry_block: str
    files: tuple[PlannedFile, ...]
    sized: sizing.MemberSizing
    known_hosts: tuple[str, ...]


def plan_new_member(
    repo: DeployRepo, request: NewMember, facts: HostFacts, doc: YamlDocument
) -> NewMemberPlan:
    """Everything `new_member` writes, in memory; the registry result is schema-checked."""
    text = repo.registry.read_text(encoding="utf-8")
    record = member_record(request)
    sized = sizing.member_sizing(facts.cpus, facts.ram_gb, facts.disk_free_gb)
    note = "added by invoke member.new"
    block = registry_block(request.name, record, _member_indent(text, doc), note)
    new_text = registry_with(text, doc, block)
    shown = repo.relative(repo.registry)
    new_doc = parse_with_lines(new_text, repo.registry, shown)
    problems = schema_problems(new_doc, shown)
    if problems or new_doc.data["members"].get(request.name) != record:
        raise ConfigError(
            f"the new entry does not fit in {shown}: {problems[0] if problems else 'parsed differently'}"
        )
    values = fill_template(repo, VALUES_TEMPLATE, values_placeholders(request, facts, sized))
    secrets = fresh_secrets()
    base = {"name": request.name, "domain": request.domain}
    plaintext = fill_template(repo, SECRETS_TEMPLATE, {**base, **secrets})
    masked = fill_template(repo, SECRETS_TEMPLATE, {**base, **dict.fromkeys(secrets, MASK)})
    values_path = repo.member_values(request.name)
    secrets_path = repo.member_secret_values(request.name)
    return NewMemberPlan(
        registry_text=new_text,
        registry_block=block,
        files=(
            PlannedFile(values_path, values, values),
            PlannedFile(secrets_path, plaintext, masked, encrypted=True),
        ),
        sized=sized,
        known_hosts=(),
    )


def new_member(
    repo: DeployRepo,
    request: NewMember,
    options: NewMemberOptions,
    say: Callable[[str], None] = print,
) -> NewMemberPlan:
    """Register a new member and scaffold its values and secrets; all or nothing."""
    doc = check_new(repo, request)
    pins = DeferredPins(repo.root / "config" / "known_hosts")
    say(f"member {request.name}: gathering facts from {request.user}@{request.address}")
    facts = gather_facts(repo, request, options, pins)
    plan = plan_new_member(repo, request, facts, doc)
    plan = dataclasses.replace(plan, known_hosts=tuple(pins.lines()))
    sized = plan.sized
    say(
        f"host {request.address}: {facts.cpus} CPUs, {facts.ram_gb} GB RAM, "
        f"{facts.disk_free_gb} GB disk -> launch quota {sized.launch_quota}, "
        f"maxPods {sized.max_pods}"
    )
    shown_registry = repo.relative(repo.registry)
    if options.dry_run:
        say(f"--- {shown_registry} (appended)\n{plan.registry_block.rstrip()}")
        for planned in plan.files:
            how = " (encrypted; values masked)" if planned.encrypted else ""
            say(f"--- {repo.relative(planned.path)}{how}\n{planned.shown.rstrip()}")
        for line in plan.known_hosts:
            say(f"--- config/known_hosts (appended)\n{line}")
        say(f"member {request.name}: dry run, nothing written")
        return plan
    with _all_or_nothing() as keep:
        from hubfleet import sops

        for planned in plan.files:
            keep.created(planned.path)
            if planned.encrypted:
                sops.write_encrypted(repo, planned.path, planned.content)
            else:
                _write_atomically(planned.path, planned.content)
        keep.replaced(repo.registry)
        _write_atomically(repo.registry, plan.registry_text)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not adding member {request.name}: {problems[0]}")
        pins.commit()
    for path in (repo.registry, *(f.path for f in plan.files)):
        say(f"wrote {repo.relative(path)}")
    say(f"member {request.name}: registered; next: invoke member.onboard {request.name}")
    return plan


# --- removing ---------------------------------------------------------------------------------


def member_files(repo: DeployRepo, name: str) -> list[Path]:
    """Every file that belongs to member `name` alone (what --purge deletes), if present."""
    secrets = repo.secrets_dir
    candidates = [
        repo.member_values(name),
        repo.member_secret_values(name),
        repo.member_kubeconfig(name),
        secrets / f"{name}.key",
        secrets / f"{name}.key.pub",
        secrets / f"{name}-wireguard.yaml",
    ]
    return [path for path in candidates if path.exists()]


def registry_without(text: str, doc: YamlDocument, name: str) -> str:
    """The registry text without member `name`'s block (and the comments right above it)."""
    lines = text.splitlines(keepends=True)
    members = list(doc.data.get("members") or {})
    starts = {key: (doc.line_of(("members", key)) or 1) - 1 for key in members}
    indent = len(lines[starts[name]]) - len(lines[starts[name]].lstrip(" "))

    def with_comments(start: int) -> int:
        while start > 0:
            above = lines[start - 1]
            if above.lstrip().startswith("#") and len(above) - len(above.lstrip(" ")) >= indent:
                start -= 1
            else:
                break
        return start

    start = with_comments(starts[name])
    later = sorted(s for s in starts.values() if s > starts[name])
    end = with_comments(later[0]) if later else len(lines)
    kept = [*lines[:start], *lines[end:]]
    if len(members) == 1:  # the last member: `members:` must stay a mapping
        kept = [re.sub(r"^members:.*", "members: {}", ln) for ln in kept]
    return "".join(kept)


def remove_member(
    repo: DeployRepo,
    name: str,
    purge: bool,
    confirm: Callable[[str], bool],
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Deregister member `name` (and with `purge`, delete its files) once `confirm` agrees.

    Returns the files deleted."""
    from hubfleet.registry import load_registry

    registry = load_registry(repo)
    registry.member(name)  # unknown: an error suggesting close names
    text = repo.registry.read_text(encoding="utf-8")
    new_text = registry_without(text, registry.document, name)
    shown = registry.shown
    parsed = parse_with_lines(new_text, repo.registry, shown).data or {}
    expected = {k: v for k, v in registry.document.data["members"].items() if k != name}
    if parsed.get("members") != expected:
        raise HubfleetError(
            f"cannot take member {name} out of {shown} as text (is it written in flow style?); "
            "remove its entry by hand"
        )
    doomed = member_files(repo, name) if purge else []
    listed = "".join(f"\n  {repo.relative(p)}" for p in doomed)
    question = f"Remove member {name} from {shown}" + (
        f" and delete {len(doomed)} file(s):{listed}\n" if doomed else ""
    )
    if not confirm(question.rstrip() + "?"):
        raise HubfleetError(f"member {name}: not removed (not confirmed)")
    with _all_or_nothing() as keep:
        keep.replaced(repo.registry)
        _write_atomically(repo.registry, new_text)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not removing member {name}: {problems[0]}")
    say(f"member {name}: removed from {shown}")
    for path in doomed:
        path.unlink()
        say(f"deleted {repo.relative(path)}")
    if not purge:
        left = member_files(repo, name)
        if left:
            say(f"kept {len(left)} file(s) of member {name}; --purge deletes them")
    return doomed


# --- writing all or nothing ---------------------------------------------------------------


class _Rollback:
    def __init__(self) -> None:
        self.created_paths: list[Path] = []
        self.originals: dict[Path, bytes] = {}

    def created(self, path: Path) -> None:
        self.created_paths.append(path)

    def replaced(self, path: Path) -> None:
        self.originals.setdefault(path, path.read_bytes())

    def undo(self) -> None:
        for path in reversed(self.created_paths):
            path.unlink(missing_ok=True)
        for path, content in self.originals.items():
            _write_atomically(path, content)


@contextmanager
def _all_or_nothing() -> Iterator[_Rollback]:
    """Files created or replaced in the block are put back as they were when it fails."""
    rollback = _Rollback()
    try:
        yield rollback
    except BaseException:
        rollback.undo()
        raise


def _write_atomically(path: Path, content: str | bytes) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
