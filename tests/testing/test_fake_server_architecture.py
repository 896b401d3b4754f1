"""The shape of ``smtpsubmit.testing``: small modules, no import cycles, and almost nothing of
the client imported (the fake server must check the client honestly, not share its code)."""

from __future__ import annotations

import ast
from pathlib import Path

import smtpsubmit.testing

PACKAGE = Path(smtpsubmit.testing.__file__).parent
MAX_LINES = 600
#: What the fake server may use of the rest of smtpsubmit: ``module: names``.
CLIENT_IMPORTS_ALLOWED = {"smtpsubmit.auth": {"tls_server_end_point"}}


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, names)`` for each import outside ``if TYPE_CHECKING:`` blocks,
    function-level ones included (a lazy import can hide a cycle too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = "smtpsubmit.testing" if node.level == 1 else (node.module or "")
            module = f"{base}.{node.module}" if node.level == 1 and node.module else base
            names = [alias.name for alias in node.names]
            if node.level == 1 and node.module is None:  # from . import _x
                found.extend((f"{base}.{name}", []) for name in names)
            else:
                found.append((module, names))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _modules() -> dict[str, Path]:
    return {f"smtpsubmit.testing.{p.stem}": p for p in PACKAGE.glob("_*.py")} | {
        "smtpsubmit.testing": PACKAGE / "__init__.py"
    }


def test_every_module_reads_in_one_sitting() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n >= MAX_LINES} == {}


def test_no_import_cycles_inside_the_package() -> None:
    modules = _modules()
    graph = {
        name: {m for m, _ in _runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_imports_almost_nothing_of_the_client() -> None:
    used: dict[str, set[str]] = {}
    for path in _modules().values():
        for module, names in _runtime_imports(path):
            if module.startswith("smtpsubmit") and not module.startswith("smtpsubmit.testing"):
                used.setdefault(module, set()).update(names)
    assert used == CLIENT_IMPORTS_ALLOWED
