"""The house's import graph: no loops, and data flows one way (training -> probes -> analysis).

Every import statement of the three packages is read from the source (module level and inside
functions, `.py` files and the `__init__.pyi` stubs that lazy_loader reads), so a loop hidden in a
function body or a lazy export fails here as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("training", "probes", "analysis")
FLOOR = {"training": 0, "probes": 1, "analysis": 2}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py*")):
            if path.suffix in (".py", ".pyi") and "__pycache__" not in path.parts:
                found.setdefault(_module_name(path), path)
                if path.suffix == ".pyi":  # the stub's edges belong to the package
                    found[_module_name(path) + " (stub)"] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `path` imports, anywhere in the file."""
    package = name.removesuffix(" (stub)")
    if path.name not in ("__init__.py", "__init__.pyi"):
        package = package.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in names:
            # the longest known module that the name starts with (a name may be a function)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != package:
                targets.add(target)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = {name for name in modules if not name.endswith(" (stub)")}
    graph = {}
    for name, path in modules.items():
        node = name.removesuffix(" (stub)")
        graph.setdefault(node, set()).update(_imports(name, path, known) - {node})
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
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


def _is_package_init(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").is_file()


def test_the_graph_reads_the_imports():
    graph = _graph()
    assert "training.run.directory" in graph["probes.models"]
    assert "probes.abx_probe" in graph["probes"]  # the stub's arrows are edges too
    assert len(graph) > 60


def test_no_import_loops():
    # A package's __init__ only names its modules (lazily); importing a submodule runs it but none
    # of the stub's imports, so edges into a package's own __init__ are not followed.
    graph = {
        node: {t for t in targets if not (_is_package_init(t) and node.startswith(t + "."))}
        for node, targets in _graph().items()
    }
    assert _cycles(graph) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layout(package):
    against = sorted(
        f"{node} -> {target}"
        for node, targets in _graph().items()
        if node.split(".")[0] == package
        for target in targets
        if FLOOR[target.split(".")[0]] > FLOOR[package]
    )
    assert against == [], "imports against corpus -> training -> probes -> analysis"
