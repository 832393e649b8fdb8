"""The fronts as operators run them: `invoke ...` and `python deploy.py ...` in a subprocess.

Checks exit codes, one-line errors (tracebacks only with --debug), that both deploy fronts
say the same thing, and that no secret value reaches any output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubfleet.files.repo import DeployRepo
from hubfleet.secrets import sops
from tests.conftest_repo import MakeRepo, age_key

PROJECT = Path(__file__).resolve().parent.parent
DEMO_KEY = PROJECT / "secrets" / "demo-insecure.agekey"
BIN = str(Path(sys.executable).parent)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "HUBFLEET_", "KUBECONFIG", "CI"))
    }
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def invoke(
    args: list[str], env: dict[str, str], cwd: Path = PROJECT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path, SOPS_AGE_KEY_FILE=str(DEMO_KEY))


@pytest.fixture(scope="module")
def demo_secrets() -> list[str]:
    """Every secret value of the demo member, decrypted in memory, to look for in outputs."""
    repo = DeployRepo(PROJECT)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(DEMO_KEY)}
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and len(node) >= 8:
            found.append(node)

    walk(sops.decrypt_yaml(repo, repo.member_secret_values("demo"), env))
    kubeconfig = sops.decrypt_yaml(repo, repo.member_kubeconfig("demo"), env)
    walk([u["user"] for u in kubeconfig["users"]])  # tokens, keys (the server is no secret)
    walk([c["cluster"].get("certificate-authority-data") for c in kubeconfig["clusters"]])
    assert len(found) >= 5
    return found


def assert_clean(text: str, secrets: list[str]) -> None:
    leaked = [s[:6] + "..." for s in secrets if s in text]
    assert not leaked, f"secret values in output: {leaked}"


def test_dry_run_is_the_same_from_invoke_and_deploy_py(
    demo_env: dict[str, str], demo_secrets: list[str]
) -> None:
    by_invoke = invoke(["deploy", "demo", "--dry-run"], demo_env)
    by_script = subprocess.run(
        [sys.executable, "deploy.py", "demo", "--dry-run"],
        cwd=PROJECT,
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_invoke.returncode == 0, by_invoke.stderr
    assert by_script.returncode == 0, by_script.stderr
    assert by_invoke.stdout == by_script.stdout
    assert "member demo (staging, provider kubeconfig)" in by_invoke.stdout
    assert "demo: dry run, nothing was changed" in by_invoke.stdout
    assert_clean(by_invoke.stdout + by_invoke.stderr, demo_secrets)


def test_values_with_origins_masks_every_secret(
    demo_env: dict[str, str], demo_secrets: list[str]
) -> None:
    done = invoke(["values", "demo", "--show-origin"], demo_env)
    assert done.returncode == 0, done.stderr
    assert "cookieSecret: '********'  # secrets/config/demo.yaml" in done.stdout
    assert "replicas: 1  # config/demo.yaml" in done.stdout
    assert "member: demo  # config/federation.yaml" in done.stdout
    assert_clean(done.stdout + done.stderr, demo_secrets)
    plain = invoke(["values", "demo"], demo_env)
    assert yaml.safe_load(plain.stdout)["hub"]["cookieSecret"] == "********"


def test_validate_the_bundled_repo(demo_env: dict[str, str]) -> None:
    done = invoke(["validate"], demo_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: registry and values of 1 member(s) are valid"


def test_no_identity_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    done = invoke(["deploy", "demo", "--dry-run"], clean_env(tmp_path))
    assert done.returncode == 1
    assert done.stderr == (
        "error: cannot decrypt secrets/config/demo.yaml: no age identity; "
        "set SOPS_AGE_KEY_FILE to your key file\n"
    )
    assert done.stdout == ""


def test_unknown_member_suggests_and_debug_shows_the_traceback(demo_env: dict[str, str]) -> None:
    done = invoke(["deploy", "dmeo", "--dry-run"], demo_env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: unknown member 'dmeo' in config/federation.yaml; did you mean demo?"
    ]
    debug = invoke(["deploy", "dmeo", "--dry-run", "--debug"], demo_env)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().endswith("did you mean demo?")


def test_deploy_to_an_unreachable_cluster_fails_in_one_line(
    demo_env: dict[str, str], demo_secrets: list[str]
) -> None:
    done = invoke(["deploy", "demo", "--yes", "--timeout", "5"], demo_env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: member demo: cannot reach cluster at https://127.0.0.1:6443")
    assert_clean(done.stdout + done.stderr, demo_secrets)


def test_help_explains_every_flag(demo_env: dict[str, str]) -> None:
    done = invoke(["--help", "deploy"], demo_env)
    assert done.returncode == 0
    for flag in ("--dry-run", "--diff", "--yes", "--timeout", "--force", "--debug"):
        assert flag in done.stdout
    listed = invoke(["--list"], demo_env)
    for name in ("deploy", "values", "validate", "secrets.check", "secrets.generate"):
        assert name in listed.stdout


def test_the_hubfleet_program_runs_tasks_in_any_deploy_repo(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    env = clean_env(tmp_path, SOPS_AGE_KEY_FILE=os.environ["SOPS_AGE_KEY_FILE"])
    done = subprocess.run(
        [str(Path(BIN) / "hubfleet"), "validate"],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 member(s) are valid" in done.stdout


# --- bad input, each one line and exit 1, nothing written ---------------------------------


def run_in(repo: DeployRepo, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        tmp_path, SOPS_AGE_KEY_FILE=os.environ["SOPS_AGE_KEY_FILE"], HUBFLEET_ROOT=str(repo.root)
    )
    return invoke(args, env)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_validate_reports_every_problem_of_every_member(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo(
        {
            "alpha": {"domain": "alpha.example.org"},
            "beta": {"domain": "beta.example.org"},
            "gamma": {"domain": "gamma.example.org"},
        },
        values={"gamma": {"hub": {"replicas": "many"}}},
    )
    registry = repo.registry.read_text().replace(
        "    domain: beta.example.org\n", "    domain: beta.example.org\n    colour: blue\n"
    )
    repo.registry.write_text(registry)
    done = run_in(repo, ["validate"], tmp_path)
    assert done.returncode == 1
    problems = done.stderr.strip().splitlines()
    assert problems[0].startswith(
        "config/federation.yaml:10: member beta: key 'colour': unknown key"
    )
    assert problems[1] == (
        "member gamma: chart charts/demo/: values fail values.schema.json: "
        "hub.replicas: got string, want integer (config/gamma.yaml:2)"
    )
    assert problems[-1] == "error: 2 problem(s) found"


def test_plaintext_under_secrets_stops_before_decrypting(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    (repo.root / "secrets" / "config" / "common.yaml").write_text("hub:\n  cookieSecret: oops\n")
    line = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert line == (
        "error: secrets/config/common.yaml is not sops-encrypted (plaintext under secrets/); "
        "encrypt it with: invoke secrets.encrypt secrets/config/common.yaml"
    )


def test_a_cut_off_or_empty_secrets_file_is_not_called_plaintext(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    path = repo.member_secret_values("alpha")
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])  # cut off, as a failed copy leaves it
    line = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert line == (
        "error: secrets/config/alpha.yaml is cut off or damaged (sops' markers without its "
        "MAC): not a sops file it can decrypt, and not plaintext to encrypt; restore it from "
        "git (git checkout -- secrets/config/alpha.yaml) or write it again"
    )
    path.write_text("")
    line = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert line.startswith("error: secrets/config/alpha.yaml is empty: not a sops file")


def test_malformed_values_file_names_file_and_line(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    (repo.root / "config" / "alpha.yaml").write_text("hub:\n  replicas: 1\n  image: [unclosed\n")
    line = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert line.startswith("error: config/alpha.yaml:3: malformed YAML")


def test_a_render_error_names_the_template_line(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    template = repo.root / "charts" / "demo" / "templates" / "configmap.yaml"
    template.write_text(
        template.read_text() + "  broken: {{ .Values.demo.greeting | nosuchfunc }}\n"
    )
    line = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    # the chart is named as given (here absolute: the test runs from outside the repo)
    assert line.startswith(
        f"error: chart {repo.root}/charts/demo: template demo/templates/configmap.yaml:9:"
    )
    assert "nosuchfunc" in line


def test_the_umbrella_chart_names_the_repository_it_needs(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    import shutil

    repo = deploy_repo({"alpha": {"domain": "alpha.example.org", "chart": "chart"}})
    shutil.copytree(PROJECT / "chart", repo.root / "chart", ignore=shutil.ignore_patterns("charts"))
    env_cache = {"HUBFLEET_CHART_CACHE": str(tmp_path / "empty-cache")}
    env = clean_env(
        tmp_path,
        SOPS_AGE_KEY_FILE=os.environ["SOPS_AGE_KEY_FILE"],
        HUBFLEET_ROOT=str(repo.root),
        **env_cache,
    )
    line = one_error_line(invoke(["deploy", "alpha", "--dry-run"], env))
    assert "dependency binderhub" in line
    assert "https://jupyterhub.github.io/helm-chart/" in line


def test_no_secret_value_in_any_tracked_file_outside_secrets(demo_secrets: list[str]) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not tracked:  # not a git checkout: look at the tree instead
        tracked = [
            str(p.relative_to(PROJECT))
            for p in PROJECT.rglob("*")
            if p.is_file() and ".venv" not in p.parts
        ]
    for name in tracked:
        if name.startswith("secrets/"):
            continue
        path = PROJECT / name
        if path.is_file():
            assert_clean(path.read_text(errors="replace"), demo_secrets)


def test_validate_finds_what_a_dry_run_finds_with_each_members_values(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = deploy_repo({"alpha": {"domain": "alpha.example.org"}})
    template = repo.root / "charts" / "demo" / "templates" / "bad.yaml"
    template.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [oops\n"
    )
    done = run_in(repo, ["validate"], tmp_path)
    assert done.returncode == 1
    problems = done.stderr.strip().splitlines()
    deploy = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert deploy.startswith("error: demo/templates/bad.yaml:6: rendered to invalid YAML")
    # validate renders as the deploy does, so it says the same, for the member
    assert problems[0] == deploy.replace("error: ", "member alpha: ", 1)
    assert problems[-1] == "error: 1 problem(s) found"


def test_validate_names_the_member_it_cannot_decrypt_and_checks_the_rest(
    deploy_repo: MakeRepo, tmp_path: Path, operator_key: tuple[Path, str]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, stranger = age_key(other)
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}, "beta": {"domain": "beta.example.org"}}
    )
    # beta's secrets go to someone else's key only: this operator cannot open them
    sops_yaml = repo.root / ".sops.yaml"
    sops_yaml.write_text(
        yaml.safe_dump(
            {
                "creation_rules": [
                    {"path_regex": "(^|/)secrets/config/beta\\.yaml$", "age": stranger},
                    {"path_regex": "(^|/)secrets/", "age": operator_key[1]},
                ]
            }
        )
    )
    sops.write_encrypted(repo, repo.member_secret_values("beta"), "hub:\n  proxyToken: x\n")
    sops.write_encrypted(repo, repo.common_secret_values(), "demo:\n  adminPassword: shared\n")
    done = run_in(repo, ["validate"], tmp_path)
    assert done.returncode == 1
    beta, last = done.stderr.strip().splitlines()
    assert beta.startswith(
        "member beta: cannot decrypt secrets/config/beta.yaml: the age identity in "
        f"SOPS_AGE_KEY_FILE={os.environ['SOPS_AGE_KEY_FILE']} is not one of its recipients; "
    )
    assert last == "error: 1 problem(s) found"


def test_member_status_fails_when_a_member_cannot_be_reached(demo_env: dict[str, str]) -> None:
    done = invoke(["member.status"], demo_env)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].split() == [
        "demo",
        "staging",
        "kubeconfig",
        "down",
        "-",
        "-",
        "token",
        "done",
    ]
    assert done.stderr.startswith("error: member demo: cannot reach cluster at https://127.0.0.1")
    assert len(done.stderr.splitlines()) == 1
    as_json = invoke(["member.status", "--json"], demo_env)
    assert as_json.returncode == 1
    (row,) = json.loads(as_json.stdout)
    assert row["member"] == "demo" and row["reachable"] is False


def test_a_secret_failing_a_schema_pattern_is_never_printed(
    deploy_repo: MakeRepo, tmp_path: Path
) -> None:
    secret = "NOT-HEX-but-secret-0123456789"
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}},
        secrets={"alpha": {"hub": {"cookieSecret": secret, "proxyToken": "p" * 32}}},
    )
    expected = (
        "member alpha: chart charts/demo/: values fail values.schema.json: hub.cookieSecret: "
    )
    validate = run_in(repo, ["validate"], tmp_path)
    assert validate.returncode == 1
    assert validate.stderr.splitlines()[0].startswith(expected)
    assert "(the value from secrets/config/alpha.yaml:" in validate.stderr
    for argv in (
        ["validate"],
        ["deploy", "alpha", "--dry-run"],
        ["deploy", "alpha", "-n", "--debug"],
    ):
        done = run_in(repo, argv, tmp_path)
        assert done.returncode == 1
        assert secret not in done.stdout + done.stderr, argv
    dry_run = one_error_line(run_in(repo, ["deploy", "alpha", "--dry-run"], tmp_path))
    assert dry_run == "error: " + validate.stderr.splitlines()[0].removeprefix("member alpha: ")


def test_validate_lints_each_chart_once(deploy_repo: MakeRepo, tmp_path: Path) -> None:
    repo = deploy_repo(
        {"alpha": {"domain": "alpha.example.org"}, "beta": {"domain": "beta.example.org"}}
    )
    chart_yaml = repo.root / "charts" / "demo" / "Chart.yaml"
    text = re.sub(r"(?m)^icon: .*$", "icon: not a url", chart_yaml.read_text())
    chart_yaml.write_text(text)
    done = run_in(repo, ["validate"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "chart charts/demo: lint Chart.yaml: invalid icon URL 'not a url' "
        "(with the values of member alpha)",
        "error: 1 problem(s) found",
    ]
