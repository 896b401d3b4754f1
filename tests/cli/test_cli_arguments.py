"""``send``'s bad option values: one line in the command's own words, exit 2, no connection.

The checks are the library's (tests/client/test_arguments.py); this is about how they
read here: ``--port``, ``--tls implicit``, ``--allow-cleartext-auth``, never a keyword of
the Python API (``tls=TLSMode.IMPLICIT``) and never a traceback.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smtpsubmit.cli import send_main
from smtpsubmit.testing import Mode, SMTPServerFactory

USER, SECRET = "me@x.example", "s3cret-Pa55"
#: The Python API's spelling, which must not leak into the command's messages.
API_WORDS = ("TLSMode", "tls=", "port=", "allow_cleartext_auth", "local_hostname", "ssl_context")


def argv(port: int, *extra: str, tls: str | None = "starttls") -> list[str]:
    tls_option = ["--tls", tls] if tls else []
    return [
        "--server",
        "127.0.0.1",
        "--port",
        str(port),
        *tls_option,
        "--from",
        "a@x.example",
        "--to",
        "b@x.example",
        *extra,
    ]


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``send``; assert exit 2 with one error line; return that line."""
    assert send_main(list(args), stdin=io.StringIO()) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1, captured.err
    [line] = lines
    assert line.startswith("smtpsubmit send: error: ")
    for word in API_WORDS:
        assert word not in line, (word, line)
    assert SECRET not in captured.err
    return line


@pytest.mark.parametrize(
    ("extra", "tls", "expected"),
    [
        (["--port", "70000"], "starttls", "--port must be from 1 to 65535, not 70000"),
        (["--port", "-1"], "starttls", "--port must be from 1 to 65535, not -1"),
        (["--port", "0"], "starttls", "--port must be from 1 to 65535, not 0"),
        (["--timeout", "-1"], "starttls", "--timeout must be a positive number of seconds"),
        (["--timeout", "0"], "starttls", "--timeout must be a positive number of seconds"),
        (["--timeout", "nan"], "starttls", "--timeout must be a positive number of seconds"),
        (["--ehlo", "bad_name"], "starttls", "--ehlo is not a valid EHLO name"),
        (["--ehlo", ""], "starttls", "--ehlo is not a valid EHLO name"),
        (["--server", ""], "starttls", "--server is empty"),
        (
            ["--cafile", "/nonexistent/ca.pem"],
            "starttls",
            "cannot use --cafile /nonexistent/ca.pem: No such file or directory",
        ),
        (
            ["--port", "2525"],
            None,
            "--port 2525 has no standard TLS mode: pass --tls implicit (like port 465), "
            "--tls starttls (like port 587) or",
        ),
        (
            ["--port", "587"],
            "implicit",
            "--port 587 is the STARTTLS submission port (RFC 6409, RFC 8314 3.3); implicit TLS "
            "is --port 465. Use --port 465, or --tls starttls on 587",
        ),
        (
            ["--port", "465"],
            "starttls",
            "--port 465 is implicit TLS (RFC 8314 3.3); --tls starttls there would not "
            "connect. Use --tls implicit (the default for 465), or --port 587 for STARTTLS",
        ),
    ],
)
def test_bad_option_is_one_line_in_the_commands_words(
    capsys: pytest.CaptureFixture[str],
    no_connection: Any,
    extra: list[str],
    tls: str | None,
    expected: str,
) -> None:
    line = usage_error(capsys, *argv(no_connection.port, tls=tls), *extra)
    assert expected in line


@pytest.mark.parametrize("password", ["", None])
def test_user_without_a_password_is_refused_naming_both(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_connection: Any,
    password: str | None,
) -> None:
    monkeypatch.setenv("SMTPSUBMIT_PASSWORD", "")
    extra = ["--user", USER]
    if password is not None:
        extra += ["--insecure-password-argv", password]
    line = usage_error(capsys, *argv(no_connection.port), *extra)
    assert "--user was given without a password (in $SMTPSUBMIT_PASSWORD)" in line


