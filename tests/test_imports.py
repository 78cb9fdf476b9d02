"""The package's one-way structure, checked on its import statements.

Data flows config -> line (sim, devices, production models) -> telemetry -> server, recorder,
analytics; nothing downstream reaches back upstream. The rules below are those of the
`__init__` docstrings (and README's layout section).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "twin"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(imports run when the module is imported, all imports but TYPE_CHECKING ones),
    as twin module names."""
    tree = ast.parse(MODULES[module].read_text())
    top: set[str] = set()
    every: set[str] = set()

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.split(".")[0] == "twin"]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "twin":
                return []
            out = [node.module]
            # `from twin.protocol import messages` imports a module, not a name
            out += [
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            ]
            return out
        return []

    def visit(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # for the type checker only: never imported at run time
            found = targets(child)
            every.update(found)
            if at_top:
                top.update(found)
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, at_top and not nested)

    visit(tree, True)
    return top, every


IMPORTS = {m: _imports(m) for m in MODULES}


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# package -> the twin packages and modules it may import (besides its own)
LOWER_LAYERS = {
    "twin.sim": ("twin.config",),
    "twin.protocol": (),
    "twin.events": (),
    "twin.geometry": ("twin.config",),
    "twin.routes": ("twin.config",),
    "twin.factory.checks": ("twin.config",),
    "twin.production": ("twin.config",),
    "twin.parts": ("twin.config", "twin.sim"),
    "twin.devices": (
        "twin.config",
        "twin.sim",
        "twin.parts",
        "twin.events",
        "twin.geometry",
        "twin.routes",
        "twin.production",
    ),
    "twin.analytics": ("twin.events",),
}


def test_no_import_cycles() -> None:
    graph = {m: {t for t in top if t in MODULES and t != m} for m, (top, _) in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return [*path[path.index(t) :], t]
            if t not in state:
                cycle = visit(t)
                if cycle:
                    return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("package", sorted(LOWER_LAYERS))
def test_lower_layers_import_nothing_above_them(package: str) -> None:
    allowed = (package, *LOWER_LAYERS[package])
    wrong = sorted(
        f"{m} imports {t}"
        for m, (_, every) in IMPORTS.items()
        if _within(m, package)
        for t in every
        if not _within(t, *allowed)
    )
    assert wrong == []


def test_server_and_recorder_do_not_reach_into_each_other() -> None:
    wrong = []
    for m, (_, every) in IMPORTS.items():
        for t in every:
            if _within(m, "twin.server") and _within(t, "twin.record"):
                wrong.append(f"{m} imports {t}")
            # the recorder uses the names twin/server/__init__.py exports, not its modules
            if _within(m, "twin.record") and _within(t, "twin.server") and t != "twin.server":
                wrong.append(f"{m} imports {t}")
    assert wrong == []


def test_the_client_needs_nothing_from_the_server() -> None:
    wrong = [t for t in IMPORTS["twin.client"][1] if _within(t, "twin.server")]
    assert wrong == []


def test_the_line_knows_no_controller_and_no_consumer() -> None:
    """The plant (line, devices) is composed with controllers and consumers elsewhere."""
    downstream = ("twin.control", "twin.automation", "twin.telemetry", "twin.analytics")
    downstream += ("twin.server", "twin.record", "twin.gym", "twin.client")
    wrong = [
        f"{m} imports {t}"
        for m, (_, every) in IMPORTS.items()
        if _within(m, "twin.line", "twin.devices")
        for t in every
        if _within(t, *downstream)
    ]
    assert wrong == []


def test_the_rules_see_the_whole_package() -> None:
    """A guard for the checker itself: it found the modules and their imports."""
    assert {"twin.line", "twin.devices.base", "twin.server.loop", "twin.client"} <= set(MODULES)
    assert "twin.config" in IMPORTS["twin.line"][0]
