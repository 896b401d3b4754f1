"""The package exports exactly the intended names."""

from __future__ import annotations

import smtpsubmit.protocol as protocol

EXPECTED = {
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
    "ResponseInjection",
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
}


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(protocol.__all__) == EXPECTED
    assert len(protocol.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert getattr(protocol, name) is not None


def test_error_hierarchy() -> None:
    assert issubclass(protocol.LocalProtocolError, protocol.ProtocolError)
    assert issubclass(protocol.RemoteProtocolError, protocol.ProtocolError)
    assert not issubclass(protocol.LocalProtocolError, protocol.RemoteProtocolError)
    assert issubclass(protocol.ResponseInjection, protocol.RemoteProtocolError)
    assert issubclass(protocol.ProtocolError, Exception)


def test_sentinels() -> None:
    assert protocol.NEED_DATA is protocol.Sentinel.NEED_DATA
    assert protocol.CONNECTION_CLOSED is protocol.Sentinel.CONNECTION_CLOSED
    assert protocol.NEED_DATA is not protocol.CONNECTION_CLOSED
