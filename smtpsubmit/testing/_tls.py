"""TLS material for the fake server: a trustme CA and the certificates it issues.

By default everything is throwaway: a new CA per ``ServerCertificates``, its PEM file in a
temporary directory that ``close()`` removes. With ``directory=`` the CA and the server
certificate are kept there and reused by the next run, so a client configured once to
trust ``ca.pem`` keeps trusting the server across restarts (``serve --state-dir``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ["ServerCertificates"]

#: Names the server certificate is valid for (RFC 6125 reference identities).
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
#: The host name of the certificate used by the wrong-host drill.
WRONG_HOST = "wrong.example"
_CA_ORGANIZATION = "smtpsubmit fake server test CA"
#: Files of a kept directory: the CA certificate (for clients), the CA key (to issue the
#: server certificate again when its names change), the server key and certificate chain.
_CA_PEM, _CA_KEY, _SERVER_PEM = "ca.pem", "ca-key.pem", "server.pem"


class ServerCertificates:
    """A test CA, a server certificate for localhost/127.0.0.1/::1 (plus any
    ``extra_names``, e.g. ``("smtp.example.com",)`` to test code that connects by your real
    host name), and one for ``wrong.example`` from the same CA (for the hostname drill).

    Share one instance between servers (``FakeSMTPServer(certificates=...)``) so that a
    client trusting ``ca_pem_path`` trusts all of them.

    Without ``directory`` the CA is new and its PEM file temporary: ``close()`` deletes it
    (servers that created their own instance do so on exit). With ``directory`` (created
    if missing, mode 0700) the CA and the server certificate are written there on first
    use and loaded on the next: ``ca.pem``, ``ca-key.pem`` and ``server.pem`` (the server
    key and chain), private files mode 0600. The server certificate is issued again when
    the names differ from the stored one's. ``close()`` leaves that directory alone. The
    CA can sign a certificate for any name: trust it in your test clients only, never in
    a system or browser trust store.
    """

    def __init__(
        self,
        *,
        extra_names: tuple[str, ...] = (),
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        # Imported here: trustme is a test dependency, and importing smtpsubmit.testing (which
        # pytest does for the plugin in every project) must work without it.
        import trustme

        self.names: tuple[str, ...] = (*SERVER_NAMES, *extra_names)
        self._temporary = directory is None
        if directory is None:
            self._dir = tempfile.mkdtemp(prefix="smtpsubmit-ca-")
        else:
            self._dir = os.path.abspath(os.fspath(directory))
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
        #: Path of the CA certificate in PEM form, for non-Python clients (swaks, curl).
        self.ca_pem_path: str = os.path.join(self._dir, _CA_PEM)
        loaded = None if self._temporary else self._load_ca()
        self._ca = loaded or trustme.CA(organization_name=_CA_ORGANIZATION)
        if loaded is None:
            if not self._temporary:
                _write_private(os.path.join(self._dir, _CA_KEY), self._ca.private_key_pem.bytes())
            self._ca.cert_pem.write_to_path(self.ca_pem_path)
        server_pem = os.path.join(self._dir, _SERVER_PEM)
        if loaded is None or not _has_names(server_pem, self.names):
            cert = self._ca.issue_cert(*self.names)
            _write_private(server_pem, cert.private_key_and_cert_chain_pem.bytes())
        self._server_context = _server_context()
        self._server_context.load_cert_chain(server_pem)
        with open(server_pem, "rb") as file:
            self._server_cert_der = _first_certificate_der(file.read())
        wrong = self._ca.issue_cert(WRONG_HOST)
        self._wrong_context = _server_context()
        wrong.configure_cert(self._wrong_context)
        self._wrong_cert_der = _first_certificate_der(wrong.cert_chain_pems[0].bytes())

    def _certificate_der(self, *, wrong_host: bool = False) -> bytes:
        """The DER form of the certificate the server presents (or the wrong-host drill's
        one): what ``tls-server-end-point`` channel binding hashes (RFC 5929 4.1)."""
        return self._wrong_cert_der if wrong_host else self._server_cert_der

    def _load_ca(self) -> trustme.CA | None:
        import trustme

        try:
            with (
                open(self.ca_pem_path, "rb") as cert,
                open(os.path.join(self._dir, _CA_KEY), "rb") as key,
            ):
                return trustme.CA.from_pem(cert.read(), key.read())
        except FileNotFoundError:
            return None

    def server_ssl_context(self, *, wrong_host: bool = False) -> ssl.SSLContext:
        """The server-side context (or the wrong-host drill's one)."""
        return self._wrong_context if wrong_host else self._server_context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A new client context that verifies certificates against the test CA only."""
        # PROTOCOL_TLS_CLIENT verifies the chain and the host name, and loads no system CAs.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ca.configure_trust(ctx)
        return ctx

    def close(self) -> None:
        """Delete the temporary CA directory (a ``directory=`` one is kept)."""
        if self._temporary:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"ServerCertificates(ca_pem_path={self.ca_pem_path!r})"


def _server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # RFC 8996 deprecates TLS 1.0/1.1; RFC 8314 4.1 asks for TLS 1.2 or later.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` readable by its owner only, replacing ``path`` in one step."""
    partial = f"{path}.tmp"
    with contextlib.suppress(FileNotFoundError):  # left by a run that was killed
        os.remove(partial)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(partial, path)


def _first_certificate_der(pem: bytes) -> bytes:
    """The DER form of the first certificate in ``pem`` (a key before it is skipped)."""
    start = pem.index(b"-----BEGIN CERTIFICATE-----")
    end = pem.index(b"-----END CERTIFICATE-----", start) + len(b"-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start:end].decode("ascii"))


def _has_names(server_pem: str, names: tuple[str, ...]) -> bool:
    """Whether the stored server certificate exists and is for exactly ``names``."""
    import ipaddress

    from cryptography import x509

    try:
        with open(server_pem, "rb") as file:
            cert = x509.load_pem_x509_certificates(file.read())[0]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (FileNotFoundError, ValueError, IndexError, x509.ExtensionNotFound):
        return False
    stored = {*san.get_values_for_type(x509.DNSName)}
    stored |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    wanted = set()
    for name in names:
        try:
            wanted.add(str(ipaddress.ip_address(name)))
        except ValueError:
            wanted.add(name)
    return stored == wanted
