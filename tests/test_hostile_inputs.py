"""Hostile values files, chart files, decrypted secrets and JSON, through the readers and the
`deploy --dry-run` front: each is one line naming the file (and the line), exit 1, nothing
written; a large but sane values file is summarised by the dry run, not printed whole."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.errors import ConfigError
from hubfleet.files.jsonfile import parse_json
from hubfleet.kube import kubeconfig
from hubfleet.secrets import sops
from hubfleet.values.layers import values_layer
from tests.conftest_repo import MakeRepo, secret_values, tree_snapshot
from tests.test_fronts import one_error_line, run_in
from tests.test_hostile_registry import BOMB

DEEP_FLOW = "hub: " + "[" * 50_000 + "]" * 50_000 + "\n"
DEEP_BLOCK = "hub:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000))
PYTHON_ON_A_MAPPING = "hub:\n  extraConfig: !!python/object/apply:os.system {cmd: echo pwned}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOMB, "config/alpha.yaml:6: more than 500000 values (aliases expanded); refused"),
        (DEEP_FLOW, "config/alpha.yaml:1: nested deeper than 64 levels; refused"),
        (DEEP_BLOCK, "config/alpha.yaml:65: nested deeper than 64 levels; refused"),
        (
            PYTHON_ON_A_MAPPING,
            "config/alpha.yaml:2: tag tag:yaml.org,2002:python/object/apply:os.system is not "
            "allowed (only YAML's core types)",
        ),
        ("hub: {a: 1\n", "config/alpha.yaml:1: malformed YAML: did not find expected ',' or '}'"),
    ],
    ids=["alias bomb", "deep flow list", "deep mapping", "python tag on a mapping", "cut off"],
)
def test_a_hostile_values_layer_is_one_line(text: str, expected: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        values_layer(text, "config/alpha.yaml")
    assert time.perf_counter() - started < 5
    assert str(caught.value) == expected


def test_hostile_values_files_through_the_dry_run(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    layer = repo.root / "config" / "alpha.yaml"
    original = layer.read_bytes()
    cases: dict[str, bytes] = {
        "alias bomb": BOMB.encode(),
        "deep flow list": DEEP_FLOW.encode(),
        "python tag": PYTHON_ON_A_MAPPING.encode(),
        "not UTF-8": b"hub:\n  a: ok\n  b: \xff\n",
        "50 MB": b"hub:\n  replicas: 1\n" + b"# pad\n" * 9_000_000,
    }
    expected = {
        "alias bomb": "config/alpha.yaml:6: more than 500000 values (aliases expanded)",
        "deep flow list": "config/alpha.yaml:1: nested deeper than 64 levels",
        "python tag": "config/alpha.yaml:2: tag tag:yaml.org,2002:python/object/apply",
        "not UTF-8": "config/alpha.yaml:3: not UTF-8 text (byte 19)",
        "50 MB": f"config/alpha.yaml: {len(cases['50 MB'])} bytes, over the limit of 4194304",
    }
    for name, content in cases.items():
        layer.write_bytes(content)
        before = tree_snapshot(repo.root)
        started = time.perf_counter()
        done = run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path)
        assert time.perf_counter() - started < 30, name
        assert one_error_line(done).startswith("error: " + expected[name]), (name, done.stderr)
        assert tree_snapshot(repo.root) == before, name
    layer.write_bytes(original)


def test_a_hostile_secrets_layer_is_named_after_decryption(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    path = repo.member_secret_values("alpha")
    secret = secret_values("alpha")["hub"]["proxyToken"]
    # valid YAML for sops (it parses it too), past hubfleet's depth limit
    deep: dict[str, Any] = {"hub": {"proxyToken": secret}}
    inner = deep
    for i in range(80):
        inner["n"] = {f"k{i}": 1}
        inner = inner["n"]
    sops.write_encrypted(repo, path, yaml.safe_dump(deep))
    before = tree_snapshot(repo.root)
    done = run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path)
    line = one_error_line(done)
    # the encrypted file is as deep as its plaintext: refused before sops is even asked
    assert line.startswith("error: secrets/config/alpha.yaml:"), line
    assert line.endswith(": nested deeper than 64 levels; refused")
    assert secret not in done.stdout + done.stderr
    assert tree_snapshot(repo.root) == before


def test_a_large_values_file_is_summarised_by_the_dry_run(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    notebooks = {f"nb{i:04d}": {"cells": [f"print({j})" for j in range(20)]} for i in range(1500)}
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}},
        values={"alpha": {"hub": {"replicas": 1}, "demo": {"notebooks": notebooks}}},
    )
    size = (repo.root / "config" / "alpha.yaml").stat().st_size
    assert size > 500_000
    done = run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert len(out) < 10_000, len(out)
    assert "too many to show here, by top-level key (see them whole: invoke values alpha)" in out
    assert "      demo: " in out and "      hub: " in out
    assert "nb0001" not in out
    secret = secret_values("alpha")["hub"]["proxyToken"]
    assert secret not in out
    # the whole values are one command away, and are the same values
    whole = run_in(repo, ["values", "alpha"], tmp_path)
    assert whole.returncode == 0 and "nb1499" in whole.stdout


def test_a_hostile_chart_yaml_is_named(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    chart_yaml = repo.root / "charts" / "demo" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text() + BOMB)
    before = tree_snapshot(repo.root)
    started = time.perf_counter()
    done = run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path)
    assert time.perf_counter() - started < 30
    line = one_error_line(done)
    assert "Chart.yaml" in line and "aliases" in line, line
    assert tree_snapshot(repo.root) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "f.json:1: nested deeper than 64 levels; refused"),
        (
            '{"a":\n  ["[[[[", "\\"]]"],\n  x}',
            "f.json:3: malformed JSON: Expecting property name enclosed in double quotes",
        ),
        ("", "f.json:1: malformed JSON: Expecting value"),
    ],
    ids=["deep", "brackets in strings, then broken", "empty"],
)
def test_hostile_json_is_one_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_json(text, "f.json")
    assert str(caught.value) == expected


def test_json_within_bounds_reads_as_python_reads_it() -> None:
    doc = {"a": ["[", "]]", {"b": "{\n}"}], "n": 40e9, "deep": [[[[1]]]]}
    text = json.dumps(doc, indent=2)
    assert parse_json(text, "f.json") == doc
    assert parse_json(text.encode(), "f.json") == doc
    with pytest.raises(ConfigError, match=r"^f.json: 17 characters, over the limit of 10$"):
        parse_json('{"a": "bcdefghij"}'[:17], "f.json", max_bytes=10)


def test_a_hostile_kubeconfig_is_refused_untouched(tmp_path: Path) -> None:
    for name, text in {"bomb": BOMB, "deep": DEEP_FLOW, "tag": PYTHON_ON_A_MAPPING}.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            kubeconfig.read_file(path)
        assert str(caught.value).startswith(f"{path}:"), name
        assert str(caught.value).endswith("; not a kubeconfig, not touching it")
        assert path.read_text() == text


def test_a_hostile_member_template_is_one_line(tmp_path: Path) -> None:
    from hubfleet.files.repo import DeployRepo
    from hubfleet.members.templates import fill_template

    repo = DeployRepo(tmp_path)
    (tmp_path / "config" / "templates").mkdir(parents=True)
    template = Path("config/templates/member.yaml")
    cases = {
        "hub:\n  name: {name:>999999999}\n": "config/templates/member.yaml: placeholder {name} "
        "has a format or conversion; write it as a bare {name}",
        "hub:\n  name: {name!r}\n": "config/templates/member.yaml: placeholder {name} has a "
        "format or conversion; write it as a bare {name}",
        "hub:\n  name: {name\n": "config/templates/member.yaml: malformed placeholder "
        "(expected '}' before end of string)",
        BOMB.replace("lol", "{name}"): "config/templates/member.yaml:6: more than 500000 values "
        "(aliases expanded); refused",
    }
    for text, expected in cases.items():
        (tmp_path / template).write_text(text)
        started = time.perf_counter()
        with pytest.raises(ConfigError) as caught:
            fill_template(repo, template, {"name": "alpha"})
        assert time.perf_counter() - started < 5
        assert str(caught.value) == expected
    (tmp_path / template).write_text("hub:\n  name: {name}\n  literal: '{{kept}}'\n")
    assert "literal: '{kept}'" in fill_template(repo, template, {"name": "alpha"})
