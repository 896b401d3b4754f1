"""Install the built wheel outside the checkout and use it from there (``make wheel-check``).

Usage: ``python tests/packaging/wheel_smoke.py DIST_DIR`` (``make dist`` fills ``dist/``).

1. The wheel holds every file of ``smtpsubmit/`` in the checkout (``py.typed`` included),
   the ``pytest11`` entry point, and the version of ``smtpsubmit/__init__.py``; the sdist
   holds the sources, tests and docs.
2. A fresh virtualenv in a temporary directory gets the wheel alone: ``--version`` works,
   and ``serve`` and ``demo`` say in one line which extra to install (no traceback).
3. Then the wheel with its ``testing`` extra, nothing else: from an empty directory,
   ``smoke/send_one.py`` sends a message through the fake server with the public API,
   pytest runs ``smoke/test_plugin_smoke.py`` (the ``smtps_server`` fixture, warnings are
   errors) with no conftest and no configuration, and ``python -m smtpsubmit demo`` runs.
4. ``mypy --strict`` (this interpreter's) checks ``send_one.py`` against the installed copy:
   without ``py.typed`` it would refuse to use the package's types.

Nothing here imports smtpsubmit from the checkout: the point is to use what was built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).resolve().parent / "smoke"
#: Files the sdist must hold (the wheel is built from it, so all of smtpsubmit/ is checked there).
SDIST_HOLDS = (
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "smtpsubmit/py.typed",
    "tests/conftest.py",
    "docs/testing.md",
    "mkdocs.yml",
)
#: Packages the ``testing`` extra must not bring: the project's own test tools.
NOT_FOR_USERS = ("pytest-asyncio", "hypothesis", "trio", "django", "fastapi", "pytest-cov")


def step(text: str) -> None:
    print(f"-- {text}", flush=True)


def run(
    argv: Sequence[str | Path], cwd: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing may lead Python back to the checkout.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        sys.exit(
            f"FAILED ({result.returncode}): {' '.join(map(str, argv))}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def source_version() -> str:
    text = (ROOT / "smtpsubmit" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "no __version__ in smtpsubmit/__init__.py"
    return match[1]


def check_archives(dist: Path) -> Path:
    wheels = sorted(dist.glob("smtpsubmit-*.whl"))
    sdists = sorted(dist.glob("smtpsubmit-*.tar.gz"))
    assert len(wheels) == 1, f"want one wheel in {dist}: {wheels}"
    assert len(sdists) == 1, f"want one sdist in {dist}: {sdists}"
    wheel, sdist = wheels[0], sdists[0]
    version = source_version()
    assert wheel.name.startswith(f"smtpsubmit-{version}-"), (wheel.name, version)

    step(f"{wheel.name}: every file of smtpsubmit/, py.typed, the pytest plugin")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"smtpsubmit-{version}.dist-info"
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
        metadata = zf.read(f"{info}/METADATA").decode()
    in_checkout = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "smtpsubmit").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sorted(in_checkout - names)
    assert not missing, f"missing from the wheel: {missing}"
    assert "smtpsubmit/py.typed" in names
    assert re.search(r"^smtpsubmit = smtpsubmit\.testing\._plugin$", entry_points, re.M)
    assert f"\nVersion: {version}\n" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: testing" in metadata

    step(f"{sdist.name}: sources, tests, docs")
    with tarfile.open(sdist) as tf:
        members = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
    missing = sorted(set(SDIST_HOLDS) - members)
    assert not missing, f"missing from the sdist: {missing}"
    return wheel


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    wheel = check_archives(Path(argv[0]).resolve())
    with tempfile.TemporaryDirectory(prefix="smtpsubmit-wheel-") as tmp:
        base = Path(tmp)
        work = base / "work"  # the user's project: outside the checkout, empty
        work.mkdir()
        env_dir = base / "venv"
        step(f"fresh virtualenv in {env_dir}, the wheel alone")
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        run([python, "-m", "pip", "install", "-q", wheel], work)

        version = run([python, "-m", "smtpsubmit", "--version"], work).stdout.strip()
        assert version == f"smtpsubmit {source_version()}", version
        for command in ("serve", "demo"):
            result = run([python, "-m", "smtpsubmit", command], work, check=False)
            lines = result.stderr.splitlines()
            assert result.returncode == 1, result
            assert len(lines) == 1, lines
            assert "pip install 'smtpsubmit[testing]'" in lines[0], lines
            print(f"   {command} without trustme: {lines[0]}")

        step("the wheel with its testing extra, nothing else")
        run([python, "-m", "pip", "install", "-q", f"{wheel}[testing]"], work)
        installed = run([python, "-m", "pip", "list", "--format=freeze"], work).stdout.lower()
        extra = [name for name in NOT_FOR_USERS if f"\n{name}==" in f"\n{installed}"]
        assert not extra, f"the testing extra brought the project's own test tools: {extra}"

        for name in ("send_one.py", "test_plugin_smoke.py"):
            shutil.copy(SMOKE / name, work / name)
        step("send_one.py: one message through the fake server, public API")
        print("   " + run([python, "send_one.py"], work).stdout.strip())
        step("pytest on test_plugin_smoke.py: the smtps_server fixture from the plugin")
        pytest_argv = [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "test_plugin_smoke.py",
        ]
        result = run([python, *pytest_argv], work)
        print("   " + result.stdout.strip().splitlines()[-1])
        step("python -m smtpsubmit demo")
        run([python, "-m", "smtpsubmit", "demo"], work)

        step("mypy --strict send_one.py against the installed package (py.typed)")
        mypy_argv = ["-m", "mypy", "--strict", "--no-incremental", "--python-executable"]
        run([sys.executable, *mypy_argv, python, "send_one.py"], work)
    step("wheel smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
