"""The architecture, as a test: no import cycles (between modules or between concerns), each
outside library or binary used in its one adapter, and no core module importing a front.

The rules are checked on hubfleet/ itself, and the checker on a small tree with one seeded
violation of each kind, so a checker that found nothing could not pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import (
    Import,
    concern_graph,
    concern_of,
    cycles,
    imports_of,
    internal_graph,
    module_names,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "hubfleet"

# Each outside library, and the modules that run a binary (through subprocess), belong to one
# adapter: a concern (`hosts`) or one module (`cloud.s3`). Anything else imports the adapter.
OWNERS: dict[str, tuple[str, ...]] = {
    "paramiko": ("hosts",),
    "fabric": ("hosts",),
    "kubernetes": ("kube",),
    "urllib3": ("kube",),
    "helm_python": ("helm.sdk", "helm.values_yaml"),
    "boto3": ("cloud.s3",),
    "botocore": ("cloud.s3",),
    "dns": ("cloud.dns",),
    "google": ("cloud.gke",),
    "requests": ("cloud.gke",),
    "hcl2": ("cloud.tofu",),
    "jsonschema": ("registry",),
    "invoke": ("tasks",),
    "rich": ("console",),
    # the binaries: sops, git, helm and tofu each run by their adapter only
    "subprocess": ("secrets.sops", "ci.git", "helm.cli", "helm.cli_output", "cloud.tofu_cli"),
}
FRONTS = ("tasks", "cli", "console")
# The concerns, lowest first: each may import only those before it (README's package map).
LAYERS = (
    "hubfleet",
    "errors",
    "files",
    "registry",
    "secrets",
    "kube",
    "helm",
    "values",
    "hosts",
    "cloud",
    "deploy",
    "k3s",
    "microk8s",
    "members",
    "adopt",
    "ci",
    "console",
    "cli",
    "tasks",
)


def owned_by(module: str, package: str, owners: tuple[str, ...]) -> bool:
    inside = module.removeprefix(package + ".")
    return any(inside == owner or inside.startswith(owner + ".") for owner in owners)


def leaks(imports: list[Import], package: str) -> list[str]:
    """Outside libraries imported outside their adapter, as `module:line imports lib`."""
    found = []
    for imp in imports:
        owners = OWNERS.get(imp.target)
        if owners and not owned_by(imp.module, package, owners):
            found.append(f"{imp.module}:{imp.line} imports {imp.target}")
    return found


def front_imports(imports: list[Import], package: str) -> list[str]:
    """Core modules that import a front (tasks, the argparse front)."""
    found = []
    for imp in imports:
        core = concern_of(imp.module, package) not in FRONTS
        if (
            core
            and imp.target.startswith(package + ".")
            and concern_of(imp.target, package) in FRONTS
        ):
            found.append(f"{imp.module}:{imp.line} imports {imp.target}")
    return found


def layer_breaks(graph: dict[str, set[str]], package: str) -> list[str]:
    """Imports of a concern that is not below the importer in LAYERS."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = []
    for module, targets in sorted(graph.items()):
        here = concern_of(module, package)
        for target in sorted(targets):
            there = concern_of(target, package)
            if here != there and rank.get(there, len(LAYERS)) >= rank.get(here, -1):
                found.append(f"{module} imports {target}")
    return found


def test_concerns_import_only_the_layers_below_them() -> None:
    modules = module_names(PACKAGE_DIR, "hubfleet")
    graph = internal_graph(imports_of(modules, "hubfleet"), modules)
    assert sorted({concern_of(m, "hubfleet") for m in modules}) == sorted(LAYERS)
    assert layer_breaks(graph, "hubfleet") == []
    # and the check itself sees a break: the registry reaching up into deploy
    broken = {**graph, "hubfleet.registry.members": {"hubfleet.deploy.member"}}
    assert layer_breaks(broken, "hubfleet") == [
        "hubfleet.registry.members imports hubfleet.deploy.member"
    ]


def check(package_dir: Path, package: str) -> dict[str, list[str]]:
    modules = module_names(package_dir, package)
    imports = imports_of(modules, package)
    graph = internal_graph(imports, modules)
    return {
        "module cycles": [" <-> ".join(c) for c in cycles(graph)],
        "concern cycles": [" <-> ".join(c) for c in cycles(concern_graph(graph, package))],
        "library leaks": leaks(imports, package),
        "fronts imported by the core": front_imports(imports, package),
    }


@pytest.mark.parametrize(
    "rule", ["module cycles", "concern cycles", "library leaks", "fronts imported by the core"]
)
def test_hubfleet_keeps_its_architecture(rule: str) -> None:
    assert check(PACKAGE_DIR, "hubfleet")[rule] == []


def test_every_concern_is_a_package_with_a_docstring() -> None:
    top = sorted(p.name for p in PACKAGE_DIR.iterdir() if p.is_dir() and p.name != "__pycache__")
    for name in top:
        if name == "schemas":
            continue
        init = PACKAGE_DIR / name / "__init__.py"
        assert init.is_file(), f"hubfleet/{name} is not a package"
        assert init.read_text(encoding="utf-8").startswith('"""'), f"hubfleet/{name}: no docstring"
    loose = sorted(p.stem for p in PACKAGE_DIR.glob("*.py"))
    assert loose == ["__init__", "cli", "console", "errors"]


def test_no_module_is_two_concerns() -> None:
    """~400 lines: past that a module probably holds two concerns (STYLE.md)."""
    long = {
        str(path.relative_to(PACKAGE_DIR)): n
        for path in PACKAGE_DIR.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 420
    }
    assert long == {}


def test_the_kube_adapter_keeps_off_the_clients_private_state() -> None:
    text = (PACKAGE_DIR / "kube" / "client.py").read_text(encoding="utf-8")
    assert "_temp_files" not in text
    assert "load_kube_config" not in text
    assert "_temp_files" not in (PACKAGE_DIR / "kube" / "configuration.py").read_text(
        encoding="utf-8"
    )


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    package_dir = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "cli.py": "",
            "tasks/__init__.py": "import invoke\n",
            "a/__init__.py": "",
            "a/one.py": "from pkg.b import two\n",
            "a/three.py": "def f() -> None:\n    pass\n",
            "b/__init__.py": "",
            # a cycle between concerns (a -> b -> a), made by an import inside a function
            "b/two.py": "def g():\n    from pkg.a import three\n",
            # a module cycle inside one concern
            "c/__init__.py": "",
            "c/x.py": "from pkg.c import y\n",
            "c/y.py": "from . import x\n",
            # outside libraries outside their adapters, one under TYPE_CHECKING
            "c/leak.py": (
                "from typing import TYPE_CHECKING\nimport boto3\n"
                "if TYPE_CHECKING:\n    import paramiko\n"
            ),
            "hosts/__init__.py": "",
            "hosts/ssh.py": "import paramiko\n",
            # the core importing a front
            "c/front.py": "from pkg.cli import main\n",
        },
    )
    found = check(package_dir, "pkg")
    assert found["module cycles"] == ["pkg.c.x <-> pkg.c.y"]
    assert found["concern cycles"] == ["a <-> b"]
    assert found["library leaks"] == [
        "pkg.c.leak:2 imports boto3",
        "pkg.c.leak:4 imports paramiko",
    ]
    assert found["fronts imported by the core"] == ["pkg.c.front:1 imports pkg.cli"]
