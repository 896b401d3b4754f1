"""Run every ```python block of README.md and docs/*.md, so the docs cannot rot.

How a block runs depends on what it is:

- it defines pytest tests (``def test_...``): it is written to a test file and run with
  ``pytester`` (in-process), which must report passes and nothing else; ``myapp.py`` sits
  beside it, standing for the application code a test imports;
- it is preceded by the line ``<!-- fragment -->``: it is only compiled (top-level ``await``
  allowed). Fragments must stay rare: they are capped below;
- anything else is a script: executed in a fresh namespace with ``__name__ == "__main__"``,
  so ``if __name__ == "__main__": anyio.run(main)`` runs. A block that defines ``main``
  and never runs it fails, because it would check nothing. Raising nothing is not enough:
  each script block has an entry in ``doc_expectations.py`` that checks what it printed
  and what the fake servers received.

A block that starts with the line ``# settings.py`` is a Django settings module: its
UPPER_CASE names are applied (``override_settings``) to every later block of the same file.

All of it happens inside ``docs_sandbox`` (see conftest.py): host names like
``smtp.gmail.com`` reach fake servers, with certificate and host name checks on. Line
numbers in tracebacks are those of the Markdown file.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from doc_expectations import EXPECTATIONS, Check, Run

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT_MARK = "<!-- fragment -->"
SETTINGS_MARK = "# settings.py"
#: At most this many blocks may be compile-only, over all the docs.
MAX_FRAGMENTS = 4

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_TEST_FUNCTION = re.compile(r"^\s*(?:async\s+)?def\s+test_", re.MULTILINE)  # incl. methods
_DEFINES_MAIN = re.compile(r"^(?:async\s+)?def\s+main\s*\(.*$", re.MULTILINE)
_RUNS_MAIN = re.compile(r"\brun\(\s*main\b|\bmain\(\)")


@dataclass(frozen=True)
class Block:
    """One fenced Python block."""

    path: Path
    line: int  # line number of the block's first line of code (1-based)
    source: str
    fragment: bool

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_pytest(self) -> bool:
        return bool(_TEST_FUNCTION.search(self.source))

    @property
    def is_settings(self) -> bool:
        return self.source.startswith(SETTINGS_MARK + "\n")

    @property
    def is_script(self) -> bool:
        return not self.fragment and not self.is_pytest

    @property
    def document(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    def compile(self, flags: int = 0) -> Any:
        # Leading newlines make tracebacks point at the Markdown file's own line numbers.
        padded = "\n" * (self.line - 1) + self.source
        return compile(padded, str(self.path), "exec", flags=flags, dont_inherit=True)


def extract_blocks(path: Path) -> list[Block]:
    """The ```python (or ```py) blocks of a Markdown file, fences possibly indented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines):
            stripped = lines[end].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            end += 1
        words = opening["info"].split()
        if words and words[0].lower() in ("python", "py"):
            body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
            previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
            blocks.append(
                Block(path, i + 2, "\n".join(body) + "\n", fragment=previous == FRAGMENT_MARK)
            )
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOCUMENTS for block in extract_blocks(path)]


def django_settings_for(block: Block) -> dict[str, Any]:
    """The settings of the last ``# settings.py`` block before ``block`` in its file."""
    settings_blocks = [
        b for b in ALL_BLOCKS if b.path == block.path and b.line < block.line and b.is_settings
    ]
    if not settings_blocks:
        return {}
    namespace: dict[str, Any] = {"__name__": "settings"}
    exec(settings_blocks[-1].compile(), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


@contextlib.contextmanager
def django_settings(block: Block) -> Iterator[None]:
    values = django_settings_for(block)
    if not values:
        yield
        return
    from django.test.utils import override_settings

    with override_settings(**values):
        yield


def run_pytest_block(block: Block, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_doc_block=block.source)
    # The application code README's test example imports (it stands for the user's code).
    pytester.makepyfile(myapp=(Path(__file__).parent / "myapp.py").read_text(encoding="utf-8"))
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    problems = {k: v for k, v in outcomes.items() if k not in ("passed", "warnings")}
    defined = len(_TEST_FUNCTION.findall(block.source))
    assert result.ret == 0, f"{block.name}: the block's tests failed:\n{result.stdout.str()}"
    assert outcomes.get("passed", 0) >= defined, (
        f"{block.name}: {defined} tests defined, not all ran:\n{result.stdout.str()}"
    )
    assert not problems, f"{block.name}: {outcomes}:\n{result.stdout.str()}"


def run_script_block(block: Block) -> dict[str, Any]:
    defines_main = _DEFINES_MAIN.search(block.source)
    if defines_main and not _RUNS_MAIN.search(_DEFINES_MAIN.sub("", block.source)):
        pytest.fail(f"{block.name} defines main() but never runs it, so it checks nothing")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(block.path)}
    exec(block.compile(), namespace)
    return namespace


