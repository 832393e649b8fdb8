"""ci.plan: which members a change deploys. The rules, and `plan()` that applies them, are
pure: paths and parsed registries in, a Plan out; `plan_for_repo` reads them from the repo.

The rules, for each changed path (relative to the deploy repo root, '/'-separated):

- a member's values or secrets: `config/<m>.yaml`, `secrets/config/<m>.yaml` and every
  `secrets/<m>*` file (`<m>-kubeconfig.yaml`, `<m>.key`, `<m>-wireguard.yaml`, ...; the longest
  member name that fits wins, so `a-b-kubeconfig.yaml` is a-b's, not a's) -> that member;
- `config/common.yaml`, `secrets/config/common.yaml` (and the `common/` folders beside them),
  `chart/`, `hubfleet/`, `pyproject.toml` -> every member (conservative: `chart/` counts for
  every member even if some use another chart, since charts may depend on it);
- a member's own chart directory (registry `chart:` other than `chart`, e.g. `charts/demo/`)
  -> the members using it;
- the registry `config/federation.yaml` -> only the members whose parsed record changed
  (records are compared with their defaults filled in, so comments, key order, quoting and
  spelling out a default change nothing); added members are deployed, removed members are
  reported under `removed` and never deployed;
- docs, tests, workflows, bench, README, LICENSE, ... ("inert") -> nothing; so is the
  infrastructure (`terraform/`, the OpenTofu credentials `secrets/tofu.yaml` and
  `secrets/<m>-tofu.yaml`, and a record's `tofu:` block), which `invoke tofu.apply` applies,
  not a deploy;
- any other path -> nothing, but it is listed under `ignored` so a reviewer sees that ci.plan
  did not recognise it (an orphan `config/x.yaml` of no member, `config/templates/`,
  `scripts/`, ...). Files of a removed member are neither: they belong to the removal.

Overrides replace the computed set: `all` (every member), `none` (nobody), or named members
(exactly those; an unknown name is an error suggesting close names). `removed` and `ignored`
are reported whatever the override.

The Plan, its records and its JSON for GitHub Actions are in `hubfleet.ci.matrix`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from hubfleet.ci.matrix import NO_OVERRIDES, STAGES, Deployment, Overrides, Plan
from hubfleet.errors import ConfigError, UnknownMemberError
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import parse_with_lines
from hubfleet.registry.members import DEFAULT_CHART, schema_problems

REGISTRY_PATH = "config/federation.yaml"

# paths that change what every member deploys
EVERY_MEMBER_FILES = frozenset(
    {"config/common.yaml", "secrets/config/common.yaml", "pyproject.toml"}
)
EVERY_MEMBER_DIRS = ("chart/", "hubfleet/", "config/common/", "secrets/config/common/")

# paths that deploy nothing (docs, tests, CI, benchmarks)
INERT_DIRS = ("docs/", "tests/", ".github/", "bench/", "terraform/")
INERT_FILES = frozenset(
    {"README", "LICENSE", "TESTING.md", "CHANGELOG.md", "noxfile.py", ".gitignore"}
)
INERT_SUFFIXES = (".md", ".rst", ".txt")
# registry keys that change no deploy (the OpenTofu stacks' variables)
NOT_DEPLOYED_KEYS = frozenset({"tofu"})

_HOST_DEFAULTS = {"user": "root", "port": 22, "role": "server"}
_MAX_FILES_SHOWN = 3


# --- registry records --------------------------------------------------------------------------


def registry_members(document: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The member records of a parsed registry document ({} for None or a malformed one)."""
    if not isinstance(document, Mapping):
        return {}
    members = document.get("members")
    if not isinstance(members, Mapping):
        return {}
    return {str(k): v if isinstance(v, Mapping) else {} for k, v in members.items()}


