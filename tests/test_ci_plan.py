"""ci.plan: which members a change deploys. A table of change cases, the git adapter, the task."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context

from hubfleet.ci.git import GitError, changed_files, file_at
from hubfleet.ci.matrix import Overrides
from hubfleet.ci.plan import plan
from hubfleet.cli import Exit
from hubfleet.errors import ConfigError, UnknownMemberError
from hubfleet.tasks import ci

REGISTRY = """\
# the registry
members:
  alpha:
    stage: staging
    provider: kubeconfig
    domain: alpha.example.org
  alpha-two:
    stage: staging
    provider: kubeconfig
    domain: alpha-two.example.org
  beta:
    stage: prod
    provider: kubeconfig
    domain: beta.example.org
  gamma:
    stage: prod
    provider: kubeconfig
    domain: gamma.example.org
    chart: charts/special
"""
HEAD: dict[str, Any] = yaml.safe_load(REGISTRY)
EVERYONE = ["alpha", "alpha-two", "beta", "gamma"]


def edited(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)
    return data


REORDERED = edited(
    REGISTRY.replace("# the registry", "# reworded comment").replace(
        "    stage: staging\n    provider: kubeconfig\n    domain: alpha.example.org\n",
        "    domain: alpha.example.org  # hi\n    provider: kubeconfig\n    stage: staging\n"
        "    namespace: alpha\n",
    )
)
BETA_TO_STAGING = edited(
    REGISTRY.replace(
        "stage: prod\n    provider: kubeconfig\n    domain: beta",
        "stage: staging\n    provider: kubeconfig\n    domain: beta",
    )
)
WITHOUT_GAMMA = edited(REGISTRY.split("  gamma:")[0])
WITH_DELTA = edited(
    REGISTRY + "  delta:\n    stage: prod\n    provider: kubeconfig\n    domain: d.example.org\n"
)
WITH_BETA_TOFU = edited(
    REGISTRY.replace(
        "    domain: beta.example.org\n",
        "    domain: beta.example.org\n    tofu:\n      harbor:\n        builds_quota_gb: 900\n",
    )
)

# (id, changed files, base registry, head registry, overrides, staging, prod, removed, ignored)
CASES: list[
    tuple[str, list[str], Any, Any, Overrides, list[str], list[str], list[str], list[str]]
] = [
    ("one member's values", ["config/beta.yaml"], HEAD, HEAD, Overrides(), [], ["beta"], [], []),
    (
        "a member's encrypted values",
        ["secrets/config/alpha.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha"],
        [],
        [],
        [],
    ),
    (
        "a member's kubeconfig",
        ["secrets/beta-kubeconfig.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        [],
        ["beta"],
        [],
        [],
    ),
    ("a member's age key", ["secrets/gamma.key"], HEAD, HEAD, Overrides(), [], ["gamma"], [], []),
    (
        "longest member name wins",
        ["secrets/alpha-two-wireguard.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha-two"],
        [],
        [],
        [],
    ),
    (
        "common values",
        ["config/common.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "common secrets",
        ["secrets/config/common.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "the default chart",
        ["chart/templates/hub.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "a member's own chart",
        ["charts/special/values.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        [],
        ["gamma"],
        [],
        [],
    ),
    (
        "hubfleet code",
        ["hubfleet/deploy/member.py"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "pyproject",
        ["pyproject.toml"],
        HEAD,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "registry: one stage changed",
        ["config/federation.yaml"],
        HEAD,
        BETA_TO_STAGING,
        Overrides(),
        ["beta"],
        [],
        [],
        [],
    ),
    (
        "registry: comments, order, spelt-out default",
        ["config/federation.yaml"],
        HEAD,
        REORDERED,
        Overrides(),
        [],
        [],
        [],
        [],
    ),
    (
        "registry: member added",
        ["config/federation.yaml", "config/delta.yaml"],
        HEAD,
        WITH_DELTA,
        Overrides(),
        [],
        ["delta"],
        [],
        [],
    ),
    (
        "registry: member removed",
        ["config/federation.yaml", "config/gamma.yaml", "secrets/gamma-kubeconfig.yaml"],
        HEAD,
        WITHOUT_GAMMA,
        Overrides(),
        [],
        [],
        ["gamma"],
        [],
    ),
    (
        "docs, tests, workflows only",
        [
            "README.md",
            "docs/ops.md",
            "tests/test_x.py",
            ".github/workflows/deploy.yaml",
            "bench/ci_plan.py",
        ],
        HEAD,
        HEAD,
        Overrides(),
        [],
        [],
        [],
        [],
    ),
    (
        "infrastructure only: stacks, tofu credentials, a record's tofu block",
        [
            "terraform/gke/main.tf",
            "terraform/modules/s3-bucket-policy/main.tf",
            "secrets/tofu.yaml",
            "secrets/beta-tofu.yaml",
            "config/federation.yaml",
        ],
        HEAD,
        WITH_BETA_TOFU,
        Overrides(),
        [],
        [],
        [],
        [],
    ),
    (
        "unknown paths are ignored, listed",
        ["scripts/tool.sh", "config/nobody.yaml"],
        HEAD,
        HEAD,
        Overrides(),
        [],
        [],
        [],
        ["config/nobody.yaml", "scripts/tool.sh"],
    ),
    (
        "mixed",
        [
            "config/alpha.yaml",
            "README.md",
            "charts/special/Chart.yaml",
            "config/federation.yaml",
            "scripts/x",
        ],
        HEAD,
        BETA_TO_STAGING,
        Overrides(),
        ["alpha", "beta"],
        ["gamma"],
        [],
        ["scripts/x"],
    ),
    (
        "override: all",
        ["README.md"],
        HEAD,
        HEAD,
        Overrides(all=True),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
    (
        "override: none",
        ["config/common.yaml"],
        HEAD,
        WITHOUT_GAMMA,
        Overrides(none=True),
        [],
        [],
        ["gamma"],
        [],
    ),
    (
        "override: named",
        ["config/common.yaml"],
        HEAD,
        HEAD,
        Overrides(members=("gamma", "alpha")),
        ["alpha"],
        ["gamma"],
        [],
        [],
    ),
    (
        "no base registry: all added",
        ["config/federation.yaml"],
        None,
        HEAD,
        Overrides(),
        ["alpha", "alpha-two"],
        ["beta", "gamma"],
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("files", "base", "head", "overrides", "staging", "prod", "removed", "ignored"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_change_cases(
    files: list[str],
    base: Any,
    head: Any,
    overrides: Overrides,
    staging: list[str],
    prod: list[str],
    removed: list[str],
    ignored: list[str],
) -> None:
    result = plan(files, base, head, overrides)
    assert [d.member for d in result.stage("staging")] == staging
    assert [d.member for d in result.stage("prod")] == prod
    assert list(result.removed) == removed
    assert list(result.ignored) == ignored
    assert all(d.reasons for d in result.deploy)


def test_reasons_name_the_files_and_registry_keys() -> None:
    result = plan(
        ["config/alpha.yaml", "hubfleet/a.py", "hubfleet/b.py", "config/federation.yaml"],
        HEAD,
        BETA_TO_STAGING,
    )
    by_name = {d.member: d.reasons for d in result.deploy}
    assert by_name["alpha"] == ("hubfleet/a.py, hubfleet/b.py", "config/alpha.yaml")
    assert by_name["beta"][-1] == "config/federation.yaml: stage changed"
    many = plan([f"hubfleet/m{i}.py" for i in range(9)], HEAD, HEAD)
    assert many.deploy[0].reasons == ("hubfleet/ (9 files)",)


def test_the_matrix_is_for_github_actions() -> None:
    doc = json.loads(json.dumps(plan(["config/beta.yaml"], HEAD, WITHOUT_GAMMA).matrix()))
    assert doc == {
        "staging": {"include": []},
        "prod": {"include": [{"member": "beta", "stage": "prod", "reason": "config/beta.yaml"}]},
        "any_staging": False,
        "any_prod": True,
        "members": ["beta"],
        "removed": ["gamma"],
        "ignored": [],
        "override": None,
    }


def test_the_table_is_markdown() -> None:
    table = plan(["config/alpha.yaml", "odd/file"], HEAD, WITHOUT_GAMMA).table()
    assert "| staging | alpha | config/alpha.yaml |" in table
    assert "**Removed** (not deployed): gamma" in table
    assert "`odd/file`" in table
    assert "Nothing to deploy." in plan(["README.md"], HEAD, HEAD).table()


def test_an_unknown_named_member_suggests_close_names() -> None:
    with pytest.raises(UnknownMemberError, match="did you mean beta"):
        plan([], HEAD, HEAD, Overrides(members=("btea",)))
    with pytest.raises(UnknownMemberError, match="members: alpha, alpha-two, beta, gamma"):
        plan([], HEAD, HEAD, Overrides(members=("zzzzzz",)))
    with pytest.raises(UnknownMemberError, match="removed by this change"):
        plan([], HEAD, WITHOUT_GAMMA, Overrides(members=("gamma",)))


def test_overrides_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="--all and --none"):
        Overrides(all=True, none=True)


# --- git ---------------------------------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deploy repo with two commits: the second edits beta's stage and alpha's values."""
    root = tmp_path / "repo"
    (root / "config").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.org")
    git(root, "config", "user.name", "t")
    git(root, "config", "commit.gpgsign", "false")
    (root / "config" / "federation.yaml").write_text(REGISTRY)
    (root / "config" / "alpha.yaml").write_text("a: 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    git(root, "tag", "one")
    changed = REGISTRY.replace(
        "stage: prod\n    provider: kubeconfig\n    domain: beta",
        "stage: staging\n    provider: kubeconfig\n    domain: beta",
    )
    (root / "config" / "federation.yaml").write_text(changed)
    (root / "config" / "alpha.yaml").write_text("a: 2\n")
    (root / "README.md").write_text("hi\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "two")
    monkeypatch.delenv("HUBFLEET_ROOT", raising=False)
    monkeypatch.chdir(root)
    return root


def test_git_lists_changed_files_and_reads_old_versions(git_repo: Path) -> None:
    assert changed_files(git_repo, "one", "HEAD") == [
        "README.md",
        "config/alpha.yaml",
        "config/federation.yaml",
    ]
    assert file_at(git_repo, "one", "config/federation.yaml") == REGISTRY
    assert file_at(git_repo, "one", "README.md") is None


def test_git_unknown_ref_is_one_clear_line(git_repo: Path) -> None:
    with pytest.raises(GitError, match="unknown git ref 'nope'") as err:
        changed_files(git_repo, "nope", "HEAD")
    assert "\n" not in str(err.value)
    with pytest.raises(GitError, match="is not a git ref"):
        file_at(git_repo, "--output=x", "config/federation.yaml")


def test_task_json_between_refs(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ci.plan(Context(), base="one", head="HEAD", format_="json")
    doc = json.loads(capsys.readouterr().out)
    assert [e["member"] for e in doc["staging"]["include"]] == ["alpha", "beta"]
    assert doc["any_prod"] is False
    beta = doc["staging"]["include"][1]
    assert beta["reason"] == "config/federation.yaml: stage changed"


def test_task_table_with_changed_files(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ci.plan(Context(), changed=["config/common.yaml"], format_="table")
    out = capsys.readouterr().out
    assert out.startswith("### ci.plan: 4 member(s) to deploy (3 staging, 1 prod)")
    assert "| prod | gamma | config/common.yaml |" in out


def test_task_errors_are_one_line(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        ci.plan(Context(), member=["gamm"])
    assert capsys.readouterr().err == (
        "error: unknown member 'gamm' in config/federation.yaml; did you mean gamma?\n"
    )
    with pytest.raises(Exit):
        ci.plan(Context())
    assert "needs --base REF" in capsys.readouterr().err


def test_task_notes_a_registry_change_without_base(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci.plan(Context(), changed=["config/federation.yaml"])
    out = capsys.readouterr().out
    assert "Nothing to deploy." in out
    assert "no --base was given" in out


def test_a_rotation_change_deploys_the_redirector_and_a_drained_member_is_left_out() -> None:
    def registry(ovh: dict[str, Any]) -> dict[str, Any]:
        return {
            "federation": {"domain": "fleet.example.org", "redirector": "gke"},
            "members": {
                "gke": {
                    "stage": "prod",
                    "provider": "kubeconfig",
                    "domain": "gke.example.org",
                    "federation": {"weight": 60, "prime": True},
                },
                "ovh": {
                    "stage": "prod",
                    "provider": "kubeconfig",
                    "domain": "ovh.example.org",
                    "federation": ovh,
                },
            },
        }

    base = registry({"weight": 40})
    drained = registry({"weight": 0, "quota": 0, "drained": {"weight": 40}})
    result = plan(["config/federation.yaml"], base, drained)
    assert [d.member for d in result.deploy] == ["gke"]
    (gke,) = result.deploy
    assert "config/federation.yaml: the rotation changed (the redirector)" in gke.reasons
    assert result.notes == (
        "member ovh is drained (config/federation.yaml): not deployed until "
        "invoke federation.readmit ovh",
    )
    # a change of its own files is not deployed either while drained, unless named
    assert plan(["config/ovh.yaml"], drained, drained).deploy == ()
    named = plan(["config/ovh.yaml"], drained, drained, Overrides(members=("ovh",)))
    assert [d.member for d in named.deploy] == ["ovh"]
    # readmitted: both, and the redirector's reason again
    back = plan(["config/federation.yaml"], drained, base)
    assert [d.member for d in back.deploy] == ["gke", "ovh"]
