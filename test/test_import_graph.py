"""Imports point one way: no cycle between the package's files or between its subpackages, counting
every import (those inside functions too)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "amodal_depth_ros"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        found = {alias.name for alias in node.names}
    else:
        base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for _ in range(max(node.level - 1, 0)):
            base = base.rsplit(".", 1)[0]
        module = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
        # "from . import x" depends on the module x, not on the package's face; other names on the face itself.
        found = {f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module for alias in node.names}
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set().union(*[_imported(name, path, node, modules) for node in ast.walk(ast.parse(path.read_text()))
                                if isinstance(node, (ast.Import, ast.ImportFrom))])
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _layer(name: str) -> str:
    """The subpackage a module belongs to (a top-level module is a layer of its own)."""
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_files():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_subpackages():
    layers: dict[str, set[str]] = {}
    for name, imported in import_graph().items():
        layers.setdefault(_layer(name), set()).update(_layer(m) for m in imported if _layer(m) != _layer(name))
    assert cycles(layers) == []


def test_the_checker_sees_lazy_imports():
    graph = import_graph()
    # The pipeline imports the learned stages inside functions only: still an edge.
    assert "amodal_depth_ros.learned.amodal" in graph["amodal_depth_ros.pipeline"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The layers, lowest first, as the package docstring names them: a module imports only its own layer or lower ones.
LAYERS = ["amodal_depth_ros", "errors", "_lazy", "resources", "core", "networks", "runtime", "learned", "pipeline",
          "groundtruth", "visualize", "mapping", "synthetic", "ros", "datasets", "evaluation", "training", "tools"]


def test_imports_point_down_the_layers():
    rank = {f"amodal_depth_ros.{layer}" if layer != "amodal_depth_ros" else layer: i for i, layer in enumerate(LAYERS)}
    upward = sorted((name, other) for name, imported in import_graph().items() for other in imported
                    if rank[_layer(other)] > rank[_layer(name)])
    assert upward == []
    assert set(rank) == {_layer(name) for name in import_graph()}, "a new layer: place it in LAYERS"
