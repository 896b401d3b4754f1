"""Mutation testing of the rules that matter most, one scope at a time (``make mutation``).

Theory of operation (see tests/MUTATION.md for the why and the last results):

- A scope is some source files, optionally narrowed to some functions, and the tests that
  are meant to pin them down. Each scope runs mutmut in its own directory,
  ``.mutation/<scope>/``: a ``pyproject.toml`` (the project's, plus the scope's
  ``[tool.mutmut]`` table) and symlinks to ``smtpsubmit/`` and ``tests/``. mutmut copies
  them into that directory's ``mutants/``, so the scopes never share (and never reset)
  each other's results, and the work tree is never mutated.
- Inside a scope mutmut runs, for each mutant, only the scope's tests that call the mutated
  function (it records which ones during a first clean run), and stops at the first failure.
- ``report`` reads mutmut's result files and counts each scope's mutants by status. A
  survivor listed in tests/MUTATION.md (its name in backquotes) is an explained,
  equivalent mutant; any other survivor makes ``report`` exit 1.

Usage: ``python tests/mutation.py run [SCOPE ...] [--survivors] [--jobs N]``,
``python tests/mutation.py report [SCOPE ...] [--show]``, ``python tests/mutation.py check
SCOPE TEST ... -m MUTANT ...`` (the tests pass as they are and fail with each mutant). No
SCOPE means all of them, in the order below (the most valuable first).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
NOTES = ROOT / "tests" / "MUTATION.md"
MUTMUT = Path(sys.executable).parent / "mutmut"
CHECK_TIMEOUT = 120  # seconds; a check that takes longer counts as a failure (a kill)


@dataclass(frozen=True)
class Scope:
    #: Source files to mutate, relative to the root.
    files: tuple[str, ...]
    #: The tests that pin them down (pytest arguments).
    tests: tuple[str, ...]
    #: Only these functions (``name`` or ``Class.method``); empty: every function in files.
    functions: tuple[str, ...] = ()

    def patterns(self) -> list[str]:
        """mutmut's mutant-name globs for this scope."""
        out = []
        for file in self.files:
            module = file.removesuffix(".py").replace("/", ".")
            if not self.functions:
                out.append(f"{module}.*")
            for function in self.functions:
                cls, _, name = function.rpartition(".")
                mangled = f"x\u01c1{cls}\u01c1{name}" if cls else f"x_{name}"
                out.append(f"{module}.{mangled}__mutmut_*")
        return out

    def covers(self, mutant: str) -> bool:
        return any(fnmatch.fnmatchcase(mutant, pattern) for pattern in self.patterns())


SCOPES: dict[str, Scope] = {
    # The outcome classification: refused / not sent / unknown / accepted.
    "outcomes": Scope(
        files=("smtpsubmit/_transaction.py",),
        functions=("Transaction.refusal", "Transaction.conclude", "_fate", "fail"),
        tests=(
            "tests/client/test_outcomes.py",
            "tests/client/test_batch.py",
            "tests/client/test_failures.py",
        ),
    ),
    # The envelope read from the header fields, and the Bcc/Resent-Bcc stripping.
    "message": Scope(
        files=("smtpsubmit/_message.py",),
        functions=(
            "envelope_from",
            "message_envelope",
            "_resent_prefix",
            "_sender",
            "_recipients",
            "_addresses",
            "_unescaped",
            "_fields",
            "_strip_and_check_headers",
        ),
        tests=("tests/client/test_envelope_bcc.py", "tests/client/test_serialization.py"),
    ),
    # RFC 8314: which TLS mode a port means, and the default SSL context.
    "tls": Scope(files=("smtpsubmit/policy/_tls.py",), tests=("tests/client/test_security.py",)),
    # The blocking facade.
    "sync": Scope(files=("smtpsubmit/sync.py",), tests=("tests/sync",)),
    # The sans-I/O core.
    "protocol": Scope(
        files=tuple(
            str(p.relative_to(ROOT)) for p in sorted((ROOT / "smtpsubmit/protocol").glob("*.py"))
        ),
        tests=("tests/protocol",),
    ),
}

# mutmut's exit-code meanings (mutmut.stats.status_by_exit_code), grouped for the report.
_STATUS: dict[int | None, str] = {None: "not checked", 0: "survived", 1: "killed", 3: "killed"}
_STATUS.update(dict.fromkeys((5, 33), "no tests"))
_STATUS.update(dict.fromkeys((36, -24, 24, 152, 255), "timeout"))


def _toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(name: str, scope: Scope) -> Path:
    """The scope's directory: the project's pyproject.toml with a [tool.mutmut] table."""
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    for linked in ("smtpsubmit", "tests"):
        link = work / linked
        if not link.is_symlink():
            link.symlink_to(Path("..", "..", linked))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["smtpsubmit"]\n'
        f"only_mutate = {_toml_list(scope.files)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(scope.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
    )
    target = work / "pyproject.toml"
    if not target.exists() or target.read_text(encoding="utf-8") != pyproject:
        target.write_text(pyproject, encoding="utf-8")
    return work


def results(name: str, scope: Scope) -> dict[str, int | None]:
    """Each mutant of the scope and mutmut's exit code for it (None: not run yet)."""
    out: dict[str, int | None] = {}
    for file in scope.files:
        meta = WORK / name / "mutants" / (file + ".meta")
        if not meta.exists():
            continue
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        out.update({k: v for k, v in codes.items() if scope.covers(k)})
    return out


