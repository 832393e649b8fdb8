"""Adding a member to the federation: the registry entry and its files.

`new_member` checks the name and domain, reaches the host over SSH (pinned host keys) for its
facts, sizes the member from them (hubfleet.registry.sizing) and writes, all or nothing: the member's
block appended to config/federation.yaml (comments and the other members kept), config/NAME.yaml
from config/templates/member.yaml and secrets/config/NAME.yaml, encrypted, from
config/templates/member-secrets.yaml with fresh random secrets (the templates are filled in by
hubfleet.members.templates). Taking a member out is hubfleet.members.remove.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.atomic import all_or_nothing, write_atomically
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import YamlDocument, load_mapping, parse_with_lines
from hubfleet.hosts.hostkeys import HostKey, HostKeyDecision, PinnedHostKeys
from hubfleet.members.records import member_record
from hubfleet.members.serving import with_contact
from hubfleet.members.templates import (
    SUPPORT_SECRETS_TEMPLATE,
    SUPPORT_VALUES_TEMPLATE,
    NewMember,
    NodeShape,
    fill_template,
    fresh_jupyterhub_secrets,
    fresh_secrets,
    fresh_support_secrets,
    values_placeholders,
)
from hubfleet.registry import sizing
from hubfleet.registry.members import (
    Host,
    check_registry,
    member_from_record,
    registry_schema,
    schema_problems,
)

if TYPE_CHECKING:
    from hubfleet.hosts.facts import HostFacts

# the gke stack's default user nodes (terraform/gke: n1-standard-8, 100 GB disk)
GKE_USER_NODES = NodeShape(8, 30.0, 100.0, "GKE user nodes (n1-standard-8)")
MASK = "********"


@dataclass(frozen=True)
class NewMemberOptions:
    dry_run: bool = False
    identity: Path | None = None  # a private key the host's root (or --user) accepts
    host_key: HostKeyDecision = field(default_factory=HostKeyDecision)
    connect_timeout_s: float = 10.0


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
    for path in (
        repo.member_values(request.name),
        repo.member_secret_values(request.name),
        repo.member_values(request.name, "support"),
        repo.member_secret_values(request.name, "support"),
    ):
        if path.exists():
            raise HubfleetError(
                f"{repo.relative(path)} exists but member {request.name} is not in {shown}; "
                "remove the leftover file (or register the member by hand)"
            )
    return doc


# --- the registry entry -------------------------------------------------------------------


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


# --- reaching the host --------------------------------------------------------------------


class DeferredPins(PinnedHostKeys):
    """Host keys accepted during this run, pinned in config/known_hosts only at the end."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.pending: list[tuple[str, HostKey]] = []

    def pin(self, name: str, key: HostKey) -> None:
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
    from hubfleet.hosts.facts import GATHER_SCRIPT, parse_facts
    from hubfleet.hosts.login import connect
    from hubfleet.hosts.member_run import load_connect_keys

    member = member_from_record(request.name, member_record(request))
    host = Host(request.address, user=request.user, port=request.port)
    keys, _ = load_connect_keys(repo, member, options.identity)
    session = connect(request.name, host, keys, pins, options.host_key, options.connect_timeout_s)
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
    repo: DeployRepo, request: NewMember, shape: NodeShape, doc: YamlDocument
) -> NewMemberPlan:
    """Everything `new_member` writes, in memory; the registry result is schema-checked."""
    text = repo.registry.read_text(encoding="utf-8")
    record = member_record(request)
    sized = sizing.member_sizing(shape.cpus, shape.ram_gb, shape.disk_gb)
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
    values_template, secrets_template = request.templates()
    values = fill_template(repo, values_template, values_placeholders(request, shape, sized))
    secrets = fresh_jupyterhub_secrets() if request.kind == "jupyterhub" else fresh_secrets()
    base = {"name": request.name, "domain": request.domain}
    plaintext = fill_template(repo, secrets_template, {**base, **secrets})
    masked = fill_template(repo, secrets_template, {**base, **dict.fromkeys(secrets, MASK)})
    values_path = repo.member_values(request.name)
    secrets_path = repo.member_secret_values(request.name)
    placeholders = values_placeholders(request, shape, sized)
    support_values = fill_template(repo, SUPPORT_VALUES_TEMPLATE, placeholders)
    support_secrets = fresh_support_secrets()
    support_plain = fill_template(repo, SUPPORT_SECRETS_TEMPLATE, {**base, **support_secrets})
    support_masked = fill_template(
        repo, SUPPORT_SECRETS_TEMPLATE, {**base, **dict.fromkeys(support_secrets, MASK)}
    )
    imported: tuple[PlannedFile, ...] = ()
    if request.provider == "kubeconfig":
        imported = (_imported_kubeconfig(repo, request),)
    return NewMemberPlan(
        registry_text=new_text,
        registry_block=block,
        files=(
            *imported,
            PlannedFile(values_path, values, values),
            PlannedFile(secrets_path, plaintext, masked, encrypted=True),
            PlannedFile(
                repo.member_values(request.name, "support"), support_values, support_values
            ),
            PlannedFile(
                repo.member_secret_values(request.name, "support"),
                support_plain,
                support_masked,
                encrypted=True,
            ),
        ),
        sized=sized,
        known_hosts=(),
    )


