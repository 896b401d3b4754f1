"""A scripted fault must do what the test asked, or the test must fail.

Body faults (target ``DATA``) act on the message body however the client sends it, DATA or
BDAT (a client that sees CHUNKING, smtpsubmit's included, sends BDAT); and a required fault
that never fired fails the test when the server stops.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import anyio
import pytest
from fake_smtp_helpers import RawClient

import smtpsubmit
from smtpsubmit.testing import (
    Extension,
    FakeSMTPServer,
    Fault,
    FaultNotFiredError,
    Mode,
    SMTPServerFactory,
    ThreadedSMTPServer,
)

pytest_plugins = ["pytester"]

Via = Literal["DATA", "BDAT"]
BODY = b"Subject: s\r\n\r\n" + b"0123456789" * 4 + b"\r\n"


def _plain(factory: SMTPServerFactory, *faults: Fault) -> ThreadedSMTPServer:
    return factory(mode=Mode.PLAIN, faults=faults)


def _envelope(server: ThreadedSMTPServer) -> RawClient:
    client = RawClient(server.host, server.port)
    assert client.reply()[0] == 220
    for line in ("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
        assert client.cmd(line)[0] == 250
    return client


def _send_body(client: RawClient, via: Via, body: bytes = BODY) -> tuple[int, list[str]]:
    """Send ``body`` by DATA, or by BDAT in 8-octet chunks; the first reply that is not
    an intermediate success, or the final one."""
    if via == "DATA":
        code, texts = client.cmd("DATA")
        if code != 354:
            return code, texts
        client.send(body + b".\r\n")
        return client.reply()
    chunks = [body[i : i + 8] for i in range(0, len(body), 8)]
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        client.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        code, texts = client.reply()
        if code != 250 or last:
            return code, texts
    raise AssertionError("unreachable")


def _events(server: ThreadedSMTPServer, prefix: str) -> list[str]:
    return [line for _, line in server.transcripts[0] if line.startswith(prefix)]


# -- body faults, DATA or BDAT -------------------------------------------------------------


@pytest.mark.parametrize("via", ["DATA", "BDAT"])
def test_disconnect_mid_data_cuts_the_body_whichever_way_it_is_sent(
    smtp_server_factory: SMTPServerFactory, via: Via
) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect_mid_data(after_bytes=10))
    with _envelope(server) as client, pytest.raises((EOFError, ConnectionResetError)):
        _send_body(client, via)
    assert server.messages == []
    [event] = _events(server, "closing connection: fault: disconnect mid-")
    # Over BDAT: 8 octets in the first chunk, 2 of the second, then the cut.
    octets = 10 if via == "BDAT" else 12  # DATA reads whole lines: "Subject: s\r\n"
    assert event == f"closing connection: fault: disconnect mid-{via} after {octets} octets"
    assert server.pending_faults == []


@pytest.mark.parametrize("via", ["DATA", "BDAT"])
def test_disconnect_mid_data_at_zero_closes_before_any_body_octet(
    smtp_server_factory: SMTPServerFactory, via: Via
) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect_mid_data())
    with _envelope(server) as client:
        if via == "DATA":
            assert client.cmd("DATA")[0] == 354
        else:
            client.send(b"BDAT 4 LAST\r\n")
        assert client.at_eof()
    assert server.messages == []
    assert server.pending_faults == []


@pytest.mark.parametrize("via", ["DATA", "BDAT"])
def test_delay_on_data_holds_the_body_phase_whichever_way_it_is_sent(
    smtp_server_factory: SMTPServerFactory, via: Via
) -> None:
    server = _plain(smtp_server_factory, Fault.delay("DATA", seconds=0.01))
    with _envelope(server) as client:
        assert _send_body(client, via)[0] == 250
    assert _events(server, "fault: delaying") == ["fault: delaying 0.01 s"]
    assert server.pending_faults == []


@pytest.mark.parametrize("via", ["DATA", "BDAT"])
def test_reply_on_data_refuses_the_body_whichever_way_it_is_sent(
    smtp_server_factory: SMTPServerFactory, via: Via
) -> None:
    server = _plain(smtp_server_factory, Fault.reply("DATA", code=451, text="Try later"))
    with _envelope(server) as client:
        assert _send_body(client, via) == (451, ["Try later"])
        assert client.cmd("RSET")[0] == 250
    assert server.messages == []


def test_only_the_first_bdat_chunk_of_a_transaction_is_a_data_occurrence(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    # nth=2 is the second message body, not the second chunk of the first one.
    server = _plain(smtp_server_factory, Fault.reply("DATA", nth=2, code=451, text="Later"))
    with _envelope(server) as client:
        assert _send_body(client, "BDAT")[0] == 250  # six chunks
        for line in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
            assert client.cmd(line)[0] == 250
        assert _send_body(client, "BDAT") == (451, ["Later"])
    assert len(server.messages) == 1


# The smtpsubmit client sends BDAT whenever CHUNKING is offered: the faults reach it.


@pytest.mark.anyio
async def test_smtpsubmit_client_over_bdat_meets_a_disconnect_mid_data() -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.disconnect_mid_data(after_bytes=10)]
    ) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            with pytest.raises(smtpsubmit.SMTPError):
                await client.sendmail("a@example.com", ["b@example.com"], BODY * 100)
        assert server.messages == []
        assert [e for _, e in server.transcripts[0] if "disconnect mid-" in e] == [
            "closing connection: fault: disconnect mid-BDAT after 10 octets"
        ]


@pytest.mark.anyio
async def test_smtpsubmit_client_over_bdat_meets_a_data_delay() -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.delay("DATA", seconds=30)]
    ) as server:
        assert Extension.CHUNKING in server.config.extensions
        async with smtpsubmit.SMTPClient(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            timeout=smtpsubmit.Timeouts(command=0.3, data=0.3, final_reply=0.3),
        ) as client:
            # The one chunk is the last: its reply is the final reply, so not knowing it
            # leaves the outcome unknown.
            with pytest.raises(smtpsubmit.OutcomeUnknownError, match="timed out"):
                await client.sendmail("a@example.com", ["b@example.com"], BODY)
        assert server.messages == []


# -- what counts as fired ------------------------------------------------------------------


def test_a_body_cut_on_a_refused_data_command_has_not_fired(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    fault = Fault.disconnect_mid_data(required=False)
    server = _plain(smtp_server_factory, fault)
    with RawClient(server.host, server.port) as client:
        client.reply()
        client.cmd("EHLO c")
        assert client.cmd("DATA")[0] == 503  # no transaction: the body never starts
    assert server.pending_faults == [fault]


def test_only_the_first_replacing_fault_of_an_occurrence_fires(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    first = Fault.reply("NOOP", code=451, text="First")
    second = Fault.disconnect("NOOP", required=False)
    server = _plain(smtp_server_factory, first, second)
    with RawClient(server.host, server.port) as client:
        client.reply()
        assert client.cmd("NOOP") == (451, ["First"])
    assert server.pending_faults == [second]


def test_strip_starttls_where_none_is_offered_has_not_fired(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    fault = Fault.strip_starttls(required=False)
    server = _plain(smtp_server_factory, fault)
    with RawClient(server.host, server.port) as client:
        client.reply()
        assert client.cmd("EHLO c")[0] == 250
    assert server.pending_faults == [fault]


def test_a_rate_limit_is_not_required_by_default(smtp_server_factory: SMTPServerFactory) -> None:
    fault = Fault.rate_limit(max_messages=100)
    assert not fault.required
    server = _plain(smtp_server_factory, fault)  # the fixture would fail the test otherwise
    assert server.pending_faults == [fault]


# -- how a fault that never fired surfaces --------------------------------------------------


@pytest.mark.anyio
async def test_server_exit_raises_for_a_fault_that_never_fired() -> None:
    fault = Fault.reply("RCPT", nth=2, code=550, text="No")

    async def one_rcpt_then_stop() -> None:
        async with FakeSMTPServer(mode=Mode.PLAIN, faults=[fault]) as server:
            async with await anyio.connect_tcp(server.host, server.port) as stream:
                await stream.send(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nQUIT\r\n")
                with anyio.fail_after(5), contextlib.suppress(anyio.EndOfStream):
                    while True:  # until the server closes after QUIT
                        await stream.receive()

    with pytest.raises(FaultNotFiredError) as info:
        await one_rcpt_then_stop()
    assert info.value.faults == (fault,)
    assert str(info.value) == (
        "1 scripted fault(s) never fired (pass required=False to a fault that may not fire):\n"
        "  Fault.reply(target='RCPT', nth=2, times=1, code=550, enhanced=None, text='No'): "
        "RCPT occurred 1 time(s)"
    )
    assert isinstance(info.value, AssertionError)  # reported as a failure by test runners


@pytest.mark.anyio
async def test_server_exit_keeps_the_blocks_own_exception() -> None:
    with pytest.raises(ZeroDivisionError):
        async with FakeSMTPServer(mode=Mode.PLAIN, faults=[Fault.disconnect("MAIL")]):
            1 / 0  # noqa: B018


@pytest.mark.anyio
async def test_server_exit_accepts_an_optional_fault_that_never_fired() -> None:
    fault = Fault.disconnect("MAIL", required=False)
    async with FakeSMTPServer(mode=Mode.PLAIN, faults=[fault]) as server:
        pass
    assert server.pending_faults == [fault]
    assert "required=False" in repr(fault)


def test_threaded_server_raises_on_exit_for_a_fault_added_later() -> None:
    with (
        pytest.raises(FaultNotFiredError, match=r"Fault\.delay\(target='NOOP'"),
        FakeSMTPServer(mode=Mode.PLAIN).run_in_thread() as server,
    ):
        server.add_faults(Fault.delay("NOOP", seconds=1))


UNFIRED = """
from smtpsubmit.testing import Fault, Mode


