"""Griffe extension for the API reference: the docstrings' reST habits, read as Markdown.

The docstrings are written for ``help()`` and Sphinx-minded readers: ``:class:`Foo``` roles,
``::`` before an indented literal block, ``>>>`` examples. Markdown would show the roles
verbatim and the examples as nested quotes, so each docstring is rewritten once, here:

- a role becomes a code span (``:meth:`send``` -> `` `send` ``);
- ``text::`` + an indented block becomes ``text:`` + a fenced block (``::`` alone: the fence),
  highlighted as Python if it parses as Python;
- a run of ``>>>`` lines becomes a fenced ``pycon`` block.

Special methods other than the protocol ones a user calls (``__init__`` is merged into its
class, ``async with`` needs ``__aenter__``) are left out of the reference.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`~?([^`]+)`")
_SHOWN_SPECIAL = frozenset(
    [
        "__init__",
        "__call__",
        "__aenter__",
        "__enter__",
        "__iter__",
        "__aiter__",
        "__len__",
        "__contains__",
        "__getitem__",
    ]
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fence(block: list[str]) -> list[str]:
    code = textwrap.dedent("\n".join(block)).strip("\n")
    try:
        ast.parse(code)
        language = "python"
    except SyntaxError:
        language = "text"
    return ["", f"```{language}", *code.split("\n"), "```", ""]


def markdown_docstring(text: str) -> str:
    """``text`` (a cleaned docstring) with its reST habits turned into Markdown."""
    text = _ROLE.sub(r"`\1`", text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            intro = line.rstrip()[:-2].rstrip()
            base = _indent(line)
            j = i + 1
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if intro.strip():
                out.append(intro + ":")
            out += _fence(block)
            i = j
            continue
        if line.lstrip().startswith(">>>"):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            body = textwrap.dedent("\n".join(lines[i:j])).split("\n")
            out += ["```pycon", *body, "```"]
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class ReSTToMarkdown(griffe.Extension):
    """Rewrite each docstring once, hide special methods nobody calls by name."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
        name = obj.name
        if (
            name.startswith("__")
            and name.endswith("__")
            and name not in _SHOWN_SPECIAL
            and obj.parent is not None
            and obj.parent.is_class
        ):
            obj.public = False
