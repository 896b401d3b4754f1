"""``--trust system``: send and probe verify against the operating system's trust store.

The "system store" is a temporary bundle named by ``SSL_CERT_FILE`` (OpenSSL's variable,
which truststore honours on Linux; see tests/client/test_truststore.py): no file under /etc
is touched.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from smtpsubmit.cli import probe_main, send_main
from smtpsubmit.testing import ThreadedSMTPServer

pytest.importorskip("truststore")


@pytest.fixture
def system_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(b"")
    (tmp_path / "certs").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "certs"))
    return bundle


def send(server: ThreadedSMTPServer, *extra: str) -> int:
    argv = ["--server", "localhost", "--port", str(server.port), "--tls", "implicit", *extra]
    argv += ["--from", "me@example.com", "--to", "you@example.org"]
    return send_main(argv, stdin=io.StringIO())


def test_send_trusts_a_ca_of_the_system_store_only_with_trust_system(
    smtps_server: ThreadedSMTPServer, system_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system_store.write_bytes(Path(smtps_server.ca_pem_path).read_bytes())
    assert send(smtps_server) == 3  # certifi's CAs: the fake CA is not among them
    assert "CertificateError" in capsys.readouterr().err
    assert send(smtps_server, "--trust", "system") == 0
    assert len(smtps_server.messages) == 1


def test_trust_system_and_cafile_exclude_each_other(
    smtps_server: ThreadedSMTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(smtps_server, "--trust", "system", "--cafile", smtps_server.ca_pem_path) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_probe_trust_system_verifies_with_the_system_store(
    smtps_server: ThreadedSMTPServer, system_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system_store.write_bytes(Path(smtps_server.ca_pem_path).read_bytes())
    argv = ["localhost", "--port", str(smtps_server.port), "--tls", "implicit", "--json"]
    assert probe_main([*argv, "--trust", "system"]) == 0
    assert '"verified": true' in capsys.readouterr().out
    assert probe_main(argv) == 1
    assert "certificate-untrusted" in capsys.readouterr().out