def expectation_of(block: Block) -> Check:
    """The check registered for a script block (see doc_expectations.py)."""
    [check] = [
        check
        for (document, marker), check in EXPECTATIONS.items()
        if document == block.document and marker in block.source
    ] or [None]
    if check is None:
        pytest.fail(f"{block.name}: no entry in doc_expectations.py says what it is for")
    return check


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.name)
def test_code_block(
    block: Block,
    docs_sandbox: Any,
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if block.fragment:
        block.compile(ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    with django_settings(block):
        if block.is_pytest:
            run_pytest_block(block, pytester)
        else:
            check = expectation_of(block)
            capsys.readouterr()
            namespace = run_script_block(block)
            check(Run(capsys.readouterr().out.splitlines(), docs_sandbox, namespace))
    for server in docs_sandbox.servers:
        assert not server.errors, f"the fake server crashed: {server.errors!r}"


def test_every_expectation_names_exactly_one_script_block() -> None:
    for document, marker in EXPECTATIONS:
        matching = [b.name for b in ALL_BLOCKS if b.document == document and marker in b.source]
        assert len(matching) == 1, f"{document}: {marker!r} is in {matching or 'no block'}"
        [block] = [b for b in ALL_BLOCKS if b.name == matching[0]]
        assert block.is_script, f"{block.name} is not a script block"
    script_blocks = [b for b in ALL_BLOCKS if b.is_script]
    assert len(script_blocks) == len(EXPECTATIONS)


def test_every_document_has_code_and_fragments_stay_rare() -> None:
    documents_with_code = {block.path for block in ALL_BLOCKS}
    expected = {ROOT / "README.md", *(ROOT / "docs").glob("*.md")} - {ROOT / "docs/README.md"}
    assert expected <= documents_with_code, expected - documents_with_code
    fragments = [block.name for block in ALL_BLOCKS if block.fragment]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


def test_docs_index_links_every_guide() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for path in (ROOT / "docs").glob("*.md"):
        if path.name != "README.md":
            assert f"({path.name})" in index, f"docs/README.md does not link {path.name}"


def test_extractor_finds_indented_fences_and_fragment_marks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Intro\n\n```python\nx = 1\n```\n\n<!-- fragment -->\n\n```py\nawait f()\n```\n"
        "\n1. step\n\n   ```python\n   y = 2\n   ```\n\n```console\n$ ls\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(doc)
    assert [(b.line, b.source, b.fragment) for b in blocks] == [
        (4, "x = 1\n", False),
        (10, "await f()\n", True),
        (16, "y = 2\n", False),
    ]


def test_sandbox_keeps_certificate_checks_meaningful(docs_sandbox: Any) -> None:
    import anyio

    import smtpsubmit

    async def connect(host: str, port: int) -> smtpsubmit.SMTPClient:
        client = smtpsubmit.SMTPClient(host, port)  # default SSL context: checks the name
        await client.connect()
        return client

    async def main() -> None:
        client = await connect("smtp.gmail.com", 465)
        assert client.tls_info is not None
        await client.quit()
        with pytest.raises(smtpsubmit.CertificateError):
            await connect("smtp.not-in-the-docs.test", 465)  # not a name of the certificate

    anyio.run(main)
    assert len(docs_sandbox.implicit.transcripts) == 2


def test_every_guide_is_in_the_docs_site_nav() -> None:
    # mkdocs build --strict (CI) fails on a page missing from the nav; this says so sooner.
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for path in (ROOT / "docs").glob("*.md"):
        assert f": {path.name}" in nav or f"- {path.name}" in nav, f"mkdocs.yml misses {path.name}"