def normalized(name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its defaults filled in, so spelling out a default changes nothing."""
    out: dict[str, Any] = {
        "namespace": name,
        "release": name,
        "chart": DEFAULT_CHART,
        "health_check": False,
        **record,
    }
    for key in NOT_DEPLOYED_KEYS:
        out.pop(key, None)
    hosts = out.get("hosts")
    if isinstance(hosts, list):
        out["hosts"] = [{**_HOST_DEFAULTS, **h} if isinstance(h, Mapping) else h for h in hosts]
    if isinstance(out.get("chart"), str):
        out["chart"] = out["chart"].strip("/")
    return out


def changed_keys(name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The top-level keys whose (normalised) values differ, sorted."""
    old, new = normalized(name, before), normalized(name, after)
    return sorted(k for k in set(old) | set(new) if old.get(k, _MISSING) != new.get(k, _MISSING))


_MISSING = object()


# --- paths -------------------------------------------------------------------------------------


def normalize_path(path: str) -> str:
    """A changed path as git prints it: '/'-separated, relative, no leading './'."""
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.lstrip("/")


def _is_inert(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    tofu_credentials = (
        path.count("/") == 1
        and path.startswith("secrets/")
        and (name == "tofu.yaml" or name.endswith("-tofu.yaml"))
    )
    return (
        tofu_credentials
        or path.startswith(INERT_DIRS)
        or path in INERT_FILES
        or name.startswith(("README", "LICENSE"))
        or name.endswith(INERT_SUFFIXES)
    )


def _member_of_secret(filename: str, names: Iterable[str]) -> str | None:
    """The member a top-level secrets/ file belongs to: the longest name it starts with."""
    best: str | None = None
    for name in names:
        fits = filename == name or filename.startswith((f"{name}-", f"{name}."))
        if fits and (best is None or len(name) > len(best)):
            best = name
    return best


def _member_of_file(path: str, names: Iterable[str]) -> str | None:
    """The member whose own values or secrets `path` is, if any (among `names`)."""
    pool = set(names)
    for prefix in ("config/", "secrets/config/"):
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if "/" not in rest and rest.endswith(".yaml") and rest[: -len(".yaml")] in pool:
                return rest[: -len(".yaml")]
            return None
    if path.startswith("secrets/"):
        rest = path[len("secrets/") :]
        if "/" not in rest:
            return _member_of_secret(rest, pool)
    return None


def _summarise(label: str, files: list[str]) -> str:
    if len(files) == 1 and files[0] == label:
        return label
    if len(files) <= _MAX_FILES_SHOWN:
        return ", ".join(files)
    return f"{label} ({len(files)} files)"


# --- the plan ----------------------------------------------------------------------------------


def plan(
    changed_files: Iterable[str],
    base_registry: Mapping[str, Any] | None,
    head_registry: Mapping[str, Any],
    overrides: Overrides = NO_OVERRIDES,
) -> Plan:
    """Which members the change deploys.

    `base_registry` and `head_registry` are the parsed `config/federation.yaml` documents
    before and after the change; None for the base means there was no registry (every member
    is added). Pass the head document as the base when the registry did not change.
    """
    head = registry_members(head_registry)
    base = registry_members(base_registry)
    paths = sorted({normalize_path(p) for p in changed_files if p.strip()})

    reasons: dict[str, list[str]] = {name: [] for name in head}
    every: dict[str, list[str]] = {}  # label -> files, for rules that touch every member
    per_member: dict[tuple[str, str], list[str]] = {}  # (member, label) -> files
    by_chart: dict[str, list[str]] = {}  # chart dir -> members using it (other than chart/)
    for name, record in head.items():
        chart = normalized(name, record)["chart"]
        if isinstance(chart, str) and chart != DEFAULT_CHART:
            by_chart.setdefault(chart + "/", []).append(name)
    removed = sorted(set(base) - set(head))
    ignored: list[str] = []
    inert: list[str] = []

    for path in paths:
        if path == REGISTRY_PATH:
            continue  # compared record by record below
        if path in EVERY_MEMBER_FILES:
            every.setdefault(path, []).append(path)
            continue
        top_dir = next((d for d in EVERY_MEMBER_DIRS if path.startswith(d)), None)
        if top_dir:
            every.setdefault(top_dir, []).append(path)
            continue
        chart_dirs = [d for d in by_chart if path.startswith(d)]
        if chart_dirs:
            for chart_dir in chart_dirs:
                for name in by_chart[chart_dir]:
                    per_member.setdefault((name, chart_dir), []).append(path)
            continue
        if _is_inert(path):
            inert.append(path)
            continue
        owner = _member_of_file(path, head)
        if owner is not None:
            per_member.setdefault((owner, path), []).append(path)
            continue
        if _member_of_file(path, removed) is not None:
            continue  # a removed member's files go with its removal
        ignored.append(path)

    for label, files in every.items():
        for name in reasons:
            reasons[name].append(_summarise(label, files))
    for (name, label), files in per_member.items():
        reasons[name].append(_summarise(label, files))
    for name, record in head.items():
        if base_registry is not None and name not in base:
            reasons[name].append(f"{REGISTRY_PATH}: added")
        elif name in base:
            keys = changed_keys(name, base[name], record)
            if keys:
                reasons[name].append(f"{REGISTRY_PATH}: {', '.join(keys)} changed")
    if base_registry is None:
        for name in head:
            reasons[name].append(f"{REGISTRY_PATH}: added (no registry before)")
    redirector = _rotation_change(base_registry, head_registry)
    if redirector in reasons:
        reasons[redirector].append(f"{REGISTRY_PATH}: the rotation changed (the redirector)")

    notes: list[str] = []
    if overrides.all:
        chosen = {name: ["--all"] for name in head}
    elif overrides.none:
        chosen = {}
        wanted = sum(1 for r in reasons.values() if r)
        notes.append(f"--none: {wanted} member(s) the change touches are not deployed.")
    elif overrides.members:
        chosen = {name: ["--member"] for name in _named(overrides.members, head, removed)}
    else:
        chosen = {name: r for name, r in reasons.items() if r}

    if not overrides.members:
        for name in sorted(chosen):
            if _stage(head[name]) == "prod" and _drained(head[name]):
                del chosen[name]
                notes.append(
                    f"member {name} is drained ({REGISTRY_PATH}): not deployed until "
                    f"invoke federation.readmit {name}"
                )
    deploy = tuple(
        Deployment(name, _stage(head[name]), tuple(chosen[name])) for name in sorted(chosen)
    )
    return Plan(
        deploy=deploy,
        removed=tuple(removed),
        ignored=tuple(ignored),
        inert=tuple(inert),
        override=overrides.label,
        notes=tuple(notes),
    )


def _drained(record: Mapping[str, Any]) -> bool:
    block = record.get("federation")
    return isinstance(block, Mapping) and isinstance(block.get("drained"), Mapping)


def _rotation_change(
    base_registry: Mapping[str, Any] | None, head_registry: Mapping[str, Any]
) -> str | None:
    """The member running the redirector, when the rotation it serves changed."""
    from hubfleet.registry.federation import Federation, federation_of

    def served(federation: Federation | None) -> object:
        if federation is None:
            return None
        places = [
            (p.member, p.weight, p.prime, p.health, p.versions) for p in federation.in_rotation
        ]
        return (federation.domain, federation.image, federation.tag, places)

    head = federation_of(head_registry)
    base = federation_of(base_registry) if base_registry is not None else None
    if head is None:
        return None
    if base is not None and served(base) == served(head) and base.redirector == head.redirector:
        return None
    return head.redirector


def _stage(record: Mapping[str, Any]) -> str:
    stage = record.get("stage")
    if stage not in STAGES:
        raise ConfigError(f"{REGISTRY_PATH}: stage {stage!r} is not one of: {', '.join(STAGES)}")
    return str(stage)


def _named(names: Iterable[str], head: Mapping[str, Any], removed: Iterable[str]) -> list[str]:
    """The named members, each checked; an unknown one is an error suggesting close names."""
    gone = set(removed)
    out: list[str] = []
    for name in names:
        if name in head:
            if name not in out:
                out.append(name)
            continue
        if name in gone:
            raise UnknownMemberError(
                f"member {name!r} is removed by this change; it cannot be deployed"
            )
        close = difflib.get_close_matches(name, list(head), n=3, cutoff=0.5)
        hint = (
            f"; did you mean {' or '.join(close)}?"
            if close
            else f" (members: {', '.join(sorted(head)) or 'none'})"
        )
        raise UnknownMemberError(f"unknown member {name!r} in {REGISTRY_PATH}{hint}")
    return out


# --- reading the repo (the only part that does I/O) --------------------------------------------


def _parse_registry(text: str, repo: DeployRepo, shown: str, check: bool) -> dict[str, Any]:
    doc = parse_with_lines(text, repo.registry, shown)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}:1: expected a mapping at the top level")
    if check:
        problems = schema_problems(doc, shown)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"{problems[0]}{more}")
    return data


