"""The member registry, config/federation.yaml: every member once.

Loading checks the whole file against the JSON Schema shipped in this package, every member of
it, and reports each problem with file:line, the member and the key. The records come out as
frozen dataclasses; `Member.record` keeps the parsed mapping so callers can compare records.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from hubfleet.errors import ConfigError, UnknownMemberError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import PathKey, YamlDocument, load_mapping
from hubfleet.registry.problem import Problem

DEFAULT_CHART = "chart"


@dataclass(frozen=True)
class Host:
    """A machine of a self-hosted member, reached over SSH."""

    address: str
    user: str = "root"
    port: int = 22
    role: str = "server"
    public_address: str | None = None
    disk: str | None = None
    name: str | None = None

    @property
    def public(self) -> str:
        """The address clients use: kubeconfig server, TLS SAN."""
        return self.public_address or self.address


@dataclass(frozen=True)
class Member:
    """One federation member as the registry describes it (defaults filled in)."""

    name: str
    stage: str
    provider: str
    domain: str
    namespace: str
    release: str
    chart: str
    kube_context: str | None
    health_check: bool
    hosts: tuple[Host, ...]
    record: Mapping[str, Any]
    # which of the member's releases this is: its hub ("member") or its cluster-wide parts
    # ("support", hubfleet.registry.support.support_release)
    part: str = "member"

    @property
    def k3s(self) -> Mapping[str, Any]:
        """The member's k3s settings ({} when none are given)."""
        settings = self.record.get("k3s", {})
        return settings if isinstance(settings, Mapping) else {}

    @property
    def microk8s(self) -> Mapping[str, Any]:
        """The member's MicroK8s settings ({} when none are given)."""
        settings = self.record.get("microk8s", {})
        return settings if isinstance(settings, Mapping) else {}

    @property
    def sizing(self) -> Mapping[str, Any]:
        """The member's overrides of the sizing rules (hubfleet.registry.sizing; {} when none)."""
        settings = self.record.get("sizing", {})
        return settings if isinstance(settings, Mapping) else {}

    @property
    def s3(self) -> Mapping[str, Any]:
        """The member's Harbor S3 bucket settings (hubfleet.cloud.s3; {} when none are given)."""
        settings = self.record.get("s3", {})
        return settings if isinstance(settings, Mapping) else {}

    @property
    def gke(self) -> Mapping[str, Any]:
        """Where a GKE member's cluster is: project, location, cluster ({} for other providers)."""
        settings = self.record.get("gke", {})
        return settings if isinstance(settings, Mapping) else {}

    @property
    def tofu(self) -> Mapping[str, Any]:
        """Per-stack OpenTofu variable values from the registry ({} when none are given)."""
        settings = self.record.get("tofu", {})
        return settings if isinstance(settings, Mapping) else {}

    def host(self, address: str) -> Host:
        """The host with this address (or name); an unknown one is an error naming the choices."""
        for host in self.hosts:
            if address in (host.address, host.name, host.public_address):
                return host
        known = ", ".join(h.address for h in self.hosts) or "none"
        raise UnknownMemberError(f"member {self.name} has no host {address!r} (hosts: {known})")


@dataclass(frozen=True)
class Registry:
    """The parsed, validated registry."""

    path: Path
    shown: str
    members: Mapping[str, Member]
    document: YamlDocument

    def member(self, name: str) -> Member:
        """The member called `name`; an unknown name suggests close ones."""
        try:
            return self.members[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.members), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            known = f" (members: {', '.join(sorted(self.members))})" if not close else ""
            raise UnknownMemberError(
                f"unknown member {name!r} in {self.shown}{hint}{known}"
            ) from None

    def by_stage(self, stage: str) -> list[Member]:
        return [m for m in self.members.values() if m.stage == stage]


