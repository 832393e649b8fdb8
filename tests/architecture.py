"""The architecture of `hubfleet/`, read from its imports: which module imports which, and where
each outside library is imported. `tests/test_architecture.py` holds the rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import statement's target, in the module that makes it."""

    module: str  # the importing module, dotted
    target: str  # what it imports, dotted (a hubfleet module, or an outside top-level name)
    line: int
    inside_function: bool


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module under `package_dir`, by dotted name (`pkg/__init__.py` is `pkg`)."""
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _resolve(modules: Mapping[str, Path], base: str, names: list[str]) -> Iterator[str]:
    """`from base import a, b`: each name that is a module is imported itself, else `base`."""
    plain = False
    for name in names:
        if f"{base}.{name}" in modules:
            yield f"{base}.{name}"
        else:
            plain = True
    if plain:
        yield base


def imports_of(modules: Mapping[str, Path], package: str) -> list[Import]:
    """Every import in every module, nested ones included (they are imports all the same)."""
    found: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                if base == package or base.startswith(package + "."):
                    targets = list(_resolve(modules, base, [a.name for a in node.names]))
                else:
                    targets = [base]
            else:
                continue
            for target in targets:
                if not (target == package or target.startswith(package + ".")):
                    target = target.split(".")[0]
                found.append(Import(name, target, node.lineno, node.col_offset > 0))
    return found


def internal_graph(imports: list[Import], modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the hubfleet modules it imports (a package's empty `__init__` is left out)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        if imp.target in modules and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    return graph


def concern_of(module: str, package: str) -> str:
    """`hubfleet.k3s.steps` -> `k3s`; a top-level module is its own concern."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else package


def concern_graph(graph: Mapping[str, set[str]], package: str) -> dict[str, set[str]]:
    concerns: dict[str, set[str]] = {}
    for module, targets in graph.items():
        here = concern_of(module, package)
        concerns.setdefault(here, set())
        for target in targets:
            there = concern_of(target, package)
            if there != here:
                concerns[here].add(there)
    return concerns


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
