"""The sans-I/O SMTP client core: commands to bytes, bytes to replies. Stdlib only.

This package never touches a socket, a clock, TLS or an event loop, so every protocol rule
is testable byte for byte. A session looks like::

    conn = ClientConnection()
    conn.receive_data(b"220 mx.example ESMTP\\r\\n")
    greeting = conn.next_event()                      # Reply(code=220, ...)
    wire = conn.send(Ehlo("client.example"))          # b"EHLO client.example\\r\\n"
    conn.receive_data(b"250-mx.example\\r\\n250 PIPELINING\\r\\n")
    reply = conn.next_event()                         # reply.command is the Ehlo
    conn.extensions.pipelining                        # True

The package exports the connection, the commands, what the connection returns (replies,
the sentinels, the EHLO extensions, the states) and the errors. The helpers the connection
is built from (reply parser, DATA encoder, address grammar, xtext) live in their own
modules: ``_replies``, ``_data``, ``_syntax``.
"""

from ._commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    BdatSent,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
)
from ._connection import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ClientConnection,
    Event,
    Sentinel,
)
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, ResponseInjection
from ._extensions import Extensions
from ._replies import EnhancedStatus, Reply
from ._state import State

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "BdatSent",
    "ClientConnection",
    "Command",
    "Data",
    "Ehlo",
    "EndOfData",
    "EnhancedStatus",
    "Event",
    "Extensions",
    "Helo",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "Noop",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "RemoteProtocolError",
    "ResponseInjection",
    "Reply",
    "Rset",
    "Sentinel",
    "StartTLS",
    "State",
]
