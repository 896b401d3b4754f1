"""The transport package's layering: the interface imports no implementation, no cycles."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import smtpsubmit.transport as transport

PACKAGE = Path(transport.__file__).parent


def sibling_imports(module: Path) -> set[str]:
    """The modules of this package that ``module`` imports (``from .x import ...``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is not None:
                found.add(node.module.split(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    return {path.stem: sibling_imports(path) for path in PACKAGE.glob("_*.py")}


def test_the_interface_module_imports_no_implementation() -> None:
    graph = import_graph()
    assert {"_base", "_errors", "_anyio", "_asyncio", "_connect"} <= graph.keys()
    assert graph["_base"] == set()
    assert graph["_errors"] == set()  # the error edge needs nothing but the public errors
    # Each implementation knows only the interface and the error edge, not the other one.
    assert graph["_anyio"] <= {"_base", "_errors"}
    assert graph["_asyncio"] <= {"_base", "_errors"}
    # A proxy connection ends in the anyio transport; it knows nothing of asyncio's.
    assert graph["_proxy"] <= {"_base", "_errors", "_anyio"}


def test_there_is_no_import_cycle_inside_the_package() -> None:
    graphlib.TopologicalSorter(import_graph()).prepare()  # raises CycleError on a cycle


def test_public_names_are_unchanged() -> None:
    assert sorted(transport.__all__) == [
        "AnyIOTransport",
        "AsyncioTransport",
        "ProxyURL",
        "TLSInfo",
        "Transport",
        "connect_proxy",
        "connect_tcp",
        "connect_unix",
        "map_errors",
        "socks_available",
    ]
    for name in transport.__all__:
        assert getattr(transport, name).__doc__
