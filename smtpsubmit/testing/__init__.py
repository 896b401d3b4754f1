"""A fake SMTP submission server and pytest fixtures for testing code that sends mail.

>>> async with FakeSMTPServer(users={"alice": "secret"}) as server:   # doctest: +SKIP
...     ...  # connect to server.host:server.port, trust server.client_ssl_context()
...     [message] = await server.wait_for_messages(1)

With pytest, the ``smtp_server``, ``smtps_server`` and ``smtp_server_factory`` fixtures are
available automatically (see docs/testing.md).
"""

from ._capture import CapturedMessage, Recipient, TranscriptEntry
from ._config import ALL_EXTENSIONS, Extension, Mode, ServerConfig
from ._faults import Fault, FaultKind, FaultNotFiredError, Target
from ._server import FakeSMTPServer, SMTPServerFactory, ThreadedSMTPServer
from ._tls import ServerCertificates

__all__ = [
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
