"""The package exports exactly the intended names: the connection, the commands, what the
connection returns, the errors. Helpers stay in their own modules."""

from __future__ import annotations

import importlib

import pytest

import smtpsubmit.protocol as protocol

EXPECTED = {
    # the connection and what next_event() returns
    "ClientConnection",
    "Event",
    "Sentinel",
    "NEED_DATA",
    "CONNECTION_CLOSED",
    "Reply",
    "EnhancedStatus",
    "Extensions",
    "State",
    # the commands
    "Command",
    "Ehlo",
    "Helo",
    "StartTLS",
    "Auth",
    "AuthResponse",
    "AuthCancel",
    "Mail",
    "Rcpt",
    "Data",
    "MessageData",
    "EndOfData",
    "Bdat",
    "BdatSent",
    "Rset",
    "Noop",
    "Quit",
    # the errors
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ResponseInjection",
}


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(protocol.__all__) == EXPECTED
    assert len(protocol.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert getattr(protocol, name) is not None


def test_star_import_gives_exactly_the_exported_names() -> None:
    namespace: dict[str, object] = {}
    exec("from smtpsubmit.protocol import *", namespace)
    assert set(namespace) - {"__builtins__"} == EXPECTED


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("_replies", "ReplyParser"),
        ("_data", "DataEncoder"),
        ("_data", "LineLimit"),
        ("_data", "NewlineNormalizer"),
        ("_data", "MAX_TEXT_LINE"),
        ("_data", "encode_data"),
        ("_data", "normalize_newlines"),
        ("_syntax", "validate_address"),
        ("_syntax", "validate_domain"),
        ("_syntax", "is_ascii_address"),
        ("_syntax", "xtext_encode"),
        ("_syntax", "xtext_decode"),
    ],
)
def test_helpers_are_importable_from_their_own_modules(module: str, name: str) -> None:
    helper = importlib.import_module(f"smtpsubmit.protocol.{module}")
    assert name not in protocol.__all__
    assert name in helper.__all__
    assert getattr(helper, name) is not None


#: Not exported, but imported from this package by modules being rewritten elsewhere
#: (smtpsubmit/_body.py, tests/client/test_body_checks.py): kept until they import them
#: from smtpsubmit.protocol._data.
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
