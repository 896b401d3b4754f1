"""SMTPPool: bounded sharing, recycling, eviction, cancellation."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest
from client_helpers import TapeTransport

import smtpsubmit
from smtpsubmit.testing import Extension, FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio


def pool_for(server: FakeSMTPServer, **options: object) -> smtpsubmit.SMTPPool:
    return smtpsubmit.SMTPPool(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        **options,  # type: ignore[arg-type]
    )


def mails_per_connection(server: FakeSMTPServer) -> list[int]:
    return [
        sum(1 for e in t if e.direction == "client" and e.line.startswith("MAIL"))
        for t in server.transcripts
    ]


async def three_callers_four_messages_each(pool: smtpsubmit.SMTPPool) -> None:
    """Each caller sends its next message when its last one is done (steady load)."""

    async def caller(c: int) -> None:
        for i in range(4):
            await pool.sendmail("a@example.com", [f"r{c}.{i}@example.com"], b"x\r\n")

    async with anyio.create_task_group() as tg:
        for c in range(3):
            tg.start_soon(caller, c)


def client_verbs(server: FakeSMTPServer) -> list[str]:
    return [e.line.split(" ")[0] for t in server.transcripts for e in t if e.direction == "client"]


async def test_many_tasks_share_at_most_max_connections() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server, max_connections=3) as pool:
            results: list[smtpsubmit.SendResult] = []

            async def one(i: int) -> None:
                results.append(await pool.sendmail("a@example.com", [f"r{i}@example.com"], b"x"))

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(one, i)
            stats = pool.stats
        await server.wait_for_messages(20)
        delivered = sorted(m.recipients[0].address for m in server.messages)
        connections = len(server.transcripts)
    assert len(results) == 20
    assert stats["busy"] == 0
    assert stats["waiting"] == 0
    assert 1 <= stats["connections"] <= 3
    assert delivered == sorted(f"r{i}@example.com" for i in range(20))
    assert connections <= 3


async def test_connections_are_recycled_after_max_messages() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server, max_connections=1, max_messages_per_connection=2) as pool:
            for _ in range(6):
                await pool.sendmail("a@example.com", ["b@example.com"], b"x")
        connections = len(server.transcripts)
        quits = client_verbs(server).count("QUIT")
    assert connections == 3
    assert quits == 3


async def test_health_check_sends_noop_before_reuse() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server, max_connections=1, health_check_after=0) as pool:
            await pool.sendmail("a@example.com", ["b@example.com"], b"x")
            await pool.sendmail("a@example.com", ["b@example.com"], b"y")
        verbs = client_verbs(server)
    mails = [i for i, verb in enumerate(verbs) if verb == "MAIL"]
    assert verbs.count("NOOP") == 1
    assert mails[0] < verbs.index("NOOP") < mails[1]


async def test_421_on_a_reused_connection_evicts_it_and_retries_on_a_fresh_one() -> None:
    fault = Fault.shutdown_421("MAIL", nth=2)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with pool_for(server, max_connections=1, health_check_after=None) as pool:
            await pool.sendmail("a@example.com", ["b@example.com"], b"first")
            result = await pool.sendmail("a@example.com", ["b@example.com"], b"second")
        await server.wait_for_messages(2)
        data = [m.data for m in server.messages]
        connections = len(server.transcripts)
    assert result.accepted == ("b@example.com",)
    assert data == [b"first", b"second"]
    assert connections == 2


async def test_permanent_failures_are_not_retried() -> None:
    fault = Fault.reply("MAIL", code=550, text="no")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with pool_for(server) as pool:
            with pytest.raises(smtpsubmit.PermanentReplyError):
                await pool.sendmail("a@example.com", ["b@example.com"], b"x")
        assert client_verbs(server).count("MAIL") == 1


async def test_cancellation_never_returns_a_half_used_connection() -> None:
    fault = Fault.delay("RCPT", seconds=30)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with pool_for(server, max_connections=1) as pool:
            with anyio.move_on_after(0.3):
                await pool.sendmail("a@example.com", ["b@example.com"], b"x")
            # Its only caller gone, the worker stopped that send and dropped the connection.
            result = await pool.sendmail("a@example.com", ["b@example.com"], b"y")
        connections = len(server.transcripts)
    assert result.accepted == ("b@example.com",)
    assert connections == 2


async def test_closed_pool_refuses_new_work() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server) as pool:
            await pool.aclose()
            with pytest.raises(smtpsubmit.SMTPError, match="closed"):
                await pool.sendmail("a@example.com", ["b@example.com"], b"x")
        with pytest.raises(smtpsubmit.SMTPError, match="async with"):
            await pool_for(server).sendmail("a@example.com", ["b@example.com"], b"x")


def test_pool_checks_tls_policy_at_construction() -> None:
    with pytest.raises(smtpsubmit.TLSPolicyError):
        smtpsubmit.SMTPPool("mail.example", 2525)


async def test_queued_messages_share_round_trips_on_one_connection() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server, max_connections=1, window=8) as pool:
            results: dict[int, smtpsubmit.SendResult] = {}

            async def one(i: int) -> None:
                results[i] = await pool.sendmail("a@example.com", [f"r{i}@example.com"], b"x")

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(one, i)
        await server.wait_for_messages(20)
        verbs = client_verbs(server)
    # Every caller got its own outcome...
    assert {i: r.accepted for i, r in results.items()} == {
        i: (f"r{i}@example.com",) for i in range(20)
    }
    # ...and the connection carried them in windows: RSET starts each pipelined follower.
    assert verbs.count("MAIL") == 20
    assert verbs.count("RSET") >= 10


async def test_a_refusal_inside_a_coalesced_batch_reaches_only_its_caller() -> None:
    fault = Fault.reply("MAIL", nth=3, code=550, enhanced="5.7.1", text="not you")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with pool_for(server, max_connections=1) as pool:
            outcomes: dict[int, object] = {}

            async def one(i: int) -> None:
                try:
                    outcomes[i] = await pool.sendmail("a@example.com", [f"r{i}@example.com"], b"x")
                except smtpsubmit.SMTPError as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(one, i)
        delivered = sorted(m.recipients[0].address for m in server.messages)
    refused = [i for i, o in outcomes.items() if isinstance(o, smtpsubmit.PermanentReplyError)]
    assert len(refused) == 1
    assert len(delivered) == 5
    assert f"r{refused[0]}@example.com" not in delivered


async def test_callers_outside_the_pool_never_hang_when_it_stops() -> None:
    fault = Fault.delay("RCPT", seconds=30)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        outcome: dict[str, BaseException] = {}

        async def run_pool(*, task_status: anyio.abc.TaskStatus[tuple[object, object]]) -> None:
            with anyio.CancelScope() as scope:
                async with pool_for(server) as pool:
                    task_status.started((pool, scope))
                    await anyio.sleep_forever()

        async def caller(pool: smtpsubmit.SMTPPool) -> None:
            try:
                await pool.sendmail("a@example.com", ["b@example.com"], b"x")
            except smtpsubmit.SMTPError as exc:
                outcome["error"] = exc

        async with anyio.create_task_group() as tg:
            pool, scope = await tg.start(run_pool)
            tg.start_soon(caller, pool)
            await anyio.wait_all_tasks_blocked()  # the message is on the wire, RCPT stalls
            scope.cancel()  # type: ignore[attr-defined]
    assert isinstance(outcome["error"], smtpsubmit.OutcomeUnknownError)


async def test_max_messages_per_connection_holds_for_concurrent_callers() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with pool_for(server, max_connections=1, max_messages_per_connection=2) as pool:
            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(pool.sendmail, "a@example.com", [f"r{i}@example.com"], b"x")
        await server.wait_for_messages(6)
        per_connection = mails_per_connection(server)
    assert sum(per_connection) == 6
    assert max(per_connection) <= 2


async def test_a_running_chain_takes_the_messages_queued_meanwhile() -> None:
    """Without CHUNKING the pool's connection chains each body with the next envelope and,
    while it runs, takes what callers queue: the chain does not stop (a write with a body
    end and no next envelope) until the work runs out."""
    tape: list[tuple[str, bytes]] = []
    no_chunking = frozenset(Extension) - {Extension.CHUNKING, Extension.BINARYMIME}

    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=no_chunking) as server:

        async def taped() -> TapeTransport:
            transport = TapeTransport(await anyio.connect_tcp(server.host, server.port))
            transport.tape = tape
            return transport

        async with pool_for(server, max_connections=1, transport=taped) as pool:
            await three_callers_four_messages_each(pool)
        await server.wait_for_messages(12)
        connections = len(server.transcripts)
    writes = [data for kind, data in tape if kind == "W"]
    chain_ends = [w for w in writes if w.endswith(b"\r\n.\r\n") and b"MAIL FROM" not in w]
    assert connections == 1
    assert sum(w.count(b"MAIL FROM") for w in writes) == 12
    assert len(chain_ends) == 1  # only the last body goes alone


async def test_a_running_chain_stops_at_max_messages_per_connection() -> None:
    no_chunking = frozenset(Extension) - {Extension.CHUNKING, Extension.BINARYMIME}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=no_chunking) as server:
        async with pool_for(server, max_connections=1, max_messages_per_connection=3) as pool:
            await three_callers_four_messages_each(pool)
        await server.wait_for_messages(12)
        per_connection = mails_per_connection(server)
    assert sum(per_connection) == 12
    assert max(per_connection) <= 3
