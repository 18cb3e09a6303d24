"""The layer rule: each unit of the package imports only the units below it.

The table below is the architecture (docs/architecture.md draws it); a new import that crosses it
upward fails here, so the layering cannot erode one convenient import at a time. Imports under
``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "streamfsm"

#: unit -> the units it may import (besides itself and third-party packages).
FOUNDATION = frozenset(
    {"errors", "markets", "config", "credentials", "logs", "models", "_validate", "handlers"}
)
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "markets": frozenset({"errors"}),
    "_validate": frozenset({"errors"}),
    "logs": frozenset({"errors"}),
    "config": frozenset({"errors", "_validate", "logs", "markets"}),
    "credentials": frozenset({"errors", "_validate", "logs"}),
    "models": frozenset({"errors"}),
    "handlers": frozenset({"errors"}),
    "_core": FOUNDATION,
    "_aio": FOUNDATION | {"_core", "_portal"},
    "_portal": FOUNDATION,
    "porting": FOUNDATION | {"_core", "_aio"},
    "controller": FOUNDATION | {"_core", "_aio", "_portal", "porting", "cluster"},
    "testing": FOUNDATION | {"_core", "_aio", "controller", "sim"},
    "__init__": FOUNDATION | {"_core", "controller", "cluster"},
    "__main__": frozenset({"cli"}),
    "pricing": FOUNDATION | {"_core", "controller", "__init__"},
    "audit": FOUNDATION | {"_core", "cluster"},
    "cluster": FOUNDATION | {"_core", "_aio"},
    "sim": FOUNDATION | {"_portal"},
    "metrics": FOUNDATION | {"_core", "controller"},
    "cli": FOUNDATION
    | {"_core", "_aio", "controller", "pricing", "audit", "sim", "metrics", "cluster", "__init__"},
}

#: What the sans-I/O core must never import, even from the standard library.
IO_MODULES = frozenset({"asyncio", "websockets", "time", "socket", "threading", "selectors"})


def unit_of(path: Path) -> str:
    """The unit a source file belongs to: its first component below the package."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def runtime_imports(tree: ast.Module) -> Iterator[str]:
    """Every module imported at run time (not under ``if TYPE_CHECKING:``)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "streamfsm":
                yield from (f"streamfsm.{alias.name}" for alias in node.names)
            else:
                yield node.module


SOURCES = sorted(PACKAGE.rglob("*.py"))
#: Parsed once, at collection. CPython 3.11 can fail an ``ast.parse`` with "AST constructor
#: recursion depth mismatch" after a RecursionError was caught earlier in the same thread (the
#: protocol tests provoke one on purpose); at collection no test has run yet.
TREES = {path: ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_the_layers_below_it(path: Path) -> None:
    """A module imports only its own unit and the units the layer table allows."""
    unit = unit_of(path)
    assert unit in ALLOWED, f"{unit} is not in the layer table"
    tree = TREES[path]
    crossing = sorted(
        name
        for name in runtime_imports(tree)
        if name.startswith("streamfsm.")
        and (target := name.split(".")[1]) != unit
        and target not in ALLOWED[unit]
    )
    assert crossing == [], f"{path.name} ({unit}) imports {crossing}"


#: A module does one job; past this many lines it is doing two (see docs/decisions.md).
MAX_MODULE_LINES = 400


def test_no_module_is_over_the_size_limit() -> None:
    """Every module of the package stays within MAX_MODULE_LINES lines."""
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in SOURCES}
    over = {str(path.relative_to(PACKAGE)): n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert over == {}


@pytest.mark.parametrize("path", sorted((PACKAGE / "_core").rglob("*.py")), ids=lambda p: p.name)
def test_the_core_does_no_io(path: Path) -> None:
    """The sans-I/O core imports no asyncio, websockets, time, socket or threading."""
    tree = TREES[path]
    roots = {name.split(".")[0] for name in runtime_imports(tree)}
    assert roots.isdisjoint(IO_MODULES), roots & IO_MODULES


#: The cluster's sans-I/O modules: the lease machine and its configuration.
CLUSTER_CORE = (
    "config.py",
    "framing.py",
    "interest.py",
    "lease.py",
    "lease_commands.py",
    "lease_table.py",
    "names.py",
)


@pytest.mark.parametrize("name", CLUSTER_CORE)
def test_the_lease_machine_does_no_io(name: str) -> None:
    """The lease machine, like the core, imports no asyncio, websockets, time, socket, threading."""
    tree = TREES[PACKAGE / "cluster" / name]
    roots = {name.split(".")[0] for name in runtime_imports(tree)}
    assert roots.isdisjoint(IO_MODULES), roots & IO_MODULES


def test_every_unit_in_the_table_exists() -> None:
    """The layer table names no unit that has gone, so it stays the real architecture."""
    present = {unit_of(path) for path in SOURCES}
    assert set(ALLOWED) - present <= {"_validate", "_portal"}


def documented_layers() -> dict[str, frozenset[str]]:
    """The layer table of docs/architecture.md, ``foundation`` expanded."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    layers: dict[str, frozenset[str]] = {}
    for line in table.strip().splitlines()[2:]:
        unit_cell, _what, imports_cell = (cell.strip() for cell in line.strip("|").split("|"))
        names: set[str] = set()
        for cell in imports_cell.split(","):
            item = cell.strip().strip("`")
            if item == "foundation":
                names |= FOUNDATION
            elif item != "nothing":
                names.add(item)
        layers[unit_cell.strip("`")] = frozenset(names)
    return layers


def test_the_documented_layers_are_the_enforced_ones() -> None:
    """docs/architecture.md draws exactly the table this module enforces."""
    assert documented_layers() == ALLOWED
