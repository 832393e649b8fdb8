"""Property-based hostile input (Hypothesis): generated YAML and JSON documents, registry
records, member names, kubeconfigs and flag values, fed to the readers and to the task fronts.

For every input: exit 0 or 1 (never 2, never a signal), at most one line on stderr, no secret
value in any output, the repository and outside files unchanged when it fails, and within a
time bound. The fronts run in this process (invoke's own Program over hubfleet's tasks), so
a crash or a runaway would take the test run down with it. Examples are bounded so the suite
stays fast; `pytest --hypothesis-show-statistics` reports how many inputs each property tried.
"""

from __future__ import annotations

import io
import json
import os
import resource
import string
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invoke.program import Program

from hubfleet.errors import ConfigError
from hubfleet.files.jsonfile import parse_json
from hubfleet.files.repo import DeployRepo
from hubfleet.files.yamlfile import parse_with_lines
from hubfleet.kube import kubeconfig
from hubfleet.tasks import build_namespace
from hubfleet.values.layers import values_layer
from tests.conftest_repo import MakeRepo, secret_values, tree_snapshot

# The suite's runs are repeatable (derandomized: the same inputs each run, so CI cannot fail
# on an input nobody saw); HUBFLEET_HOSTILE_EXAMPLES=N explores N fresh random inputs per
# property instead (how new cases are found, before they are pinned as tests).
_EXPLORE = int(os.environ.get("HUBFLEET_HOSTILE_EXAMPLES", "0"))
PROPERTY = settings(
    max_examples=_EXPLORE or 60,
    derandomize=not _EXPLORE,
    deadline=None,  # each example is timed by the test itself, against its own bound
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FRONT = settings(PROPERTY, max_examples=_EXPLORE or 25)
READ_BOUND_S = 3.0
FRONT_BOUND_S = 20.0
MEMORY_BOUND_KB = 2 << 20  # 2 GiB: an alias bomb that got through would pass it quickly

# --- generated documents ---------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    _TEXT,
    st.sampled_from(["40e9", "0o17", "y", "on", "~", "2026-12-06", "<<", "*a", "&a", "!!str"]),
)
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=24,
)
_TAGS = st.sampled_from(
    [
        "!!python/object/apply:os.system",
        "!!python/name:os.system",
        "!!binary",
        "!custom",
        "!!set",
        "!!omap",
        "!<tag:example.com,2000:x>",
    ]
)


def _deep(depth: int, kind: str) -> str:
    if kind == "flow list":
        return "a: " + "[" * depth + "]" * depth + "\n"
    if kind == "flow map":
        return "a: " + "{b: " * depth + "1" + "}" * depth + "\n"
    return "a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth))