def plan_for_repo(
    repo: DeployRepo,
    base: str | None = None,
    head: str | None = None,
    changed: Iterable[str] = (),
    overrides: Overrides = NO_OVERRIDES,
) -> Plan:
    """Plan a change of `repo`: between git refs, or for the `changed` paths as given.

    With `changed`, git is only asked for the base registry (when `base` is given); otherwise
    the base registry is the head one. Without `changed`, `base` is needed (unless an override
    of all/none/members makes the diff moot) and `head` defaults to HEAD. The head registry is
    the working tree's unless `head` is given; it must pass the registry schema.
    """
    from hubfleet.ci import git

    shown = repo.relative(repo.registry)
    files = [p for p in changed if p.strip()]
    if head is not None:
        text = git.file_at(repo.root, head, REGISTRY_PATH)
        if text is None:
            raise ConfigError(f"{REGISTRY_PATH} does not exist at {head}")
        head_registry = _parse_registry(text, repo, f"{head}:{REGISTRY_PATH}", check=True)
    else:
        try:
            text = repo.registry.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{shown}: cannot read: {err.strerror}") from None
        head_registry = _parse_registry(text, repo, shown, check=True)
    if not files and base is None:
        if overrides.label is None:
            raise ConfigError(
                "ci.plan needs --base REF (and --head REF, default HEAD) or --changed FILE, "
                "or one of --all, --none, --member"
            )
        return plan([], head_registry, head_registry, overrides)
    base_registry: dict[str, Any] | None = head_registry
    if base is not None:
        before = git.file_at(repo.root, base, REGISTRY_PATH)
        base_registry = (
            None
            if before is None
            else _parse_registry(before, repo, f"{base}:{REGISTRY_PATH}", check=False)
        )
        if not files:
            files = git.changed_files(repo.root, base, head or "HEAD")
    result = plan(files, base_registry, head_registry, overrides)
    if base is None and REGISTRY_PATH in {normalize_path(p) for p in files}:
        note = (
            f"{REGISTRY_PATH} is listed as changed but no --base was given: its records were "
            "not compared (give --base REF, or name the members with --member)."
        )
        result = replace(result, notes=(*result.notes, note))
    return result
