"""``system_trust_context()``: verification against the operating system's trust store.

How this is tested without touching the machine's store: on Linux, truststore verifies
with OpenSSL and the system's CA locations, which OpenSSL takes from ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` when they are set (read again at every handshake). The test points them
at a temporary "system store" holding only the fake server's CA, then makes real
handshakes: the system context trusts the server, certifi's default does not (the CA is in
the system store only), and the system context refuses the server once the store is
certifi's bundle instead (so it really reads the store, it does not trust everything).
Nothing under /etc is written, and no root is needed.
"""

from __future__ import annotations

import ssl
import sys
from email.message import EmailMessage
from pathlib import Path

import certifi
import pytest

import smtpsubmit
from smtpsubmit.policy import default_ssl_context
from smtpsubmit.testing import FakeSMTPServer, Mode

truststore = pytest.importorskip("truststore")

pytestmark = pytest.mark.anyio


@pytest.fixture
def system_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty system store (a bundle file and a hashed directory) this test fills."""
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_text("")
    (tmp_path / "certs").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "certs"))
    return bundle


def fill(store: Path, pem: str) -> None:
    """Make the system store hold exactly the certificates in ``pem``."""
    store.write_bytes(Path(pem).read_bytes())


def test_the_context_is_truststores_with_the_librarys_policy() -> None:
    context = smtpsubmit.system_trust_context()
    assert isinstance(context, truststore.SSLContext)
    assert isinstance(context, ssl.SSLContext)  # so every entry point accepts it
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("mode", [Mode.IMPLICIT_TLS, Mode.STARTTLS])
async def test_a_ca_in_the_system_store_is_trusted_and_certifi_does_not_know_it(
    mode: Mode, system_store: Path, message: EmailMessage
) -> None:
    tls = "implicit" if mode is Mode.IMPLICIT_TLS else "starttls"
    async with FakeSMTPServer(mode=mode) as server:
        fill(system_store, server.ca_pem_path)
        result = await smtpsubmit.send(
            message,
            host="localhost",
            port=server.port,
            tls=tls,
            ssl_context=smtpsubmit.system_trust_context(),
        )
        assert result.accepted
        with pytest.raises(smtpsubmit.CertificateError):
            await smtpsubmit.send(
                message,
                host="localhost",
                port=server.port,
                tls=tls,
                ssl_context=default_ssl_context(),
            )
        # The same system context refuses the server once its CA left the store.
        fill(system_store, certifi.where())
        with pytest.raises(smtpsubmit.CertificateError):
            await smtpsubmit.send(
                message,
                host="localhost",
                port=server.port,
                tls=tls,
                ssl_context=smtpsubmit.system_trust_context(),
            )
    assert len(server.messages) == 1


async def test_the_host_name_is_still_checked(system_store: Path, message: EmailMessage) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        fill(system_store, server.ca_pem_path)
        server_name = "not-in-the-certificate.example"
        with pytest.raises(smtpsubmit.CertificateError):
            await smtpsubmit.send(
                message,
                host="127.0.0.1",
                port=server.port,
                tls="implicit",
                server_hostname=server_name,
                ssl_context=smtpsubmit.system_trust_context(),
            )
    assert server.messages == []


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "truststore", None)
    with pytest.raises(ImportError, match=r"pip install 'smtpsubmit\[truststore\]'"):
        smtpsubmit.system_trust_context()