def _aliases(width: int, levels: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _tagged(tag: str, where: str) -> str:
    value = {"scalar": "x", "mapping": "{k: v}", "list": "[1, 2]"}[where]
    return f"a:\n  b: {tag} {value}\n"


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A dumped document with a slice of it cut out or repeated, or a byte-level oddity."""
    text = yaml.safe_dump(draw(_TREES), allow_unicode=True)
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    how = draw(st.sampled_from(["cut", "repeat", "bom", "crlf", "tab", "nul"]))
    if how == "cut":
        return text[:start] + text[end:]
    if how == "repeat":
        return text[:end] + text[start:end] * 3 + text[end:]
    if how == "bom":
        return "\ufeff" + text
    if how == "crlf":
        return text.replace("\n", "\r\n")
    if how == "tab":
        return text[:start] + "\t" + text[start:]
    return text[:start] + "\x00" + text[start:]


YAML_TEXTS = st.one_of(
    st.text(max_size=200),
    _TREES.map(lambda t: yaml.safe_dump(t, allow_unicode=True)),
    _mutated(),
    st.builds(_deep, st.integers(1, 20_000), st.sampled_from(["flow list", "flow map", "block"])),
    st.builds(_aliases, st.integers(1, 12), st.integers(1, 12)),
    st.builds(_tagged, _TAGS, st.sampled_from(["scalar", "mapping", "list"])),
)
JSON_TEXTS = st.one_of(
    st.text(max_size=200),
    _TREES.map(lambda t: json.dumps(t)),
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 50_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)


# per property: inputs tried and the slowest (HUBFLEET_HOSTILE_REPORT=FILE writes them)
TRIED: dict[str, list[float]] = {}


def _count(prop: str, seconds: float) -> None:
    TRIED.setdefault(prop, []).append(seconds)


def _one_line_refusal(err: ConfigError) -> None:
    text = str(err)
    assert text and "\n" not in text, text


def _timed_read(read: Any, *args: Any) -> None:
    started = time.perf_counter()
    try:
        read(*args)
    except ConfigError as err:
        _one_line_refusal(err)
    seconds = time.perf_counter() - started
    _count(f"read: {getattr(read, '__name__', read)}", seconds)
    assert seconds < READ_BOUND_S


@PROPERTY
@given(text=YAML_TEXTS)
def test_any_yaml_is_read_or_refused_in_one_line(text: str) -> None:
    _timed_read(parse_with_lines, text, Path("f.yaml"), "f.yaml")
    _timed_read(values_layer, text, "config/m.yaml")


@PROPERTY
@given(text=JSON_TEXTS)
def test_any_json_is_read_or_refused_in_one_line(text: str) -> None:
    _timed_read(parse_json, text, "f.json")
    _timed_read(parse_json, text.encode("utf-8", "surrogatepass"), "f.json")


# --- the task fronts, in this process -----------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    task: str
    code: int
    out: str
    err: str
    seconds: float


def run_task(args: list[str]) -> Ran:
    """`invoke ARGS` through invoke's Program over hubfleet's tasks, in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    started = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            Program(namespace=build_namespace(), name="invoke", binary="invoke").run(
                ["invoke", *args], exit=True
            )
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    task = args[0] if args else ""
    return Ran(task, code, out.getvalue(), err.getvalue(), time.perf_counter() - started)


SECRETS = [
    value
    for member in ("alpha",)
    for group in secret_values(member).values()
    for value in group.values()
]
KUBE_TOKEN = "kube-token-that-must-never-show"


@pytest.fixture
def fleet(
    deploy_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[DeployRepo]:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}},
        kubeconfigs={
            "alpha": {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://alpha.example:6443"}}],
                "users": [{"name": "u", "user": {"token": KUBE_TOKEN}}],
                "contexts": [{"name": "alpha", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "alpha",
            }
        },
    )
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("HUBFLEET_ROOT", str(repo.root))
    yield repo


def test_the_fronts_in_this_process_run_the_tasks(fleet: DeployRepo) -> None:
    # what the properties below rely on: the in-process front runs the real tasks
    ran = run_task(["values", "alpha"])
    assert ran.code == 0 and "greeting: hello" in ran.out and ran.err == ""
    ran = run_task(["deploy", "alpha", "--dry-run", "--timeout", "60"])
    assert ran.code == 0 and "alpha: dry run, nothing was changed" in ran.out, ran.err
    ran = run_task(["deploy", "alpha", "--dry-run", "--timeout", "abc"])
    assert ran.code == 1 and len(ran.err.strip().splitlines()) == 1 and "--timeout" in ran.err
    ran = run_task(["values", "nobody"])
    assert ran.code == 1 and ran.err.startswith("error: ") and "nobody" in ran.err


def check_front(ran: Ran, repo: DeployRepo, before: dict[str, bytes], home: Path) -> None:
    _count("front: " + ran.task, ran.seconds)
    assert ran.code in (0, 1), (ran.code, ran.err)
    assert len(ran.err.strip().splitlines()) <= 1, ran.err
    for secret in (*SECRETS, KUBE_TOKEN):
        assert secret not in ran.out + ran.err
    assert ran.seconds < FRONT_BOUND_S
    if ran.code != 0:
        assert tree_snapshot(repo.root) == before
        assert not list(home.rglob("*.bak-*"))


_RECORD_KEYS = st.sampled_from(
    ["stage", "provider", "domain", "chart", "namespace", "release", "hosts", "support", "s3",
     "federation", "k3s", "gke", "kube_context", "colour"]
)  # fmt: skip
_RECORDS = st.dictionaries(_RECORD_KEYS | _TEXT, _TREES, max_size=6)


@FRONT
@given(record=_RECORDS, raw=st.one_of(st.none(), YAML_TEXTS))
def test_registry_records_through_the_fronts(
    fleet: DeployRepo, record: dict[str, Any], raw: str | None
) -> None:
    registry = fleet.registry
    original = registry.read_bytes()
    base = {"stage": "staging", "provider": "kubeconfig", "chart": "charts/demo"}
    if raw is None:
        text = yaml.safe_dump({"members": {"alpha": {**base, **record}}}, allow_unicode=True)
    else:
        text = raw
    registry.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        before = tree_snapshot(fleet.root)
        for args in (["values", "alpha"], ["member.status", "--json"]):
            check_front(run_task(args), fleet, before, Path.home())
    finally:
        registry.write_bytes(original)


_NAMES = st.one_of(
    _TEXT,
    st.text(string.ascii_lowercase + string.digits + "-._/", max_size=70),
    st.sampled_from(
        ["alpha", "ALPHA", "../alpha", "alpha/../alpha", "-alpha", "a" * 64, "", " ", "alpha\n"]
    ),
)


@FRONT
@given(name=_NAMES)
def test_member_names_through_the_fronts(fleet: DeployRepo, name: str) -> None:
    before = tree_snapshot(fleet.root)
    for args in (
        ["values", name],
        ["deploy", name, "--dry-run"],
        ["member.new", name, "--domain", "n.example.org", "--provider", "gke",
         "--gke-project", "p", "--gke-location", "us-central1-a", "--dry-run"],
    ):  # fmt: skip
        ran = run_task(args)
        check_front(ran, fleet, before, Path.home())
        assert tree_snapshot(fleet.root) == before  # a dry run or a read, whatever the name


_NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(str),
    st.sampled_from(["abc", "", "1e23", "-5", "0", "86401", "0x10", "١٢", "5 ", "nan", "inf"]),
    _TEXT,
)


