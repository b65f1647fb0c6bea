"""No import cycles among the modules of services/.

What counts: every import statement of a module, at module level or inside a function (read with
the AST), except those under ``if TYPE_CHECKING:``. A function-level import hides a cycle from
Python's loader but not from a reader: the two modules still need each other, so either cannot be
understood, moved or tested alone. ``from services.x import name`` counts as an import of
``services.x.name`` when that is a module, else of ``services.x``; a package's ``__init__`` is a
module like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "services"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    found = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` it imports at module level (``sources``: name -> text,
    names as for ``import``; ``x.__init__`` is ``x``)."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, text in sources.items():
        is_package = any(other.startswith(name + ".") for other in sources)
        for node in _imports(ast.parse(text)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.append(child if child in sources else base)
            for target in targets:
                while target and target not in sources:  # "services.a.b" imports "services.a" too, at least
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def services_sources() -> dict[str, str]:
    return {module_name(path, ROOT): path.read_text(encoding="utf-8")
            for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def test_services_have_no_import_cycles():
    found = cycles(import_graph(services_sources()))
    assert found == [], "import cycles in services/: " + "; ".join(" <-> ".join(g) for g in found)


def test_the_detector_finds_cycles_through_a_package_and_through_function_level_imports():
    sources = {
        "services": "",
        "services.a": "from services.b import thing\n",
        "services.b": "import services.c\nthing = 1\n",
        "services.c": "from services import a\n",
        "services.d": "import services.f\n",
        "services.e": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from services import a\n",
        "services.f": "def later():\n    from services import d\n",
    }
    assert cycles(import_graph(sources)) == [["services.a", "services.b", "services.c"], ["services.d", "services.f"]]
    assert import_graph(sources)["services.e"] == set()