@pytest.mark.parametrize(
    ("content", "reason"), [(b"not a certificate\n", "no certificate"), (None, "Is a directory")]
)
def test_unusable_cafile_is_named(
    capsys: pytest.CaptureFixture[str],
    no_connection: Any,
    tmp_path: Path,
    content: bytes | None,
    reason: str,
) -> None:
    path = tmp_path / "ca.pem"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    line = usage_error(capsys, *argv(no_connection.port), "--cafile", str(path))
    assert f"cannot use --cafile {path}: " in line
    assert reason in line


def test_bad_port_is_checked_before_the_password_prompt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_connection: Any
) -> None:
    monkeypatch.delenv("SMTPSUBMIT_PASSWORD", raising=False)
    line = usage_error(capsys, *argv(no_connection.port), "--port", "70000", "--user", USER)
    assert "--port must be from 1 to 65535" in line  # not "no password for ..."


def test_cleartext_auth_refusal_says_which_option_allows_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, users={USER: SECRET}, allow_cleartext_auth=True)
    monkeypatch.setenv("SMTPSUBMIT_PASSWORD", SECRET)
    args = ["--server", server.host, "--port", str(server.port), "--tls", "insecure-cleartext"]
    args += ["--from", USER, "--to", "b@x.example", "--user", USER]
    assert send_main(args, stdin=io.StringIO()) == 3
    err = capsys.readouterr().err
    assert err.startswith("smtpsubmit send: CleartextAuthError: refusing to send credentials")
    assert "use --tls implicit or --tls starttls, or --allow-cleartext-auth" in err
    for word in API_WORDS:
        assert word not in err
    sent = [e.line for t in server.transcripts for e in t if e.direction == "client"]
    assert not any(line.upper().startswith(("AUTH", "MAIL")) for line in sent)


def test_verbose_output_never_shows_the_credentials(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    smtp_server_factory: SMTPServerFactory,
) -> None:
    """What the command itself prints around the session (warnings, errors, the log
    lines it formats) carries no password, in clear or in the AUTH encodings."""
    import base64

    server = smtp_server_factory(mode=Mode.PLAIN, users={USER: SECRET}, allow_cleartext_auth=True)
    base = ["--server", server.host, "--port", str(server.port), "--tls", "insecure-cleartext"]
    base += ["--from", USER, "--to", "b@x.example", "--user", USER, "--allow-cleartext-auth"]
    encodings = [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),  # LOGIN's password line
        base64.b64encode(f"\0{USER}\0{SECRET}".encode()).decode(),  # PLAIN
    ]
    runs = [
        [*base, "-v", "--insecure-password-argv", SECRET],
        [*base, "-v", "--insecure-password-argv", SECRET, "--port", "70000"],
        [*base, "-v", "--insecure-password-argv", SECRET, "--ehlo", "bad name"],
    ]
    monkeypatch.delenv("SMTPSUBMIT_PASSWORD", raising=False)
    codes = [send_main(run, stdin=io.StringIO()) for run in runs]
    assert codes == [0, 2, 2]
    captured = capsys.readouterr()
    assert "AUTH" in captured.out  # the session was shown
    for text in encodings:
        assert text not in captured.out + captured.err


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMTPSUBMIT_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "smtpsubmit", "send", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--port", "70000"], "--port must be from 1 to 65535, not 70000"),
        (["--cafile", "/nonexistent/ca.pem"], "cannot use --cafile /nonexistent/ca.pem"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds"),
    ],
)
def test_as_a_process_a_bad_option_exits_2_with_one_line(
    no_connection: Any, extra: list[str], expected: str
) -> None:
    """The reported case: ``send --port 70000`` printed a 48-line traceback, exit 1 (the
    code for "some recipients refused")."""
    result = _run(*argv(no_connection.port), *extra)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