def status(code: int | None) -> str:
    return _STATUS.get(code, "suspicious")


def explained() -> set[str]:
    """The mutants tests/MUTATION.md lists as equivalent (each in backquotes)."""
    if not NOTES.exists():
        return set()
    return set(re.findall(r"`(smtpsubmit\.[^`\s]+__mutmut_\d+)`", NOTES.read_text("utf-8")))


def run(names: list[str], *, survivors: bool, jobs: int) -> None:
    for name in names:
        scope = SCOPES[name]
        work = prepare(name, scope)
        patterns = scope.patterns()
        if survivors:
            # Survivors, and mutants no test reached (a new test may reach them now).
            patterns = sorted(k for k, v in results(name, scope).items() if v in (0, 5, 33))
            if not patterns:
                print(f"{name}: no survivors to run again")
                continue
        log = work / "run.log"
        print(f"{name}: mutmut run, {len(scope.tests)} test paths, log in {log}", flush=True)
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as out:
            code = subprocess.call(
                [str(MUTMUT), "run", "--max-children", str(jobs), *patterns],
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        minutes = (time.monotonic() - started) / 60
        print(f"{name}: mutmut exited {code} after {minutes:.1f} min", flush=True)
        if code != 0:
            sys.exit(f"{name}: mutmut failed; see {log}")


def report(names: list[str], *, show: bool) -> int:
    known = explained()
    unexplained = 0
    header = f"{'scope':10} {'killed':>6} {'survived':>8} {'timeout':>7} {'other':>5} {'total':>5}"
    print(header + "  score   equivalent (listed)")
    for name in names:
        scope = SCOPES[name]
        codes = results(name, scope)
        counts = Counter(status(c) for c in codes.values())
        total = len(codes)
        caught = counts["killed"] + counts["timeout"]
        other = total - caught - counts["survived"]
        survived = sorted(k for k, v in codes.items() if v == 0)
        listed = [k for k in survived if k in known]
        score = f"{100 * caught / total:5.1f}%" if total else "  -  "
        print(
            f"{name:10} {counts['killed']:6} {counts['survived']:8} {counts['timeout']:7} "
            f"{other:5} {total:5}  {score}  {len(listed)}"
        )
        if other:
            print(f"  other: { ({k: v for k, v in counts.items() if k not in _COUNTED}) }")
        for mutant in survived:
            if mutant in known:
                continue
            unexplained += 1
            print(f"  unexplained survivor: {mutant}")
            if show:
                subprocess.call([str(MUTMUT), "show", mutant], cwd=WORK / name)
    return 1 if unexplained else 0


_COUNTED = {"killed", "timeout", "survived"}


def check(name: str, tests: list[str], mutants: list[str]) -> int:
    """Run ``tests`` on the scope's mutated copy: clean (they must pass), then with each
    mutant active (they must fail). How a new test shows it kills the mutant it was
    written for, without touching the work tree."""
    copy = WORK / name / "mutants"
    if not copy.is_dir():
        sys.exit(f"{name}: no mutants yet; run the scope first")
    shutil.copytree(ROOT / "tests", copy / "tests", dirs_exist_ok=True)  # the tests as now
    wrong = 0
    for mutant in ["", *mutants]:
        env = {**os.environ, "PYTHONPATH": str(copy), "MUTANT_UNDER_TEST": mutant}
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        try:
            # A mutant can hang the run (a non-daemon thread keeps the interpreter alive).
            code = subprocess.call(
                command, cwd=copy, env=env, stdout=subprocess.DEVNULL, timeout=CHECK_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            code = -1
        failed = code != 0
        expected = bool(mutant)
        print(
            f"{'ok ' if failed == expected else 'BAD'} {mutant or 'no mutant'}: "
            f"{'fails' if failed else 'passes'}"
        )
        wrong += failed != expected
    return 1 if wrong else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run mutmut for the scopes")
    run_parser.add_argument("scopes", nargs="*", metavar="SCOPE")
    run_parser.add_argument(
        "--survivors", action="store_true", help="only last run's survivors (and untested)"
    )
    run_parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    report_parser = sub.add_parser("report", help="count the mutants of the scopes by status")
    report_parser.add_argument("scopes", nargs="*", metavar="SCOPE")
    report_parser.add_argument("--show", action="store_true", help="diff of each survivor")
    check_parser = sub.add_parser("check", help="do these tests kill these mutants?")
    check_parser.add_argument("scope", metavar="SCOPE")
    check_parser.add_argument("tests", nargs="+", metavar="TEST")
    check_parser.add_argument("-m", "--mutant", action="append", required=True)
    sub.add_parser("clean", help="remove .mutation/")
    args = parser.parse_args()
    names = getattr(args, "scopes", None) or [getattr(args, "scope", None) or ""]
    names = [n for n in names if n] or list(SCOPES)
    unknown = [n for n in names if n not in SCOPES]
    if unknown:
        parser.error(f"unknown scope {unknown[0]!r}; the scopes are {', '.join(SCOPES)}")
    if args.command == "run":
        run(names, survivors=args.survivors, jobs=args.jobs)
    elif args.command == "report":
        sys.exit(report(names, show=args.show))
    elif args.command == "check":
        sys.exit(check(args.scope, args.tests, args.mutant))
    else:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
