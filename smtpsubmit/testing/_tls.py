"""Throwaway TLS material for the fake server: a trustme CA and the certificates it issues."""

from __future__ import annotations

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


class ServerCertificates:
    """A throwaway CA, a server certificate for localhost/127.0.0.1/::1 (plus any
    ``extra_names``, e.g. ``("smtp.example.com",)`` to test code that connects by your real
    host name), and one for ``wrong.example`` from the same CA (for the hostname drill).

    Share one instance between servers (``FakeSMTPServer(certificates=...)``) so that a
    client trusting ``ca_pem_path`` trusts all of them. Call ``close()`` to delete the
    temporary PEM file; servers that created their own instance do so on exit.
    """

    def __init__(self, *, extra_names: tuple[str, ...] = ()) -> None:
        # Imported here: trustme is a test dependency, and importing smtpsubmit.testing (which
        # pytest does for the plugin in every project) must work without it.
        import trustme

        self._ca = trustme.CA(organization_name="smtpsubmit fake server test CA")
        self.names: tuple[str, ...] = (*SERVER_NAMES, *extra_names)
        self._cert = self._ca.issue_cert(*self.names)
        self._wrong = self._ca.issue_cert(WRONG_HOST)
        self._dir = tempfile.mkdtemp(prefix="smtpsubmit-ca-")
        #: Path of the CA certificate in PEM form, for non-Python clients (swaks, curl).
        self.ca_pem_path: str = os.path.join(self._dir, "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_pem_path)
        self._server_context = self._make_server_context(self._cert)
        self._wrong_context = self._make_server_context(self._wrong)

    @staticmethod
    def _make_server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # RFC 8996 deprecates TLS 1.0/1.1; RFC 8314 4.1 asks for TLS 1.2 or later.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        cert.configure_cert(ctx)
        return ctx

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
        """Delete the temporary CA PEM file."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"ServerCertificates(ca_pem_path={self.ca_pem_path!r})"
