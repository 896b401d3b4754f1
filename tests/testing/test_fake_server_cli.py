"""The standalone server (``serve_main``) and the public API surface."""

from __future__ import annotations

import re
import signal
import smtplib
import ssl
import subprocess
import sys

import pytest

import smtpsubmit.testing
from smtpsubmit.testing._cli import serve_main


def test_serve_prints_its_details_serves_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from smtpsubmit.testing._cli import serve_main; sys.exit(serve_main())",
            "--user", "cli@example.com:pw",
            "--starttls", "0",
            "--implicit-tls", "0",
            "--disable", "CHUNKING",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        header: list[str] = []
        while not header or header[-1] != "Press Ctrl-C to stop.":
            line = proc.stdout.readline()
            assert line, f"server exited early: {header}"
            header.append(line.strip())
        text = "\n".join(header)
        starttls_port = int(re.search(r"starttls\s+127\.0\.0\.1:(\d+)", text)[1])  # type: ignore[index]
        assert re.search(r"implicit_tls\s+127\.0\.0\.1:\d+", text)
        ca_path = re.search(r"CA certificate: (\S+)", text)[1]  # type: ignore[index]
        assert "user: cli@example.com  password: pw" in text

        context = ssl.create_default_context(cafile=ca_path)
        with smtplib.SMTP("127.0.0.1", starttls_port, timeout=5) as client:
            client.starttls(context=context)
            assert not client.has_extn("chunking")
            client.login("cli@example.com", "pw")
            client.sendmail("a@x", ["b@x"], b"Subject: cli\r\n\r\nhi\r\n")
        queued = proc.stdout.readline()
        assert re.match(r"queued [0-9A-F]{12}: from <a@x> to <b@x> \(\d+ octets", queued)
        assert "auth=cli@example.com" in queued
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    if proc.stdout is not None:
        proc.stdout.close()


def test_serve_rejects_bad_credentials_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        serve_main(["--user", "no-colon"])
    assert info.value.code == 2
    assert "NAME:PASSWORD" in capsys.readouterr().err


def test_public_names_are_exactly_these() -> None:
    assert sorted(smtpsubmit.testing.__all__) == [
        "ALL_EXTENSIONS",
        "CapturedMessage",
        "Extension",
        "FakeSMTPServer",
        "Fault",
        "FaultKind",
        "FaultNotFiredError",
        "Mode",
        "Recipient",
        "SMTPServerFactory",
        "ServerCertificates",
        "ServerConfig",
        "Target",
        "ThreadedSMTPServer",
        "TranscriptEntry",
    ]
    for name in smtpsubmit.testing.__all__:
        obj = getattr(smtpsubmit.testing, name)
        if isinstance(obj, type):
            assert obj.__doc__, name


def test_plugin_module_does_not_import_trustme_eagerly() -> None:
    # pytest loads the plugin in every project that installs smtpsubmit, trustme or not.
    code = (
        "import sys, smtpsubmit.testing._plugin; "
        "assert 'trustme' not in sys.modules, 'trustme imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
