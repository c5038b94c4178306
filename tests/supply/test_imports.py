"""The supply package has no import circle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_aisp.supply

PACKAGE = Path(pytest_aisp.supply.__file__).parent
PREFIX = "pytest_aisp.supply."


def _imports(path: Path) -> set[str]:
    """The supply modules that ``path`` imports anywhere (module level or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            found.add(node.module.removeprefix(PREFIX).split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix(PREFIX).split(".")[0] for a in node.names if a.name.startswith(PREFIX)
            )
    return found


def test_no_import_circle_between_supply_modules() -> None:
    graph = {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    circles = []

    def visit(module: str, path: tuple[str, ...]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                circles.append(" -> ".join((*path[path.index(target) :], target)))
            else:
                visit(target, (*path, target))

    for module in sorted(graph):
        visit(module, (module,))
    assert circles == []