@FRONT
@given(timeout=_NUMBERS, cpus=_NUMBERS, ram=_NUMBERS)
def test_flag_values_through_the_fronts(
    fleet: DeployRepo, timeout: str, cpus: str, ram: str
) -> None:
    before = tree_snapshot(fleet.root)
    for args in (
        ["deploy", "alpha", "--dry-run", "--timeout", timeout],
        ["member.new", "beta", "--domain", "beta.example.org", "--provider", "gke",
         "--gke-project", "p", "--gke-location", "us-central1-a", "--node-cpus", cpus,
         "--node-ram-gb", ram, "--dry-run"],
    ):  # fmt: skip
        ran = run_task(args)
        check_front(ran, fleet, before, Path.home())
        assert tree_snapshot(fleet.root) == before


_KUBECONFIGS = st.one_of(
    YAML_TEXTS,
    st.fixed_dictionaries(
        {},
        optional={
            "apiVersion": st.sampled_from(["v1", "v2", 1]) | _SCALARS,
            "kind": st.sampled_from(["Config", "ConfigMap"]) | _SCALARS,
            "clusters": st.lists(st.dictionaries(st.sampled_from(["name", "cluster"]), _TREES)),
            "users": st.lists(st.dictionaries(st.sampled_from(["name", "user"]), _TREES)),
            "contexts": st.lists(st.dictionaries(st.sampled_from(["name", "context"]), _TREES)),
            "current-context": _SCALARS,
        },
    ).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
)


@FRONT
@given(text=_KUBECONFIGS)
def test_kubeconfigs_through_the_fronts(fleet: DeployRepo, tmp_path: Path, text: str) -> None:
    target = tmp_path / "personal-config"
    target.write_text(text, encoding="utf-8", errors="surrogatepass")
    outside = target.read_bytes()
    try:
        before = tree_snapshot(fleet.root)
        ran = run_task(["kubeconfig.merge", "alpha", "--into", str(target)])
        check_front(ran, fleet, before, Path.home())
        if ran.code != 0:
            assert target.read_bytes() == outside
            assert not list(tmp_path.glob("personal-config.bak-*"))
        else:
            merged = kubeconfig.read_file(target)
            assert merged is not None and merged["kind"] == "Config"
        ran = run_task(
            ["member.new", "imported", "--domain", "i.example.org", "--provider", "kubeconfig",
             "--kubeconfig", str(target), "--dry-run"]
        )  # fmt: skip
        check_front(ran, fleet, before, Path.home())
        assert tree_snapshot(fleet.root) == before
    finally:
        for leftover in tmp_path.glob("personal-config*"):
            leftover.unlink()


def test_every_input_stayed_within_memory_and_time() -> None:
    # the last test of this module: the properties above ran in this process, so its peak
    # memory is theirs; their inputs and the slowest of each are written when asked
    assert TRIED, "the properties above ran no input"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < MEMORY_BOUND_KB
    report = os.environ.get("HUBFLEET_HOSTILE_REPORT")
    if report:
        rows = {
            name: {"inputs": len(t), "slowest_s": round(max(t), 3)} for name, t in TRIED.items()
        }
        Path(report).write_text(json.dumps(rows, indent=1) + "\n")
