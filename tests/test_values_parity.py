"""Differential: the values hubfleet hands Helm are the values `helm -f` computes from the same
files, proven on the rendered manifests of the real charts.

Each file of tests/values_corpus/ is a member's values layer (`NN-name.yaml`, and under it
`NN-name.common.yaml` as config/common.yaml where there is one) full of what YAML readers
disagree on. It is rendered with the real umbrella stack (jupyterhub 4.2.0 from
../shared/charts) twice:
- through hubfleet: its layers (registry facts, common, member, the encrypted secrets layer),
  read and merged by hubfleet, rendered by the engine;
- through Helm's own handling of values files: each file parsed by Helm's parser
  (`helm_python.values_from_yaml`), merged in `-f` order with Helm's mergeMaps rule (maps
  merge, anything else replaces, null kept), rendered by the SDK straight from the chart.
The manifests must be the same, byte for byte; and where Helm refuses the files (a null key,
a template that breaks on a deleted default, a schema the result fails), hubfleet refuses them
too, and names the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from hubfleet.deploy.member import render_member
from hubfleet.errors import HubfleetError
from hubfleet.helm.sdk import SdkEngine
from hubfleet.registry.members import load_registry
from hubfleet.values.layers import member_values
from hubfleet.values.merge import get_path
from tests.conftest_repo import MakeRepo
from tests.test_real_charts import SHARED_CHARTS
from tests.test_umbrella_chart import umbrella_repo

CORPUS = Path(__file__).resolve().parent / "values_corpus"
CASES = sorted(p.name[: -len(".yaml")] for p in CORPUS.glob("*.yaml") if ".common." not in p.name)
# The stack and what the jupyterhub chart would otherwise generate at random on each render.
SECRETS: dict[str, Any] = {
    "binderhubEnabled": False,
    "jupyterhubEnabled": True,
    "jupyterhub": {
        "hub": {"cookieSecret": "c" * 64, "config": {"CryptKeeper": {"keys": ["k" * 64]}}},
        "proxy": {"secretToken": "t" * 64},
    },
}


def helm_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's mergeMaps for `-f a -f b`: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = helm_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_hubfleet_hands_helm_what_helm_f_computes(case: str, deploy_repo: MakeRepo) -> None:
    assert SHARED_CHARTS.is_dir(), "../shared/charts (the real upstream charts) is missing"
    member_text = (CORPUS / f"{case}.yaml").read_bytes().decode("utf-8")
    common_file = CORPUS / f"{case}.common.yaml"
    common_text = common_file.read_text(encoding="utf-8") if common_file.exists() else ""
    repo = umbrella_repo(
        deploy_repo,
        members={"m": {"domain": "m.example.org"}},
        values={"m": {}},
        secrets={"m": SECRETS},
    )
    (repo.root / "config" / "common.yaml").write_text(common_text, encoding="utf-8")
    (repo.root / "config" / "m.yaml").write_bytes(member_text.encode("utf-8"))
    member = load_registry(repo).member("m")
    engine = SdkEngine(chart_cache=SHARED_CHARTS)

    try:
        ours = render_member(repo, member, engine)
    except HubfleetError as err:
        ours_failed: str | None = str(err)
    else:
        ours_failed = None

    facts = {"hubfleet": {"member": "m", "stage": "staging", "domain": "m.example.org"}}
    theirs_values: dict[str, Any] = facts
    try:
        for text in (common_text, member_text, yaml.safe_dump(SECRETS)):
            theirs_values = helm_merge(theirs_values, helm_python.values_from_yaml(text))
        with helm_python.Chart.load(repo.root / "chart") as chart:
            rendered = chart.render(theirs_values, name="m", namespace="m", is_install=True)
    except helm_python.HelmError as err:
        # Helm refuses these files too: hubfleet must refuse them, not hand Helm something else
        assert ours_failed is not None, f"{case}: Helm fails ({err}) where hubfleet does not"
        if isinstance(err, helm_python.HelmValuesError) and "YAML" in str(err):
            assert ours_failed.startswith("config/m.yaml"), ours_failed  # names the file
        return
    assert ours_failed is None, f"{case}: hubfleet fails ({ours_failed}) where Helm does not"
    theirs = {p: t for p, t in rendered.items() if t.strip() and not p.endswith("/NOTES.txt")}

    assert ours.values.user.values == theirs_values
    assert sorted(ours.manifests) == sorted(theirs)
    for path, text in theirs.items():
        assert ours.manifests[path] == text, f"{case}: {path} differs"


def test_values_from_the_corpus_keep_their_lines_and_masking(deploy_repo: MakeRepo) -> None:
    repo = umbrella_repo(
        deploy_repo,
        members={"m": {"domain": "m.example.org"}},
        values={"m": {}},
        secrets={"m": SECRETS},
    )
    (repo.root / "config" / "m.yaml").write_text(
        (CORPUS / "10-merge-keys.yaml").read_text(encoding="utf-8")
    )
    values = member_values(repo, load_registry(repo).member("m"))
    layer = next(layer for layer in values.layers if layer.name == "config/m.yaml")
    assert get_path(layer.data, ("jupyterhub", "custom", "gpu", "memory")) == "8G"
    assert layer.lines[("jupyterhub", "custom", "gpu", "memory")] == 8
    assert get_path(layer.data, ("jupyterhub", "custom", "gpu", "cpu")) == 1  # from the merge key
    origin = values.effective.origins[("jupyterhub", "hub", "cookieSecret")]
    assert origin.secret and origin.name == "secrets/config/m.yaml"