def test_passes_but_its_fault_never_fired(smtp_server_factory):
    smtp_server_factory(mode=Mode.PLAIN, faults=[Fault.disconnect_mid_data(after_bytes=10)])


def test_fails_and_its_fault_never_fired(smtp_server_factory):
    smtp_server_factory(mode=Mode.PLAIN, faults=[Fault.disconnect("MAIL")])
    assert False, "the test's own failure"


def test_optional_fault(smtp_server_factory):
    smtp_server_factory(mode=Mode.PLAIN, faults=[Fault.disconnect("MAIL", required=False)])
"""


def test_fixture_fails_a_passing_test_whose_fault_never_fired(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unfired=UNFIRED)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    # One teardown error (the passing test), one failure without a second report, one pass.
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_passes_but_its_fault_never_fired*",
            "*1 scripted fault(s) never fired*",
            "*Fault.disconnect_mid_data(target='DATA', *after_bytes=10): DATA occurred 0 time(s)",
        ]
    )
    assert "teardown of test_fails_and_its_fault_never_fired" not in result.stdout.str()


def test_a_refused_first_chunk_does_not_count_towards_the_cut(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    # times=2: the refused chunk is a DATA occurrence of its own (as a refused DATA
    # command is); the cut fires on the second, counting that body's octets only.
    server = _plain(smtp_server_factory, Fault.disconnect_mid_data(after_bytes=10, times=2))
    with RawClient(server.host, server.port) as client:
        client.reply()
        client.cmd("EHLO c")
        client.send(b"BDAT 8\r\n01234567")  # before MAIL: refused, and no body started
        assert client.reply()[0] == 503
        for line in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
            assert client.cmd(line)[0] == 250
        client.send(b"BDAT 8\r\n01234567")  # 8 < 10: goes through
        assert client.reply()[0] == 250
        client.send(b"BDAT 8 LAST\r\n01234567")
        with pytest.raises((EOFError, ConnectionResetError)):
            client.reply()
    assert _events(server, "closing connection: fault: disconnect mid-") == [
        "closing connection: fault: disconnect mid-BDAT after 10 octets"
    ]
