"""``--state-dir``: a CA kept across restarts (``ServerCertificates(directory=...)``) and
captured messages written to a Maildir."""

from __future__ import annotations

import mailbox
import re
import signal
import smtplib
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fake_smtp_helpers import LineReader

from smtpsubmit.testing import FakeSMTPServer, Mode, ServerCertificates
from smtpsubmit.testing._maildir import MaildirWriter, trace_fields

BOUND = 20.0


def _send(server_port: int, context: ssl.SSLContext, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server_port, timeout=5) as client:
        client.starttls(context=context)
        client.login("u", "p")
        client.sendmail("app@example.com", ["dev@example.com"], data)


def test_a_kept_directory_gives_the_same_ca_and_certificate_to_the_next_run(
    tmp_path: Path,
) -> None:
    first = ServerCertificates(directory=tmp_path / "tls")
    first.close()  # a kept directory survives close()
    files = {p.name: p.read_bytes() for p in (tmp_path / "tls").iterdir()}
    assert sorted(files) == ["ca-key.pem", "ca.pem", "server.pem"]
    for private in ("ca-key.pem", "server.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / private).stat().st_mode) == 0o600

    second = ServerCertificates(directory=tmp_path / "tls")
    assert {p.name: p.read_bytes() for p in (tmp_path / "tls").iterdir()} == files
    # A client set up against the first run's ca.pem talks to the second run's server.
    trusting_first = ssl.create_default_context(cafile=first.ca_pem_path)
    with FakeSMTPServer(users={"u": "p"}, certificates=second).run_in_thread() as server:
        _send(server.port, trusting_first, b"Subject: kept\r\n\r\nhi\r\n")
        assert server.wait_for_messages(1)[0].tls


def test_new_names_reissue_the_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    ServerCertificates(directory=tmp_path)
    ca, server_pem = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "server.pem").read_bytes()
    again = ServerCertificates(directory=tmp_path, extra_names=("smtp.example.com",))
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert (tmp_path / "server.pem").read_bytes() != server_pem
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    context.check_hostname = False  # the name is checked below, on the certificate itself
    with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, users={"u": "p"}, certificates=again
    ).run_in_thread() as server:
        with smtplib.SMTP_SSL("127.0.0.1", server.port, context=context, timeout=5) as client:
            assert client.sock is not None
            peer = client.sock.getpeercert()
    assert ("DNS", "smtp.example.com") in peer["subjectAltName"]


def test_a_directory_without_the_ca_key_gets_a_new_ca_and_certificate(tmp_path: Path) -> None:
    ServerCertificates(directory=tmp_path)
    old_ca = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "ca-key.pem").unlink()
    ServerCertificates(directory=tmp_path)
    assert (tmp_path / "ca.pem").read_bytes() != old_ca
    # The server certificate is the new CA's, not the old one's.
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with FakeSMTPServer(
        users={"u": "p"}, certificates=ServerCertificates(directory=tmp_path)
    ).run_in_thread() as server:
        _send(server.port, context, b"Subject: new\r\n\r\n")


def test_maildir_delivery_writes_one_file_in_new_with_trace_fields(tmp_path: Path) -> None:
    writer = MaildirWriter(tmp_path / "Maildir", hostname="fake-smtp.localhost")
    assert {p.name for p in (tmp_path / "Maildir").iterdir()} == {"new", "cur", "tmp"}
    data = b"Subject: one\r\nBcc: hidden@example.com\r\n\r\nline 1\r\nline 2\r\n"
    with FakeSMTPServer(users={"u": "p"}, on_message=writer.deliver).run_in_thread() as server:
        _send(server.port, server.client_ssl_context(), data)
        [captured] = server.wait_for_messages(1)
    [path] = (tmp_path / "Maildir" / "new").iterdir()
    content = path.read_bytes()
    return_path, received, body = content.split(b"\n", 2)
    assert return_path == b"Return-Path: <app@example.com>"
    assert received.startswith(b"Received: from ")
    assert f"id {captured.queue_id};".encode() in received
    assert re.search(rb"\(using TLSv1\.[23], authenticated as u\)", received)
    assert body == data.replace(b"\r\n", b"\n")  # LF line ends, the message untouched
    [message] = mailbox.Maildir(str(tmp_path / "Maildir"), create=False)
    assert message["Subject"] == "one"


def test_trace_fields_cannot_be_split_by_client_chosen_text() -> None:
    from email.message import EmailMessage

    from smtpsubmit.testing import CapturedMessage

    captured = CapturedMessage(
        queue_id="ABC",
        mail_from="a@x\r\nX-Injected: 1",
        mail_from_params={},
        recipients=(),
        data=b"",
        message=EmailMessage(),
        via="DATA",
        tls=False,
        tls_version=None,
        auth_identity="me\nX-Evil: yes",
        client_name="host\r\nX-Other: 2",
        peer=("127.0.0.1", 1),
        transcript=(),
    )
    fields = trace_fields(captured, "fake\nX-Host: 3").decode()
    assert fields.count("\n") == 2
    assert fields.endswith("\n")
    assert "X-Injected: 1" in fields.splitlines()[0]  # kept as text, on the same line
    assert all(line.startswith(("Return-Path: ", "Received: ")) for line in fields.splitlines())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_with_a_state_dir_keeps_its_ca_and_writes_the_maildir(tmp_path: Path) -> None:
    def serve_once() -> tuple[str, int]:
        code = "import sys; from smtpsubmit.testing._cli import serve_main; sys.exit(serve_main())"
        args = ["--starttls", "0", "--user", "u:p", "--state-dir", str(tmp_path)]
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            output = LineReader(proc.stdout, timeout=BOUND)
            output.expect("Press Ctrl-C to stop.")
            header = "\n".join(output.seen)
            ca = re.search(r"CA certificate: (\S+) \(kept across restarts\)", header)
            assert ca, header
            assert f"Maildir: {tmp_path / 'Maildir'}" in header
            port = int(re.search(r"starttls\s+127\.0\.0\.1:(\d+)", header)[1])  # type: ignore[index]
            context = ssl.create_default_context(cafile=ca[1])
            _send(port, context, b"Subject: kept\r\n\r\nhi\r\n")
            output.expect("queued ")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=BOUND) == 0
            return ca[1], port
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    first_ca, _ = serve_once()
    ca_pem = Path(first_ca).read_bytes()
    second_ca, _ = serve_once()
    assert second_ca == first_ca == str(tmp_path / "tls" / "ca.pem")
    assert Path(second_ca).read_bytes() == ca_pem
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 2
