"""MkDocs hooks: the site gets the pages the guides link outside docs/.

docs/ is written for reading in the repository, where docs/README.md links the project
README (``../README.md``) and the examples (``../examples``), and the README links the guides
as ``docs/*.md``. In the site those targets are pages generated here, so every link works in
both places and ``mkdocs build --strict`` still fails on any other link that leaves docs/:

- ``overview.md``: the project README, its ``docs/`` links made relative to the site;
- ``examples.md``: the source of each program in examples/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]

#: Links of docs/README.md (site home) that leave docs/, and the page each becomes.
_OUTSIDE_LINKS = {"../README.md": "overview.md", "../examples": "examples.md"}


def _examples_page() -> str:
    parts = [
        "# Examples\n\n",
        "The programs in the repository's `examples/` directory. Without `SMTP_HOST` set they",
        " send through the embedded fake server (which needs `smtpsubmit[testing]`); the test",
        " suite runs each of them.\n",
    ]
    for path in sorted((ROOT / "examples").glob("*.py")):
        source = path.read_text(encoding="utf-8").rstrip()
        parts.append(f"\n## `{path.name}`\n\n```python\n{source}\n```\n")
    return "".join(parts)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "overview.md", abs_src_path=str(ROOT / "README.md")))
    files.append(File.generated(config, "examples.md", content=_examples_page()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **kwargs: Any) -> str:
    if page.file.src_uri == "overview.md":
        return re.sub(r"\]\(docs/", "](", markdown)
    if page.file.src_uri == "README.md":
        for outside, inside in _OUTSIDE_LINKS.items():
            markdown = markdown.replace(f"]({outside})", f"]({inside})")
    return markdown
