"""STARTTLS (RFC 3207) with response-injection defence, and AUTH (RFC 4954)."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import (
    Auth,
    AuthCancel,
    AuthResponse,
    ClientConnection,
    Ehlo,
    LocalProtocolError,
    Mail,
    Noop,
    RemoteProtocolError,
    Reply,
    StartTLS,
    State,
)

from .helpers import ehlo_reply, ready, reply

# -- STARTTLS ----------------------------------------------------------------------------------


def starttls_agreed(*keywords: str) -> ClientConnection:
    conn = ready("STARTTLS", *keywords)
    assert conn.send(StartTLS()) == b"STARTTLS\r\n"
    assert conn.state is State.STARTTLS_SENT
    return conn


@pytest.mark.parametrize("mode", ["all_at_once", "byte_by_byte"])
def test_starttls_220_then_handshake_then_fresh_ehlo(mode: str) -> None:
    conn = starttls_agreed("PIPELINING", "SIZE 100", "ENHANCEDSTATUSCODES")
    got = reply(conn, b"220 2.0.0 go ahead\r\n", mode)
    assert got.command == StartTLS()
    assert got.lines == ("go ahead",)
    assert conn.state is State.TLS_HANDSHAKE
    assert not conn.encrypted
    conn.start_tls_done()
    assert conn.encrypted
    assert conn.state is State.HELLO
    assert conn.extensions.size is None
    assert not conn.extensions.pipelining
    with pytest.raises(LocalProtocolError, match="can't send MAIL when state=HELLO"):
        conn.send(Mail("a@example.com"))


def test_after_starttls_enhanced_codes_are_forgotten_until_the_next_ehlo() -> None:
    conn = starttls_agreed("ENHANCEDSTATUSCODES")
    reply(conn, b"220 go ahead\r\n")
    conn.start_tls_done()
    conn.send(Ehlo("client.example"))
    got = reply(conn, b"250-mx.example\r\n250 AUTH PLAIN\r\n")
    assert conn.state is State.READY
    assert conn.extensions.auth == {"PLAIN"}
    assert got.enhanced is None
    conn.send(Noop())
    assert reply(conn, b"250 2.0.0 OK\r\n").lines == ("2.0.0 OK",)


def test_nothing_but_start_tls_done_after_starttls_220() -> None:
    conn = starttls_agreed()
    reply(conn, b"220 go ahead\r\n")
    with pytest.raises(LocalProtocolError, match="can't send EHLO when state=TLS_HANDSHAKE"):
        conn.send(Ehlo("client.example"))


@pytest.mark.parametrize(
    "injected", [b"250 injected\r\n", b"2", b"\r\n", b"250-PIPELINING\r\n250 AUTH PLAIN\r\n"]
)
def test_bytes_in_the_same_read_as_starttls_220_are_an_injection(injected: bytes) -> None:
    conn = starttls_agreed()
    conn.receive_data(b"220 go ahead\r\n" + injected)
    with pytest.raises(RemoteProtocolError, match="response injection"):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError, match="state ERROR"):
        conn.start_tls_done()


def test_bytes_arriving_later_before_handshake_are_an_injection_at_next_event() -> None:
    conn = starttls_agreed()
    reply(conn, b"220 go ahead\r\n")
    conn.receive_data(b"250 injected\r\n")
    with pytest.raises(RemoteProtocolError, match="response injection"):
        conn.next_event()
    assert conn.state is State.ERROR


def test_bytes_arriving_later_before_handshake_are_an_injection_at_start_tls_done() -> None:
    conn = starttls_agreed()
    reply(conn, b"220 go ahead\r\n")
    conn.receive_data(b"2")
    with pytest.raises(RemoteProtocolError, match="response injection"):
        conn.start_tls_done()
    assert conn.state is State.ERROR
    assert not conn.encrypted


def test_eof_during_handshake_wait_is_connection_closed() -> None:
    conn = starttls_agreed()
    reply(conn, b"220 go ahead\r\n")
    conn.receive_data(b"")
    assert conn.next_event().name == "CONNECTION_CLOSED"  # type: ignore[union-attr]


@pytest.mark.parametrize("code", [b"454 4.7.0 TLS not available", b"501 syntax", b"354 odd"])
def test_starttls_refused_returns_to_ready_unencrypted(code: bytes) -> None:
    conn = starttls_agreed()
    reply(conn, code + b"\r\n")
    assert conn.state is State.READY
    assert not conn.encrypted
    assert conn.extensions.starttls


def test_start_tls_done_without_agreement_is_local_error() -> None:
    conn = ready("STARTTLS")
    with pytest.raises(LocalProtocolError, match="start_tls_done\\(\\) when state=READY"):
        conn.start_tls_done()
    assert conn.state is State.ERROR


def test_starttls_refused_when_not_advertised() -> None:
    conn = ready("PIPELINING")
    with pytest.raises(LocalProtocolError, match="did not advertise STARTTLS"):
        conn.send(StartTLS())


def test_starttls_refused_on_implicit_tls() -> None:
    conn = ready("STARTTLS", encrypted=True)
    with pytest.raises(LocalProtocolError, match="already encrypted"):
        conn.send(StartTLS())


def test_starttls_refused_a_second_time() -> None:
    conn = starttls_agreed()
    reply(conn, b"220 go\r\n")
    conn.start_tls_done()
    conn.send(Ehlo("client.example"))
    reply(conn, ehlo_reply("STARTTLS"))  # a confused server advertises it again
    with pytest.raises(LocalProtocolError, match="already encrypted"):
        conn.send(StartTLS())


# -- AUTH ----------------------------------------------------------------------------------


def auth_ready(*keywords: str, **options: object) -> ClientConnection:
    return ready("AUTH PLAIN LOGIN CRAM-MD5", *keywords, **{"encrypted": True, **options})


def test_auth_with_initial_response_succeeds(feed_mode: str) -> None:
    conn = auth_ready()
    command = Auth("PLAIN", b"\0user\0pass")
    assert conn.send(command) == b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"
    assert conn.state is State.AUTH_SENT
    got = reply(conn, b"235 2.7.0 Authentication successful\r\n", feed_mode)
    assert got.command is command
    assert conn.state is State.READY
    assert conn.authenticated


def test_auth_with_334_challenges(feed_mode: str) -> None:
    conn = auth_ready()
    assert conn.send(Auth("LOGIN")) == b"AUTH LOGIN\r\n"
    got = reply(conn, b"334 VXNlcm5hbWU6\r\n", feed_mode)
    assert conn.state is State.AUTH_CHALLENGE
    assert conn.auth_challenge(got) == b"Username:"
    assert conn.send(AuthResponse(b"user")) == b"dXNlcg==\r\n"
    assert conn.state is State.AUTH_SENT
    got = reply(conn, b"334 UGFzc3dvcmQ6\r\n", feed_mode)
    assert conn.auth_challenge(got) == b"Password:"
    assert conn.send(AuthResponse(b"pass")) == b"cGFzcw==\r\n"
    got = reply(conn, b"235 ok\r\n", feed_mode)
    assert got.command == AuthResponse(b"pass")
    assert conn.state is State.READY
    assert conn.authenticated


def _challenged(line: bytes) -> tuple[ClientConnection, Reply]:
    conn = auth_ready()
    conn.send(Auth("LOGIN"))
    conn.receive_data(line)
    got = conn.next_event()
    assert isinstance(got, Reply)
    return conn, got


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"334 \r\n", b""), (b"334\r\n", b""), (b"334  PDEyMzQ+ \r\n", b"<1234>")],
)
def test_auth_challenge_decodes_base64(line: bytes, expected: bytes) -> None:
    conn, got = _challenged(line)
    assert conn.auth_challenge(got) == expected


@pytest.mark.parametrize("text", ["not base64!", "abc", "YWJj\\x00", "\u00e9\u00e9\u00e9\u00e9"])
def test_bad_base64_challenge_is_remote_error_and_errors_the_connection(text: str) -> None:
    conn, got = _challenged(b"334 " + text.encode() + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="334 challenge is not valid base64"):
        conn.auth_challenge(got)
    assert conn.state is State.ERROR


def test_auth_challenge_outside_an_auth_exchange_is_local_error() -> None:
    conn = auth_ready()
    with pytest.raises(LocalProtocolError, match="no AUTH challenge"):
        conn.auth_challenge(Reply(334, ("",)))
    assert conn.state is State.ERROR


@pytest.mark.parametrize("code", [b"535 5.7.8 bad credentials", b"454 temp", b"504 unknown"])
def test_auth_failure_returns_to_ready_unauthenticated(code: bytes) -> None:
    conn = auth_ready()
    conn.send(Auth("PLAIN", b"\0u\0p"))
    reply(conn, code + b"\r\n")
    assert conn.state is State.READY
    assert not conn.authenticated
    conn.send(Auth("PLAIN", b"\0u\0q"))  # a new attempt is allowed


def test_auth_response_failure_returns_to_ready() -> None:
    conn = auth_ready()
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    conn.send(AuthResponse(b"user"))
    reply(conn, b"535 no\r\n")
    assert conn.state is State.READY
    assert not conn.authenticated


@pytest.mark.parametrize("code", [b"501 5.7.0 cancelled", b"235 odd", b"334 odd"])
def test_client_cancel_star_ends_the_exchange(code: bytes) -> None:
    conn = auth_ready()
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.send(AuthCancel()) == b"*\r\n"
    assert conn.state is State.AUTH_SENT
    got = reply(conn, code + b"\r\n")
    assert got.command == AuthCancel()
    assert conn.state is State.READY
    assert not conn.authenticated


def test_only_a_response_or_cancel_may_answer_a_challenge() -> None:
    conn = auth_ready()
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    with pytest.raises(LocalProtocolError, match="can't send NOOP when state=AUTH_CHALLENGE"):
        conn.send(Noop())


def test_auth_response_without_challenge_refused() -> None:
    conn = auth_ready()
    with pytest.raises(LocalProtocolError, match="can't send AUTH response when state=READY"):
        conn.send(AuthResponse(b"x"))


def test_auth_refused_on_cleartext_channel() -> None:
    conn = ready("AUTH PLAIN")
    with pytest.raises(LocalProtocolError, match="unencrypted channel"):
        conn.send(Auth("PLAIN", b"\0u\0p"))
    assert conn.state is State.ERROR


def test_auth_on_cleartext_channel_when_explicitly_allowed() -> None:
    conn = ready("AUTH PLAIN", allow_cleartext_auth=True)
    assert conn.send(Auth("PLAIN", b"\0u\0p")) == b"AUTH PLAIN AHUAcA==\r\n"


def test_auth_after_starttls_is_not_cleartext() -> None:
    conn = ready("STARTTLS")
    conn.send(StartTLS())
    reply(conn, b"220 go\r\n")
    conn.start_tls_done()
    conn.send(Ehlo("client.example"))
    reply(conn, ehlo_reply("AUTH PLAIN"))
    assert conn.send(Auth("PLAIN", b"\0u\0p")) == b"AUTH PLAIN AHUAcA==\r\n"


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "SCRAM-SHA-256"])
def test_auth_refused_when_mechanism_not_advertised(mechanism: str) -> None:
    conn = auth_ready()
    with pytest.raises(LocalProtocolError, match=f"did not advertise AUTH {mechanism}"):
        conn.send(Auth(mechanism))


def test_auth_refused_when_no_auth_advertised() -> None:
    conn = ready("PIPELINING", encrypted=True)
    with pytest.raises(LocalProtocolError, match="it offers: none"):
        conn.send(Auth("PLAIN"))


def test_auth_refused_after_success() -> None:
    conn = auth_ready()
    conn.send(Auth("PLAIN", b"\0u\0p"))
    reply(conn, b"235 ok\r\n")
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(Auth("LOGIN"))


def test_authentication_is_forgotten_after_starttls() -> None:
    conn = ready("AUTH PLAIN", "STARTTLS", allow_cleartext_auth=True)
    conn.send(Auth("PLAIN", b"\0u\0p"))
    reply(conn, b"235 ok\r\n")
    assert conn.authenticated
    conn.send(StartTLS())
    reply(conn, b"220 go\r\n")
    conn.start_tls_done()
    assert not conn.authenticated  # RFC 3207 4.2: back to the initial state
    conn.send(Ehlo("client.example"))
    reply(conn, ehlo_reply("AUTH PLAIN"))
    assert conn.send(Auth("PLAIN", b"\0u\0p")).startswith(b"AUTH PLAIN ")


def test_auth_not_allowed_in_a_transaction() -> None:
    conn = auth_ready()
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="can't send AUTH when state=TRANSACTION"):
        conn.send(Auth("PLAIN", b"\0u\0p"))


def test_secret_never_in_connection_repr_or_error_messages() -> None:
    conn = auth_ready()
    conn.send(Auth("PLAIN", b"\0user\0hunter2"))
    assert "hunter2" not in repr(conn)
    assert "hunter2" not in repr(conn.in_flight)
    with pytest.raises(LocalProtocolError) as info:
        conn.send(AuthResponse(b"hunter2"))  # no challenge yet
    assert "hunter2" not in str(info.value)
