"""Check the built site's API reference: every public name documented, nothing else.

Usage: ``python tests/packaging/check_api_reference.py SITE_DIR`` (``make docs`` runs it after
``mkdocs build --strict``). mkdocstrings writes every object it renders into the site's
``objects.inv`` (Sphinx inventory format). For each module of ``MODULES``, the names
documented directly under it must be exactly its ``__all__``, read from the source without
importing it (``smtpsubmit.contrib.django`` needs Django, which the docs tools lack).
"""

from __future__ import annotations

import ast
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The public modules the reference covers (docs/reference/*.md, one page each).
MODULES = (
    "smtpsubmit",
    "smtpsubmit.sync",
    "smtpsubmit.testing",
    "smtpsubmit.auth",
    "smtpsubmit.transport",
    "smtpsubmit.protocol",
    "smtpsubmit.policy",
    "smtpsubmit.contrib.django",
    "smtpsubmit.contrib.celery",
    "smtpsubmit.dkim",
    "smtpsubmit.telemetry",
)


def public_names(module: str) -> set[str]:
    """The module's ``__all__``, a literal list in its source."""
    base = ROOT.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise SystemExit(f"{path}: no literal __all__")


def documented_names(site: Path) -> dict[str, set[str]]:
    """``{parent: {name, ...}}`` of the Python objects (not modules) in ``site/objects.inv``."""
    raw = (site / "objects.inv").read_bytes()
    header, _, body = raw.partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), header[:40]
    out: dict[str, set[str]] = {}
    for line in zlib.decompress(body).decode().splitlines():
        # "name role priority uri dispname": priority 2 marks an alias of an object
        # documented elsewhere (``smtpsubmit.sync.SendResult`` for ``smtpsubmit.SendResult``).
        name, role, priority = line.split(" ", 3)[:3]
        if role.startswith("py:") and role != "py:module" and priority == "1":
            parent, _, leaf = name.rpartition(".")
            out.setdefault(parent, set()).add(leaf)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    documented = documented_names(Path(argv[0]))
    problems = []
    for module in MODULES:
        wanted = public_names(module)
        have = documented.get(module, set())
        if missing := sorted(wanted - have):
            problems.append(f"{module}: not in the API reference: {', '.join(missing)}")
        if extra := sorted(have - wanted):
            problems.append(f"{module}: documented but not in __all__: {', '.join(extra)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        total = sum(len(public_names(m)) for m in MODULES)
        print(f"API reference: the {total} public names of {len(MODULES)} modules, no other")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
