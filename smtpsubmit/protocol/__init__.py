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
from ._data import (
    MAX_TEXT_LINE,
    DataEncoder,
    LineLimit,
    NewlineNormalizer,
    encode_data,
    normalize_newlines,
)
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._extensions import Extensions
from ._replies import EnhancedStatus, Reply, ReplyParser
from ._state import State
from ._syntax import validate_address, validate_domain, xtext_decode, xtext_encode

__all__ = [
    "CONNECTION_CLOSED",
    "MAX_TEXT_LINE",
    "NEED_DATA",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "BdatSent",
    "ClientConnection",
    "Command",
    "Data",
    "DataEncoder",
    "Ehlo",
    "EndOfData",
    "EnhancedStatus",
    "Event",
    "Extensions",
    "Helo",
    "LineLimit",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "NewlineNormalizer",
    "Noop",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "RemoteProtocolError",
    "Reply",
    "ReplyParser",
    "Rset",
    "Sentinel",
    "StartTLS",
    "State",
    "encode_data",
    "normalize_newlines",
    "validate_address",
    "validate_domain",
    "xtext_decode",
    "xtext_encode",
]
