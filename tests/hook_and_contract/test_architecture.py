"""The package's imports point one way: no circle of modules (module- or function-level imports alike),
every import goes to the same layer or one below (docs/architecture.md), and only ``integration/`` imports
LLaMA-Factory."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = "llamafactory_safeeraser"
# top to bottom; a module may import from its own layer and the layers below it
LAYERS = (
    ("cli", "tasks"),
    ("hook", "demo", "relearn"),
    ("unlearn", "evaluation", "respond"),
    ("lmeval_task",),
    ("integration", "offline"),
    ("data",),
    ("errors", "fileio", "settings", "devices", "__init__"),
)


def module_names(root: Path, package: str) -> dict[str, Path]:
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, wherever in the file the import statement is."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {name for name in found if name in modules and name != module}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    for depth, names in enumerate(LAYERS):
        if part in names:
            return depth
    raise AssertionError(f"{module}: its folder is in no layer of LAYERS (add it, and to docs/architecture.md)")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO, PACKAGE)


def test_no_circle_of_imports(graph):
    assert len(graph) > 40 and sum(map(len, graph.values())) > 80  # the graph was read
    assert circles(graph) == []


def test_imports_point_down_the_layers(graph):
    upward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) < layer_of(module)
    ]
    assert upward == []


def test_only_the_integration_package_imports_llamafactory():
    outside = []
    for path in (REPO / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(name == "llamafactory" or name.startswith("llamafactory.") for name in names):
                outside.append(str(path.relative_to(REPO)))
    assert outside and all(path.startswith(f"{PACKAGE}/integration/") for path in outside), sorted(set(outside))


def test_the_checks_see_a_circle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text("def late():\n    from ..c import value\n")
    (package / "c.py").write_text("from pkg import a\nvalue = 1\n")
    (package / "d.py").write_text("from .c import value\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert circles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
