"""The standalone server (``serve_main``) and the public API surface."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_smtp_helpers import LineReader

import smtpsubmit.testing
from smtpsubmit.testing._cli import serve_main

#: Seconds for any one step of a child process; far above what each takes.
BOUND = 20.0


@contextlib.contextmanager
def _serving(*args: str, sigint: str = "default_int_handler") -> Iterator[Served]:
    """Run ``serve`` in a child process until its header is printed; end it on exit whatever
    happened (a failed assertion, a signal it ignores), killing it if it must.

    The child's SIGINT disposition is set explicitly (``signal.<sigint>``): a child inherits
    an ignored SIGINT from its parent (pytest run in the background, some CI runners), and
    a test of Ctrl-C must not depend on that.
    """
    code = (
        f"import signal, sys; signal.signal(signal.SIGINT, signal.{sigint}); "
        "from smtpsubmit.testing._cli import serve_main; sys.exit(serve_main())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        output = LineReader(proc.stdout, timeout=BOUND)
        output.expect("Press Ctrl-C to stop.")
        yield Served(proc, output, "\n".join(output.seen))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@dataclasses.dataclass
class Served:
    """A ``serve`` child process, its output and the header it printed."""

    proc: subprocess.Popen[str]
    output: LineReader
    header: str

    @property
    def ca_dir(self) -> Path:
        return Path(re.search(r"CA certificate: (\S+)", self.header)[1]).parent  # type: ignore[index]

    def port(self, mode: str) -> int:
        return int(re.search(rf"{mode}\s+127\.0\.0\.1:(\d+)", self.header)[1])  # type: ignore[index]

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig``; the exit status, or a failure (after killing it) if it did not exit."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"serve ignored {sig.name} for {BOUND} s (killed)")


def test_serve_prints_its_details_serves_and_stops_on_ctrl_c() -> None:
    args = ("--user", "cli@example.com:pw", "--starttls", "0", "--implicit-tls", "0",
            "--disable", "CHUNKING")  # fmt: skip
    with _serving(*args) as served:
        assert re.search(r"implicit_tls\s+127\.0\.0\.1:\d+", served.header)
        assert "user: cli@example.com  password: pw" in served.header
        ca_path = str(served.ca_dir / "ca.pem")

        context = ssl.create_default_context(cafile=ca_path)
        with smtplib.SMTP("127.0.0.1", served.port("starttls"), timeout=5) as client:
            client.starttls(context=context)
            assert not client.has_extn("chunking")
            client.login("cli@example.com", "pw")
            client.sendmail("a@x", ["b@x"], b"Subject: cli\r\n\r\nhi\r\n")
        queued = served.output.expect("queued ")
        assert re.match(r"queued [0-9A-F]{12}: from <a@x> to <b@x> \(\d+ octets", queued)
        assert "auth=cli@example.com" in queued
        assert served.stop(signal.SIGINT) == 0
        assert not served.ca_dir.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_serve_stopped_by_a_signal_removes_its_temporary_ca(sig: str) -> None:
    with _serving("--plain", "0") as served:
        assert served.ca_dir.is_dir()
        assert served.stop(getattr(signal, sig)) == 0
        assert not served.ca_dir.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_keeps_a_sigint_it_was_started_with_ignored() -> None:
    # Like nohup or a shell's background job: SIG_IGN inherited means "do not stop on it".
    with _serving("--plain", "0", sigint="SIG_IGN") as served:
        served.proc.send_signal(signal.SIGINT)  # an ignored signal is discarded at once
        with socket.create_connection(("127.0.0.1", served.port("plain")), timeout=5) as sock:
            assert sock.recv(4) == b"220 "
        assert served.proc.poll() is None
        assert served.stop(signal.SIGTERM) == 0
        assert not served.ca_dir.exists()


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
