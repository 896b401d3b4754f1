"""The package's shape: no import cycles, layers import only downwards, modules readable.

Imports are read with ``ast`` from the source (what ``import`` would do at run time,
including imports inside functions), so a lazy import cannot hide a cycle. Imports under
``if TYPE_CHECKING:`` are left out: they never run, they only name a type (the exception
tree names ``Attempt`` for ``SMTPError.history``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "smtpsubmit"
#: The layers below the client layer, and what each may import of smtpsubmit besides
#: itself. The sans-I/O core imports nothing else; the others only the public errors.
LOWER = {
    "smtpsubmit.protocol": set(),
    "smtpsubmit.auth": set(),
    "smtpsubmit.transport": {"smtpsubmit._errors"},
    "smtpsubmit.policy": {"smtpsubmit._errors", "smtpsubmit.protocol"},
}
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each module of smtpsubmit and the smtpsubmit modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text())
        type_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.startswith("smtpsubmit"):
                    targets.add(module)
                    # `from . import x` may name a submodule
                    targets.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("smtpsubmit"))
        graph[name] = targets
    return {
        name: {t for t in targets if t in graph and t != name and not name.startswith(t + ".")}
        for name, targets in graph.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_there_is_no_import_cycle() -> None:
    assert find_cycle(imports()) is None


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("layer", sorted(LOWER))
def test_lower_layers_never_import_the_client_layer(layer: str) -> None:
    allowed = LOWER[layer]
    for module, targets in imports().items():
        if module == layer or module.startswith(layer + "."):
            outside = {
                t
                for t in targets
                if not (t == layer or t.startswith(layer + "."))
                and not any(t == a or t.startswith(a + ".") for a in allowed)
            }
            assert not outside, f"{module} imports {sorted(outside)}"


def test_transport_interface_imports_no_implementation() -> None:
    graph = imports()
    base = graph.get("smtpsubmit.transport._base", set())
    assert not {t for t in base if t.startswith("smtpsubmit.transport.")}


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in ROOT.rglob("*.py")
        if (n := p.read_text().count("\n")) > MAX_LINES
    }
    assert not long