def _imported_kubeconfig(repo: DeployRepo, request: NewMember) -> PlannedFile:
    """An existing cluster's kubeconfig as secrets/NAME-kubeconfig.yaml, encrypted (its
    credentials are only ever in memory); a dry run shows where it points, not what it holds."""
    from hubfleet.kube.kubeconfig import as_yaml, import_file

    if request.kubeconfig is None:
        raise ConfigError(f"member {request.name}: a kubeconfig member needs --kubeconfig FILE")
    config = import_file(request.kubeconfig, request.name, request.kube_context)
    server = config["clusters"][0].get("cluster", {}).get("server", "?")
    shown = f"# the kubeconfig of {request.kubeconfig} (server {server}); credentials {MASK}\n"
    path = repo.member_kubeconfig(request.name)
    if path.exists():
        raise HubfleetError(f"{repo.relative(path)} exists; remove the leftover file first")
    return PlannedFile(path, as_yaml(config), shown, encrypted=True)


def new_member(
    repo: DeployRepo,
    request: NewMember,
    options: NewMemberOptions,
    say: Callable[[str], None] = print,
) -> NewMemberPlan:
    """Register a new member and scaffold its values and secrets; all or nothing."""
    doc = check_new(repo, request)
    request = with_contact(request, doc, say)
    pins = DeferredPins(repo.root / "config" / "known_hosts")
    if request.provider in ("gke", "kubeconfig"):
        shape = request.nodes or GKE_USER_NODES
    else:
        say(f"member {request.name}: gathering facts from {request.user}@{request.address}")
        facts = gather_facts(repo, request, options, pins)
        shape = NodeShape(facts.cpus, facts.ram_gb, facts.disk_free_gb, f"host {request.address}")
    plan = plan_new_member(repo, request, shape, doc)
    plan = dataclasses.replace(plan, known_hosts=tuple(pins.lines()))
    sized = plan.sized
    say(
        f"{shape.source}: {shape.cpus} CPUs, {shape.ram_gb} GB RAM, "
        f"{shape.disk_gb} GB disk -> launch quota {sized.launch_quota}, "
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
    with all_or_nothing() as keep:
        from hubfleet.secrets import sops

        for planned in plan.files:
            keep.created(planned.path)
            if planned.encrypted:
                sops.write_encrypted(repo, planned.path, planned.content)
            else:
                write_atomically(planned.path, planned.content)
        keep.replaced(repo.registry)
        write_atomically(repo.registry, plan.registry_text)
        _, problems = check_registry(repo)
        if problems:
            raise ConfigError(f"not adding member {request.name}: {problems[0]}")
        pins.commit()
    for path in (repo.registry, *(f.path for f in plan.files)):
        say(f"wrote {repo.relative(path)}")
    if request.provider == "kubeconfig":
        say(f"member {request.name}: registered; next: invoke deploy {request.name}")
    elif request.provider == "gke":
        say(
            f"member {request.name}: registered; next: invoke tofu.apply {request.name} gke "
            f"--save-outputs, the service-account key into secrets/{request.name}-gke.yaml, "
            f"then invoke deploy {request.name}"
        )
    else:
        say(f"member {request.name}: registered; next: invoke member.onboard {request.name}")
    return plan
