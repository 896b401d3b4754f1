"""``python -m smtpsubmit send|probe`` as real processes: help, environment, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from smtpsubmit.cli._report import JSON_SCHEMA
from smtpsubmit.testing import SMTPServerFactory, ThreadedSMTPServer

from .helpers import schema_errors


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtpsubmit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "send",
            [
                "--server HOST",
                "--password-env VAR",
                "--insecure-password-argv",
                "exit status:",
                "5  outcome unknown",
            ],
        ),
        (
            "probe",
            ["--json", "--cafile PEM", "starttls-injection", "exit status: 0", "2 usage error"],
        ),
        ("serve", ["--starttls PORT"]),
    ],
)
def test_subcommand_help(command: str, expected: list[str]) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout


def test_top_level_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "send", "probe"):
        assert command in result.stdout


def test_real_send_takes_the_password_from_the_environment_and_never_shows_it(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    secret = "Tr0ub4dor&3-not-in-output"
    server = smtp_server_factory(users={"alice@example.com": secret})
    result = run(
        "send",
        "--server",
        server.host,
        "--port",
        str(server.port),
        "--tls",
        "starttls",
        "--cafile",
        server.ca_pem_path,
        "--user",
        "alice@example.com",
        "--to",
        "bob@example.com",
        "--subject",
        "from a subprocess",
        "-v",
        env={"SMTPSUBMIT_PASSWORD": secret},
    )
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert "C: AUTH " in result.stdout
    assert "C: QUIT" in result.stdout
    [msg] = server.wait_for_messages(1)
    assert msg.auth_identity == "alice@example.com"
    assert msg.message["Subject"] == "from a subprocess"


def test_real_send_without_a_password_or_terminal_is_a_usage_error(
    smtp_server: ThreadedSMTPServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SMTPSUBMIT_PASSWORD"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "smtpsubmit",
            "send",
            "--server",
            smtp_server.host,
            "--port",
            str(smtp_server.port),
            "--tls",
            "starttls",
            "--user",
            "u@example.com",
            "--to",
            "b@example.com",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "no password for u@example.com" in result.stderr
    assert smtp_server.transcripts == []  # refused before connecting


def test_real_probe_json(smtps_server: ThreadedSMTPServer) -> None:
    result = run(
        "probe",
        smtps_server.host,
        "--port",
        str(smtps_server.port),
        "--tls",
        "implicit",
        "--cafile",
        smtps_server.ca_pem_path,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert schema_errors(report, JSON_SCHEMA) == []
    assert report["ports"][0]["verdict"] == "ok"
