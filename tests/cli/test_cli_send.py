"""``send`` in-process against the fake server: message, TLS modes, errors, exit codes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from smtpsubmit.cli import send_main
from smtpsubmit.testing import Fault, Mode, SMTPServerFactory, ThreadedSMTPServer

from .helpers import closed_port

USER, PASSWORD = "user@example.com", "password"  # the fixtures' DEFAULT_USERS


class TTY(io.StringIO):
    """A stdin that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def argv_for(server: ThreadedSMTPServer, *extra: str, cafile: bool = True) -> list[str]:
    tls = {Mode.IMPLICIT_TLS: "implicit", Mode.STARTTLS: "starttls"}.get(
        server.mode, "insecure-cleartext"
    )
    trust = ["--cafile", server.ca_pem_path] if cafile else []
    return ["--server", server.host, "--port", str(server.port), "--tls", tls, *trust, *extra]


def send(*argv: str, stdin: io.StringIO | None = None) -> int:
    return send_main(list(argv), stdin=stdin or io.StringIO())


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTPSUBMIT_PASSWORD", PASSWORD)


@pytest.mark.usefixtures("password_env")
def test_sends_over_starttls_with_password_from_env_and_attachments(
    capsys: pytest.CaptureFixture[str], smtp_server: ThreadedSMTPServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 not really")
    notes = tmp_path / "notes.unknownext"
    notes.write_bytes(b"\x00\x01")
    code = send(
        *argv_for(smtp_server, "--user", USER),
        "--from",
        "me@example.com",
        "--to",
        "a@example.org",
        "--to",
        "b@example.org",
        "--cc",
        "c@example.org",
        "--bcc",
        "hidden@example.org",
        "--subject",
        "Quarterly",
        "--body",
        "Numbers attached.",
        "--header",
        "X-Ticket: 42",
        "--attach",
        str(pdf),
        "--attach",
        str(notes),
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    [msg] = smtp_server.wait_for_messages(1)
    assert (
        out == f"sent as {msg.queue_id} to 4 recipient(s): 250 2.0.0 Ok: queued as {msg.queue_id}\n"
    )
    assert msg.tls
    assert msg.auth_identity == USER
    assert msg.mail_from == "me@example.com"
    assert msg.rcpt_to == ["a@example.org", "b@example.org", "c@example.org", "hidden@example.org"]
    assert b"hidden@example.org" not in msg.data  # Bcc stays in the envelope
    assert msg.message["Subject"] == "Quarterly"
    assert msg.message["X-Ticket"] == "42"
    assert msg.message["Message-ID"].endswith("@example.com>")
    assert msg.message.get_body().get_content() == "Numbers attached.\n"
    parts = {p.get_filename(): p.get_content_type() for p in msg.message.iter_attachments()}
    assert parts == {
        "report.pdf": "application/pdf",
        "notes.unknownext": "application/octet-stream",
    }


@pytest.mark.usefixtures("password_env")
def test_verbose_prints_a_redacted_transcript_of_the_whole_session(
    capsys: pytest.CaptureFixture[str], smtp_server: ThreadedSMTPServer
) -> None:
    code = send(*argv_for(smtp_server, "--user", USER, "--to", "a@example.org", "-v"))
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("S: 220 ")
    verbs = [line.split(" ")[1] for line in lines if line.startswith("C: ")]
    assert verbs == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "AUTH",
        "<redacted>",
        "<redacted>",
        "MAIL",
        "RCPT",
        "BDAT",
        "QUIT",
    ]
    assert any(line.startswith("*  TLS established: TLSv1.") for line in lines)
    assert any(line.startswith("C: AUTH ") and "<redacted>" in line for line in lines)
    assert PASSWORD not in out + err
    assert lines[-1].startswith("sent as ")


@pytest.mark.usefixtures("password_env")
def test_verbose_shows_the_transaction_when_it_fails(
    capsys: pytest.CaptureFixture[str], smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(
        users={USER: PASSWORD}, faults=[Fault.reply("MAIL", code=553, text="Sender rejected")]
    )
    code = send(*argv_for(server, "--user", USER, "--to", "a@example.org", "-v"))
    out, err = capsys.readouterr()
    assert code == 3
    assert "C: MAIL FROM:<user@example.com>" in out
    assert "S: 553 Sender rejected" in out
    assert err == "smtpsubmit send: PermanentReplyError: sender refused: 553 Sender rejected\n"


def test_implicit_tls_on_trio_with_password_prompted_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
    smtps_server: ThreadedSMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SMTPSUBMIT_PASSWORD", raising=False)
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    code = send(
        *argv_for(smtps_server, "--user", USER, "--to", "a@example.org", "--backend", "trio"),
        stdin=TTY(),
    )
    assert code == 0, capsys.readouterr()
    assert prompts == [f"password for {USER}: "]
    assert smtps_server.wait_for_messages(1)[0].auth_identity == USER


def test_password_env_names_the_variable_and_body_comes_from_stdin(
    smtp_server: ThreadedSMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SMTP_SECRET", PASSWORD)
    code = send(
        *argv_for(smtp_server, "--user", USER, "--password-env", "MY_SMTP_SECRET"),
        "--to",
        "a@example.org",
        "--body-file",
        "-",
        stdin=io.StringIO("from stdin\n"),
    )
    assert code == 0
    [msg] = smtp_server.wait_for_messages(1)
    assert msg.message.get_body().get_content() == "from stdin\n"


def test_insecure_password_argv_works_and_warns(
    capsys: pytest.CaptureFixture[str], smtp_server: ThreadedSMTPServer, tmp_path: Path
) -> None:
    body = tmp_path / "body.txt"
    body.write_text("from a file\n", encoding="utf-8")
    code = send(
        *argv_for(smtp_server, "--user", USER, "--insecure-password-argv", PASSWORD),
        "--to",
        "a@example.org",
        "--body-file",
        str(body),
    )
    assert code == 0
    assert "the password was given on the command line" in capsys.readouterr().err
    assert smtp_server.wait_for_messages(1)[0].message.get_body().get_content() == "from a file\n"


@pytest.mark.usefixtures("password_env")
def test_partial_refusal_lists_the_refused_and_exits_1(
    capsys: pytest.CaptureFixture[str], smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(
        users={USER: PASSWORD},
        faults=[Fault.reply("RCPT", nth=2, code=550, enhanced="5.1.1", text="No such user")],
    )
    code = send(*argv_for(server, "--user", USER), "--to", "a@x.example", "--to", "b@x.example")
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("sent as ")
    assert "to 1 recipient(s)" in out
    assert err == "refused: b@x.example: 550 5.1.1 No such user\n"


@pytest.mark.parametrize(
    ("fault", "code", "error"),
    [
        (Fault.reply("RCPT", code=550, text="No"), 3, "RecipientsRefusedError: all recipients"),
        (Fault.reply("RCPT", code=450, text="Later"), 4, "RecipientsRefusedError"),
        (Fault.reply("MAIL", code=451, text="Try later"), 4, "TransientReplyError"),
        (Fault.disconnect("END_OF_DATA"), 5, "OutcomeUnknownError: the connection failed"),
        (Fault.delay("GREETING", seconds=30), 4, "TimeoutError: greeting with 127.0.0.1"),
    ],
)
def test_failures_map_to_documented_exit_codes(
    capsys: pytest.CaptureFixture[str],
    smtp_server_factory: SMTPServerFactory,
    fault: Fault,
    code: int,
    error: str,
) -> None:
    server = smtp_server_factory(faults=[fault])
    assert (
        send(*argv_for(server, "--to", "a@x.example", "--from", "me@x.example", "--timeout", "0.5"))
        == code
    )
    err = capsys.readouterr().err
    assert f"smtpsubmit send: {error}" in err
    assert err.strip().splitlines()[-1].startswith("smtpsubmit send: ")


def test_untrusted_certificate_fails_with_one_line(
    capsys: pytest.CaptureFixture[str], smtp_server: ThreadedSMTPServer
) -> None:
    code = send(
        *argv_for(smtp_server, "--to", "a@x.example", "--from", "m@x.example", cafile=False)
    )
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("smtpsubmit send: CertificateError: TLS handshake: certificate verif")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("password_env")
def test_stripped_starttls_sends_no_credentials(
    capsys: pytest.CaptureFixture[str], smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(users={USER: PASSWORD}, faults=[Fault.strip_starttls()])
    code = send(*argv_for(server, "--user", USER, "--to", "a@x.example"))
    assert code == 3
    assert "StartTLSUnavailableError" in capsys.readouterr().err
    sent = [e.line for t in server.transcripts for e in t if e.direction == "client"]
    assert not any(line.upper().startswith(("AUTH", "MAIL")) for line in sent)


@pytest.mark.usefixtures("password_env")
def test_cleartext_auth_needs_its_own_flag(
    capsys: pytest.CaptureFixture[str], smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, users={USER: PASSWORD}, allow_cleartext_auth=True)
    argv = argv_for(server, "--user", USER, "--to", "a@x.example")
    assert send(*argv) == 3
    assert "CleartextAuthError" in capsys.readouterr().err
    assert send(*argv, "--allow-cleartext-auth") == 0
    assert server.wait_for_messages(1)[0].auth_identity == USER


def test_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = send(
        "--server",
        "127.0.0.1",
        "--port",
        str(closed_port()),
        "--tls",
        "starttls",
        "--to",
        "a@x.example",
        "--from",
        "m@x.example",
    )
    assert code == 3
    assert capsys.readouterr().err.startswith("smtpsubmit send: ConnectError: connect to ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "a@x.example"], "required: --server"),
        (["--server", "h", "--to", "a@x.example"], "--from is required"),
        (["--server", "h", "--from", "m@x.example"], "at least one --to"),
        (
            ["--server", "h", "--from", "m@x.example", "--to", "a@x.example", "--user", "u"],
            "no password for u: set $SMTPSUBMIT_PASSWORD",
        ),
        (
            ["--server", "h", "--port", "2525", "--from", "m@x.example", "--to", "a@x.example"],
            "error: --port 2525 has no standard TLS mode: pass --tls implicit",
        ),
        (
            ["--server", "h", "--tls", "implicit", "--from", "m@x.example", "--to", "a@x.example"],
            "error: --port 587 is the STARTTLS submission port",
        ),
        (
            [
                "--server",
                "h",
                "--cafile",
                "/nonexistent.pem",
                "--from",
                "m@x.example",
                "--to",
                "a@x.example",
            ],
            "error: cannot use --cafile /nonexistent.pem: No such file or directory\n",
        ),
        (
            [
                "--server",
                "h",
                "--from",
                "m@x.example",
                "--to",
                "a@x.example",
                "--attach",
                "/nonexistent",
            ],
            "cannot read --attach file",
        ),
        (
            [
                "--server",
                "h",
                "--from",
                "m@x.example",
                "--to",
                "a@x.example",
                "--body-file",
                "/nonexistent",
            ],
            "cannot read --body-file",
        ),
        (
            [
                "--server",
                "h",
                "--from",
                "m@x.example",
                "--to",
                "a@x.example",
                "--header",
                "nocolon",
            ],
            "--header needs 'Name: value'",
        ),
        (
            ["--server", "h", "--from", "m@x.example", "--to", "a@x.example", "--ehlo", "a b"],
            "error: --ehlo is not a valid EHLO name: malformed EHLO domain",
        ),
        (
            ["--server", "h", "--from", "m@x.example", "--to", "a@x.example", "--timeout", "-1"],
            "error: --timeout must be a positive number of seconds, not -1.0",
        ),
        (["--server", "h", "--body", "x", "--body-file", "-"], "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2_before_any_connection(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("SMTPSUBMIT_PASSWORD", raising=False)
    assert send(*argv) == 2
    assert message in capsys.readouterr().err


def test_header_injection_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = send(
        "--server",
        "h",
        "--from",
        "m@x.example",
        "--to",
        "a@x.example",
        "--subject",
        "hi\r\nBcc: evil@x.example",
    )
    assert code == 2
    assert "invalid header" in capsys.readouterr().err


@pytest.mark.parametrize(("retry", "status", "mails"), [("1", 4, 1), ("2", 0, 2)])
def test_retry_tries_a_4xx_recipient_again(
    capsys: pytest.CaptureFixture[str],
    smtp_server_factory: SMTPServerFactory,
    retry: str,
    status: int,
    mails: int,
) -> None:
    server = smtp_server_factory(faults=[Fault.reply("RCPT", code=451, text="Later")])
    code = send(
        *argv_for(server, "--retry", retry),
        "--from", "me@example.com", "--to", "a@example.org", "--body", "x",
    )  # fmt: skip
    capsys.readouterr()
    assert code == status  # 4: temporary failure, try later
    seen = [e.line.split(" ")[0] for t in server.transcripts for e in t if e.direction == "client"]
    assert seen.count("MAIL") == mails


def test_retry_of_zero_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = send("--server", "127.0.0.1", "--port", "465", "--retry", "0", "--to", "a@b.example")
    assert code == 2
    assert "--retry" in capsys.readouterr().err


def test_dkim_options_sign_the_message(
    capsys: pytest.CaptureFixture[str], smtps_server: ThreadedSMTPServer, tmp_path: Path
) -> None:
    from dkim_keys import DOMAIN, SELECTOR, ed25519_pem, signer, verifies

    key = tmp_path / "dkim.pem"
    key.write_bytes(ed25519_pem())
    dkim = ["--dkim-domain", DOMAIN, "--dkim-selector", SELECTOR, "--dkim-key", str(key)]
    code = send(*argv_for(smtps_server), "--from", "me@example.com", "--to", "a@example.org", *dkim)
    assert code == 0, capsys.readouterr().err
    [captured] = smtps_server.wait_for_messages(1)
    assert captured.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert verifies(captured.data, signer("ed25519"))


@pytest.mark.parametrize(
    ("dkim", "message"),
    [
        (["--dkim-domain", "example.com"], "--dkim-domain, --dkim-selector and --dkim-key go"),
        (
            ["--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "/nonexistent"],
            "error: cannot read --dkim-key: No such file or directory",
        ),
        (
            ["--dkim-domain", "example.com", "--dkim-selector", "a b", "--dkim-key", "KEY"],
            "error: --dkim-selector must be a DNS label",
        ),
        (
            ["--dkim-domain", "example.com", "--dkim-selector", "s", "--dkim-key", "NOT-A-KEY"],
            "error: --dkim-key is neither a PEM private key",
        ),
    ],
)
def test_dkim_usage_errors_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dkim: list[str], message: str
) -> None:
    from dkim_keys import rsa_pem

    (tmp_path / "key.pem").write_bytes(rsa_pem())
    (tmp_path / "junk.pem").write_bytes(b"junk")
    paths = {"KEY": str(tmp_path / "key.pem"), "NOT-A-KEY": str(tmp_path / "junk.pem")}
    dkim = [paths.get(arg, arg) for arg in dkim]
    argv = ["--server", "h", "--port", "465", "--from", "m@x.example", "--to", "a@x.example"]
    assert send(*argv, *dkim) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "BEGIN" not in err
