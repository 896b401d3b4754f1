"""Failures: timeouts, lost connections, 421, outcome unknown, redaction in logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

import smtpsubmit
from smtpsubmit.testing import Extension, FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

USERS = {"alice": "hunter2-very-secret"}
ALL = frozenset(Extension)
# Without CHUNKING the body waits for the envelope's replies, so a broken reply to MAIL is
# not "after the whole message was sent" (which would be OutcomeUnknownError).
NO_CHUNKING = ALL - {Extension.CHUNKING, Extension.BINARYMIME}


def client_for(server: FakeSMTPServer, **options: object) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        local_hostname="client.example",
        **options,  # type: ignore[arg-type]
    )


async def test_server_that_never_answers_times_out_in_the_greeting_phase() -> None:
    async def accept_and_stay_silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept_and_stay_silent)
        client = smtpsubmit.SMTPClient(
            "127.0.0.1", port, tls=smtpsubmit.TLSMode.INSECURE_CLEARTEXT, timeout=0.5
        )
        with pytest.raises(smtpsubmit.TimeoutError) as info:
            await client.connect()
        tg.cancel_scope.cancel()
    assert info.value.phase == "greeting"
    assert info.value.timeout == 0.5
    assert isinstance(info.value, TimeoutError)  # the builtin, for generic handlers


async def test_slow_reply_hits_the_command_timeout() -> None:
    timeouts = smtpsubmit.Timeouts(command=0.3)
    fault = Fault.delay("MAIL", seconds=30)
    extensions = ALL - {Extension.CHUNKING, Extension.BINARYMIME}
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(fault,)
    ) as server:
        async with client_for(server, timeout=timeouts) as client:
            with pytest.raises(smtpsubmit.TimeoutError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
            assert not client.is_connected
    assert info.value.phase == "command"


async def test_total_deadline_bounds_the_whole_send() -> None:
    timeouts = smtpsubmit.Timeouts(total=0.3)
    fault = Fault.delay("RCPT", seconds=30)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, timeout=timeouts) as client:
            with pytest.raises(smtpsubmit.TimeoutError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
    assert info.value.phase == "total"


@pytest.mark.parametrize(
    "extensions",
    [ALL, ALL - {Extension.CHUNKING, Extension.BINARYMIME}],
    ids=["bdat", "data"],
)
async def test_disconnect_after_end_of_data_is_outcome_unknown(
    extensions: frozenset[Extension],
) -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(Fault.disconnect("END_OF_DATA"),)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.OutcomeUnknownError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
            # The next message uses a new connection and goes through.
            await client.sendmail("a@example.com", ["b@example.com"], b"y")
        captured = server.messages
    assert info.value.accepted == ("b@example.com",)
    assert "may or may not" in str(info.value)
    # The server did capture the first message: this is exactly why the outcome is unknown.
    assert [m.data.rstrip(b"\r\n") for m in captured] == [b"x", b"y"]
    assert [m.acknowledged for m in captured] == [False, True]
    assert len(server.transcripts) == 2


async def test_disconnect_mid_data_is_a_connection_error_not_outcome_unknown() -> None:
    # The body is streamed in 1 MiB chunks: the server drops the line after 10 octets,
    # long before the client could write the end of the data, so nothing can have been
    # accepted. (A small body goes in one write with its end: then it would be unknown.)
    fault = Fault.disconnect_mid_data(after_bytes=10)
    extensions = ALL - {Extension.CHUNKING, Extension.BINARYMIME}

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield (b"x" * 70 + b"\r\n") * ((1 << 20) // 72)

    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(fault,)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.SMTPError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], body())
        assert server.messages == []
    assert isinstance(info.value, smtpsubmit.ConnectError)
    assert not isinstance(info.value, smtpsubmit.OutcomeUnknownError | smtpsubmit.NotSentError)


async def test_421_mid_session_raises_transient_and_next_send_reconnects() -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, faults=(Fault.shutdown_421("RCPT"),)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.TransientReplyError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
            assert not client.is_connected
            result = await client.sendmail("a@example.com", ["b@example.com"], b"x")
        connections = len(server.transcripts)
    assert info.value.code == 421
    assert result.accepted == ("b@example.com",)
    assert connections == 2


async def test_554_greeting_is_a_permanent_refusal() -> None:
    fault = Fault.reply("GREETING", code=554, text="No SMTP service here")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        with pytest.raises(smtpsubmit.PermanentReplyError, match="No SMTP service here") as info:
            await client_for(server).connect()
    assert info.value.code == 554


async def test_garbage_reply_is_a_protocol_violation() -> None:
    fault = Fault.garbage("MAIL", data=b"HELLO? this is not SMTP\r\n")
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=NO_CHUNKING, faults=(fault,)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.ProtocolViolationError, match="malformed reply"):
                await client.sendmail("a@example.com", ["b@example.com"], b"x")


async def test_oversized_reply_costs_bounded_memory_and_fails() -> None:
    fault = Fault.oversized_reply("MAIL", size=1_000_000)
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=NO_CHUNKING, faults=(fault,)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.ProtocolViolationError, match="longer than"):
                await client.sendmail("a@example.com", ["b@example.com"], b"x")


async def test_cancelled_send_leaves_no_half_used_connection() -> None:
    fault = Fault.delay("RCPT", seconds=30)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            with anyio.move_on_after(0.3) as scope:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
            assert scope.cancelled_caught
            assert not client.is_connected
            result = await client.sendmail("a@example.com", ["b@example.com"], b"y")
    assert result.accepted == ("b@example.com",)


async def test_secrets_never_reach_debug_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = USERS["alice"]
    caplog.set_level(logging.DEBUG, logger="smtpsubmit")
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("PLAIN", "LOGIN")
    ) as server:
        for mechanism in ("PLAIN", "LOGIN"):
            auth = smtpsubmit.PasswordAuth("alice", password, mechanisms=(mechanism,))
            async with client_for(server, auth=auth) as client:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
                client_repr = repr(client)
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, username="alice", password="wrong-" + password).connect()
    import base64

    forms = {password, base64.b64encode(password.encode()).decode()}
    forms.add(base64.b64encode(f"\0alice\0{password}".encode()).decode())
    text = caplog.text + client_repr + str(info.value) + repr(info.value)
    assert "AUTH PLAIN <redacted>" in caplog.text
    assert all(form not in text for form in forms)
    assert info.value.code == 535
    assert str(info.value.enhanced) == "5.7.8"


async def test_control_characters_in_reply_text_are_escaped_in_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpsubmit")
    fault = Fault.reply("MAIL", code=550, text="bad \x1b[31mred\x1b[0m \x07bell")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.PermanentReplyError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
    assert "\x1b" not in str(info.value)
    assert "\\x1b[31mred" in str(info.value)
    assert "\\x07bell" in info.value.text
    assert "\x1b" not in caplog.text
    assert "\\x1b[31mred" in caplog.text
