"""What users install and run: the extras, the version, the CLI without trustme, the docs map.

The built artefacts themselves are checked by ``make wheel-check`` (wheel_smoke.py) and the
site by ``make docs`` (check_api_reference.py); these are the fast checks of their inputs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import smtpsubmit

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

from check_api_reference import MODULES, public_names  # noqa: E402
from check_api_reference import main as check_api_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def run_main(
    *argv: str, hide_trustme: bool = False, hide: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m smtpsubmit ARGV`` in a subprocess, optionally as if trustme (or the
    modules in ``hide``) were absent."""
    hidden = (*hide, "trustme") if hide_trustme else hide
    hide_code = "".join(f"sys.modules[{name!r}] = None; " for name in hidden)
    code = f"import sys; {hide_code}from smtpsubmit.__main__ import main; sys.exit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_testing_extra_is_what_the_plugin_and_fake_server_need_and_nothing_else() -> None:
    assert sorted(map(requirement_name, EXTRAS["testing"])) == ["pytest", "trustme"]


def test_project_test_extra_builds_on_testing_and_keeps_its_tools_out_of_it() -> None:
    assert "smtpsubmit[testing]" in EXTRAS["test"]
    own_tools = {requirement_name(r) for r in EXTRAS["test"]} - {"smtpsubmit"}
    assert "pytest-asyncio" in own_tools
    assert not own_tools & {requirement_name(r) for r in EXTRAS["testing"]}


def test_makefile_demo_installs_the_testing_extras_trustme_only() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^DEMO_REQUIREMENTS := '([^']+)'$", makefile, re.MULTILINE)
    assert match, "no DEMO_REQUIREMENTS line in the Makefile"
    [trustme] = [r for r in EXTRAS["testing"] if requirement_name(r) == "trustme"]
    assert match[1] == trustme


def test_version_has_one_place_smtpsubmit_init() -> None:
    assert "version" not in PROJECT
    assert PROJECT["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "smtpsubmit/__init__.py"
    assert re.fullmatch(
        r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", smtpsubmit.__version__
    )


def test_version_flag_prints_the_version() -> None:
    result = run_main("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"smtpsubmit {smtpsubmit.__version__}\n"


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_fake_server_commands_without_trustme_name_the_extra_in_one_line(command: str) -> None:
    result = run_main(command, hide_trustme=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"python -m smtpsubmit {command}: the fake server needs trustme, from the testing "
        "extra: pip install 'smtpsubmit[testing]'\n"
    )


def test_inbox_extra_is_the_fake_server_plus_its_web_server() -> None:
    assert "smtpsubmit[testing]" in EXTRAS["inbox"]
    assert sorted(map(requirement_name, EXTRAS["inbox"])) == [
        "hypercorn",
        "smtpsubmit",
        "starlette",
    ]
    assert "smtpsubmit[inbox]" in EXTRAS["test"]  # the inbox's tests run in this suite
    assert "selenium" in {requirement_name(r) for r in EXTRAS["test"]}


@pytest.mark.parametrize("absent", [("starlette",), ("hypercorn",), ("starlette", "hypercorn")])
def test_serve_web_without_the_inbox_extra_names_it_in_one_line(absent: tuple[str, ...]) -> None:
    result = run_main("serve", "--web", "0", hide=absent)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"python -m smtpsubmit serve --web: the web inbox needs {' and '.join(absent)}, from "
        "the inbox extra: pip install 'smtpsubmit[inbox]'\n"
    )


def test_the_fake_server_and_serve_import_no_web_library() -> None:
    code = (
        "import sys; import smtpsubmit.testing, smtpsubmit.testing._cli; "
        "print(sorted({'starlette', 'hypercorn'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "[]\n"


def test_serve_help_works_without_trustme() -> None:
    result = run_main("serve", "--help", hide_trustme=True)
    assert result.returncode == 0, result.stderr
    assert "--starttls PORT" in result.stdout


def test_package_is_typed_and_says_so() -> None:
    assert (ROOT / "smtpsubmit" / "py.typed").is_file()
    classifiers = set(PROJECT["classifiers"])
    assert {
        "Typing :: Typed",
        "Operating System :: OS Independent",
        "Framework :: AnyIO",
        "Framework :: Trio",
        "Framework :: Pytest",
        "Framework :: Django",
    } <= classifiers
    minimum = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert minimum, PROJECT["requires-python"]
    assert f"Programming Language :: Python :: 3.{minimum[1]}" in classifiers


def test_pytest_plugin_entry_point() -> None:
    assert PROJECT["entry-points"]["pytest11"] == {"smtpsubmit": "smtpsubmit.testing._plugin"}


def test_api_reference_pages_are_the_checked_modules() -> None:
    pages = sorted((ROOT / "docs" / "reference").glob("*.md"))
    documented = [
        line.removeprefix("::: ").strip()
        for page in pages
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("::: ")
    ]
    assert sorted(documented) == sorted(MODULES)


def _site_with(tmp_path: Path, names: list[str]) -> Path:
    lines = [f"{name} py:class 1 reference/#$ -" for name in names]
    lines.append("smtpsubmit.sync.SendResult py:class 2 reference/#smtpsubmit.SendResult -")
    header = b"# Sphinx inventory version 2\n# Project: x\n# Version: 0\n"
    body = zlib.compress("\n".join(lines).encode())
    (tmp_path / "objects.inv").write_bytes(
        header + b"# The remainder of this file is compressed using zlib.\n" + body
    )
    return tmp_path


def test_api_reference_check_names_missing_and_extra_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = [f"{m}.{n}" for m in MODULES for n in public_names(m)]
    assert check_api_reference([str(_site_with(tmp_path, every))]) == 0

    incomplete = [n for n in every if n != "smtpsubmit.send"] + ["smtpsubmit.sync.T"]
    assert check_api_reference([str(_site_with(tmp_path, incomplete))]) == 1
    err = capsys.readouterr().err
    assert "smtpsubmit: not in the API reference: send" in err
    assert "smtpsubmit.sync: documented but not in __all__: T" in err
