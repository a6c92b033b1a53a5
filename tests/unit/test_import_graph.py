"""The package's imports flow one way: no cycles, nothing imported from a higher layer.

The graph is read from the code's own ``import`` statements (ast), at module level and inside
functions alike (a lazy import is still a dependency), ``if TYPE_CHECKING:`` blocks included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import unlearn_bench

PACKAGE_DIR = Path(unlearn_bench.__file__).parent

#: Layers from the command line down to the pure pieces; a module may import its own layer's
#: units or lower ones, never a higher one. Keys are top-level modules or folders.
LAYERS: list[tuple[str, ...]] = [
    ("__main__", "cli"),
    ("protocols", "viewer", "probes"),
    ("runner",),
    ("references",),
    ("train", "evaluate", "scoring", "leaderboard", "utility"),
    ("judges",),
    ("methods", "metrics", "backends", "data", "prompts"),
    ("tasks", "config", "runs", "models"),
    ("registry", "paths", "yaml_strict", "errors", "numerics", "__init__"),
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import sub`` counts ``pkg.sub``)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, is_package):
                    resolved = resolve(target) if target.startswith("unlearn_bench") else None
                    if resolved and resolved != module:
                        edges.add(resolved)
        graph[module] = edges
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer than the importer's."""
    return sorted(
        f"{src} -> {dst}"
        for src, targets in graph.items()
        for dst in targets
        if RANK[_unit(dst)] < RANK[_unit(src)]
    )


def test_every_top_level_module_has_a_layer() -> None:
    units = {_unit(m) for m in import_graph()}
    assert sorted(units - set(RANK)) == [], "add new top-level modules/folders to LAYERS"


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_upward_imports() -> None:
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    # The checkers themselves, on hand-made graphs (so a broken checker cannot pass silently).
    graph = {"unlearn_bench.tasks": {"unlearn_bench.evaluate"}, "unlearn_bench.evaluate": set()}
    assert upward_imports(graph) == ["unlearn_bench.tasks -> unlearn_bench.evaluate"]
    graph["unlearn_bench.evaluate"] = {"unlearn_bench.tasks"}
    assert find_cycle(graph) == [
        "unlearn_bench.evaluate",
        "unlearn_bench.tasks",
        "unlearn_bench.evaluate",
    ]


def test_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    # tasks imports no metrics or judges, not even lazily; evaluate imports judges lazily.
    assert not {m for m in graph["unlearn_bench.tasks"] if _unit(m) in ("metrics", "judges")}
    assert "unlearn_bench.judges" in graph["unlearn_bench.evaluate"]
    node = ast.parse("from . import base\nfrom .x import y").body
    assert _targets(node[0], "unlearn_bench.methods", True)[1] == "unlearn_bench.methods.base"  # type: ignore[arg-type]
    assert _targets(node[1], "unlearn_bench.methods.npo", False)[0] == "unlearn_bench.methods.x"  # type: ignore[arg-type]


def _trees() -> dict[str, ast.Module]:
    return {m: ast.parse(p.read_text(), str(p)) for m, p in _modules().items()}


def test_no_private_name_is_imported_from_another_module() -> None:
    imported = sorted(
        f"{module}: {node.module}.{alias.name}"
        for module, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unlearn_bench")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    )
    assert imported == []


def test_no_conditional_expression_is_used_as_a_statement() -> None:
    # ``f() if c else None`` as a statement hides a branch; write an ``if``.
    found = sorted(
        f"{module}:{node.lineno}"
        for module, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.IfExp | ast.BoolOp)
    )
    assert found == []