@cache
def registry_schema() -> dict[str, Any]:
    text = resources.files("hubfleet").joinpath("schemas/federation.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(registry_schema())


def _describe(error: Any) -> tuple[PathKey, str | None, str]:
    """The path to point at, the key at fault and a short message for one schema error."""
    path: PathKey = tuple(error.absolute_path)
    validator = error.validator
    if validator == "additionalProperties":
        instance = error.instance if isinstance(error.instance, dict) else {}
        allowed = error.schema.get("properties", {})
        extra = [k for k in instance if k not in allowed]
        if extra:
            key = str(extra[0])
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            return (*path, key), key, f"unknown key{hint}"
    if validator == "required":
        missing = [k for k in error.validator_value if k not in (error.instance or {})]
        if path[-1:] == ("support",) and missing == ["email"]:
            why = "is required: the ACME contact for Let's Encrypt (or issuer: selfsigned)"
            return path, "email", why
        return path, (str(missing[0]) if missing else None), "is required"
    if validator == "not" and error.validator_value == {"required": ["hosts"]}:
        return (*path, "hosts"), "hosts", "only k3s and microk8s members have hosts"
    if validator == "not" and error.validator_value == {"required": ["k3s"]}:
        return (*path, "k3s"), "k3s", "only k3s members have k3s settings"
    if validator == "not" and error.validator_value == {"required": ["microk8s"]}:
        return (*path, "microk8s"), "microk8s", "only microk8s members have microk8s settings"
    if validator in ("contains", "minContains", "maxContains") and path[-1:] == ("hosts",):
        mains = sum(1 for h in error.instance if isinstance(h, dict) and h.get("role") == "main")
        return (
            path,
            "hosts",
            f"a microk8s member needs exactly one host with role main, not {mains}",
        )
    if validator == "enum" and error.schema.get("title", "").endswith("host role"):
        choices = " or ".join(map(str, error.validator_value))
        return path, None, f"{error.instance!r} is not a {error.schema['title']} (use {choices})"
    if validator == "not" and set(error.validator_value) == {"required"}:
        both = error.validator_value["required"]
        return path, None, f"set {' or '.join(both)}, not both"
    if validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return path, None, f"{error.instance!r} is not one of: {choices}"
    if "propertyNames" in error.schema_path:
        return (
            (*path, str(error.instance)),
            None,
            f"{error.instance!r} is not a valid member name (a DNS label)",
        )
    if validator == "pattern":
        return path, None, f"{error.instance!r} is not a valid {_pattern_word(path)}"
    return path, None, str(error.message)


def _pattern_word(path: PathKey) -> str:
    last = str(path[-1]) if path else "value"
    return {
        "domain": "domain name",
        "namespace": "namespace (DNS label)",
        "release": "release name",
        "health": "http(s) URL",
        "versions": "http(s) URL",
        "email": "email address",
    }.get(last, last)


def _leaf_errors(errors: Iterator[Any]) -> Iterator[Any]:
    """Descend into `allOf`/`if` wrappers so each report is about one key."""
    for error in errors:
        if error.context:
            yield from _leaf_errors(iter(error.context))
        else:
            yield error


def schema_problems(doc: YamlDocument, shown: str) -> list[Problem]:
    """Every schema violation in the registry document, in file order."""
    problems: list[Problem] = []
    for error in _leaf_errors(_validator().iter_errors(doc.data)):
        path, key, message = _describe(error)
        member = str(path[1]) if len(path) >= 2 and path[0] == "members" else None
        if key is None and member is not None and len(path) >= 3:
            key = ".".join(str(p) for p in path[2:])
        problems.append(Problem(shown, doc.line_of(path), member, key, message))
    problems.sort(key=lambda p: (p.line or 0, p.message))
    return problems


def member_from_record(name: str, record: Mapping[str, Any]) -> Member:
    hosts = tuple(
        Host(
            address=str(h["address"]),
            user=str(h.get("user", "root")),
            port=int(h.get("port", 22)),
            role=str(h.get("role", "server")),
            public_address=h.get("public_address"),
            disk=h.get("disk"),
            name=h.get("name"),
        )
        for h in record.get("hosts", [])
    )
    return Member(
        name=name,
        stage=str(record["stage"]),
        provider=str(record["provider"]),
        domain=str(record["domain"]),
        namespace=str(record.get("namespace", name)),
        release=str(record.get("release", name)),
        chart=str(record.get("chart", DEFAULT_CHART)),
        kube_context=record.get("kube_context"),
        health_check=bool(record.get("health_check", False)),
        hosts=hosts,
        record=record,
    )


def check_registry(repo: DeployRepo) -> tuple[YamlDocument, list[Problem]]:
    """Parse the registry and list all of its problems (schema, then cross-member rules)."""
    shown = repo.relative(repo.registry)
    doc = load_mapping(repo.registry, shown)
    problems = schema_problems(doc, shown)
    members = doc.data.get("members") if isinstance(doc.data, dict) else None
    if isinstance(members, dict):
        domains: dict[str, str] = {}
        for name, record in members.items():
            if not isinstance(record, dict):
                continue
            chart = record.get("chart", DEFAULT_CHART)
            if isinstance(chart, str) and not (repo.root / chart / "Chart.yaml").is_file():
                line = doc.line_of(("members", name, "chart"))
                problems.append(
                    Problem(shown, line, str(name), "chart", f"no chart at {chart}/Chart.yaml")
                )
            domain = record.get("domain")
            if isinstance(domain, str) and domain in domains:
                line = doc.line_of(("members", name, "domain"))
                problems.append(
                    Problem(
                        shown,
                        line,
                        str(name),
                        "domain",
                        f"also the domain of member {domains[domain]}",
                    )
                )
            elif isinstance(domain, str):
                domains[domain] = str(name)
    if not problems and isinstance(doc.data, dict):
        from hubfleet.registry.federation import federation_problems

        problems += federation_problems(doc.data, shown, doc.line_of)
    return doc, problems


def load_registry(repo: DeployRepo) -> Registry:
    """The validated registry; the first problem (and how many more) is a ConfigError."""
    doc, problems = check_registry(repo)
    if problems:
        more = f" (and {len(problems) - 1} more; run: invoke validate)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}")
    members = {
        name: member_from_record(name, record) for name, record in doc.data["members"].items()
    }
    return Registry(
        path=repo.registry, shown=repo.relative(repo.registry), members=members, document=doc
    )
