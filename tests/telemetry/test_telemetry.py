"""Spans and metrics, collected with the OpenTelemetry SDK's in-memory exporters.

Each test switches telemetry on with its own providers (``instrument``) and restores the
suite's state afterwards, so nothing leaks between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import smtpsubmit
from smtpsubmit import telemetry
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

USER, PASSWORD = "alice@example.com", "s3cret-Pa55"
SENDER, RCPTS = "alice@example.com", ["bob@example.org", "carol@example.org"]
RAW = b"From: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Recorded:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        """Data points of ``metric`` (collected now)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def sums(self, metric: str, key: str) -> dict[str, int]:
        """A counter's values by the attribute ``key``."""
        totals: dict[str, int] = {}
        for point in self.points(metric):
            label = point.attributes[key]
            totals[label] = totals.get(label, 0) + point.value
        return totals


@pytest.fixture
def otel() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    saved = (telemetry._resolved, telemetry._active)
    telemetry.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        yield Recorded(exporter, reader)
    finally:
        telemetry._resolved, telemetry._active = saved


def starttls_client(server: FakeSMTPServer, **options: Any) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="starttls",
        ssl_context=server.client_ssl_context(),
        username=USER,
        password=PASSWORD,
        **options,
    )


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


def assert_nothing_personal(spans: list[ReadableSpan]) -> None:
    """No address, password or reply text in any span: only types, codes and counts."""
    for span in spans:
        values = [str(v) for v in (span.attributes or {}).values()]
        values += [span.status.description or ""]
        for value in values:
            assert "@" not in value, (span.name, value)
            assert PASSWORD not in value, (span.name, value)


async def test_one_send_is_a_tree_of_phases_and_a_transaction(otel: Recorded) -> None:
    async with FakeSMTPServer(mode=Mode.STARTTLS, users={USER: PASSWORD}) as server:
        host, port = server.host, server.port
        async with starttls_client(server) as client:
            result = await client.sendmail(SENDER, RCPTS, RAW)
            mechanism = client.authenticated_mechanism
    [send] = otel.named("smtp send")
    [opened] = otel.named("smtp open")
    [connect], [tls], [auth] = (otel.named(f"smtp {n}") for n in ("connect", "tls", "auth"))
    [txn] = otel.named("smtp transaction")
    # connect() in __aenter__ opened the session outside the send; the send reused it.
    assert opened.parent is None
    assert all(child_of(s, opened) for s in (connect, tls, auth))
    assert child_of(txn, send)
    assert (send.kind, txn.kind, connect.kind) == (
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
        SpanKind.CLIENT,
    )
    for span in (send, opened, connect, tls, auth, txn):
        assert span.attributes["server.address"] == host
        assert span.attributes["server.port"] == port
        assert span.status.status_code is StatusCode.UNSET
    assert tls.attributes["tls.protocol.version"] in ("1.2", "1.3")
    assert auth.attributes["smtp.auth.mechanism"] == mechanism
    assert dict(txn.attributes) == {
        "server.address": host,
        "server.port": port,
        "smtp.recipients": 2,
        "smtp.message.size": len(RAW),
        "smtp.outcome": "sent",
        "smtp.transfer": "BDAT",
        "smtp.reply.code": 250,
        "smtp.reply.enhanced_code": "2.0.0",
        "smtp.recipients.accepted": 2,
        "smtp.recipients.refused": 0,
        "smtp.queue_id": result.queue_id,
    }
    assert send.attributes["smtp.messages.sent"] == 1
    assert_nothing_personal(otel.spans())


async def test_a_send_that_connects_has_the_phases_under_it(otel: Recorded) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        await smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ).sendmail(SENDER, RCPTS, RAW)
    [send] = otel.named("smtp send")
    [opened] = otel.named("smtp open")
    assert child_of(opened, send)
    assert {s.name for s in otel.spans() if child_of(s, opened)} == {"smtp connect", "smtp tls"}
    assert [s.name for s in otel.spans() if child_of(s, send)] == ["smtp open", "smtp transaction"]


async def test_a_refusal_is_named_by_type_and_code_never_by_its_text(otel: Recorded) -> None:
    fault = Fault.reply("RCPT", code=550, enhanced="5.1.1", text="<bob@example.org> unknown")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=[fault]) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            with pytest.raises(smtpsubmit.RecipientsRefusedError):
                await client.sendmail(SENDER, ["bob@example.org"], RAW)
    [send] = otel.named("smtp send")
    [txn] = otel.named("smtp transaction")
    for span in (send, txn):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is None
        assert span.attributes["error.type"] == "smtpsubmit.RecipientsRefusedError"
        assert not span.events  # no exception event: its message quotes the reply
    assert txn.attributes["smtp.outcome"] == "refused"
    assert txn.attributes["smtp.reply.code"] == 550
    assert txn.attributes["smtp.recipients.refused"] == 1
    assert otel.sums("smtp.client.messages", "smtp.outcome") == {"refused": 1}
    assert otel.sums("smtp.client.recipients", "smtp.recipient.outcome") == {"refused": 1}
    assert_nothing_personal(otel.spans())


async def test_a_lost_final_reply_is_unknown(otel: Recorded) -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.disconnect("END_OF_DATA")]
    ) as server:
        client = smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        )
        with pytest.raises(smtpsubmit.OutcomeUnknownError):
            await client.sendmail(SENDER, RCPTS, RAW)
    [txn] = otel.named("smtp transaction")
    assert txn.attributes["smtp.outcome"] == "unknown"
    assert txn.attributes["error.type"] == "smtpsubmit.OutcomeUnknownError"
    assert otel.sums("smtp.client.messages", "smtp.outcome") == {"unknown": 1}


async def test_a_failed_connection_fails_its_phase_and_the_send(otel: Recorded) -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there now
    with pytest.raises(smtpsubmit.ConnectError):
        await smtpsubmit.SMTPClient("127.0.0.1", port, tls="insecure-cleartext").sendmail(
            SENDER, RCPTS, RAW
        )
    [connect] = otel.named("smtp connect")
    [opened] = otel.named("smtp open")
    [send] = otel.named("smtp send")
    for span in (connect, opened, send):
        assert span.attributes["error.type"] == "smtpsubmit.ConnectError"
    assert otel.named("smtp transaction") == []
    assert otel.sums("smtp.client.messages", "smtp.outcome") == {"not_sent": 1}
    [point] = otel.points("smtp.client.operation.duration")
    assert point.count == 1


async def test_metrics_count_messages_recipients_and_durations(otel: Recorded) -> None:
    fault = Fault.reply("RCPT", code=550, nth=2)  # one recipient of the second message
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=[fault]) as server:
        port = server.port
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            for _ in range(3):
                await client.sendmail(SENDER, RCPTS, RAW)
            outcomes = await client.send_batch([(SENDER, RCPTS, RAW)] * 4)
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)
    assert otel.sums("smtp.client.messages", "smtp.outcome") == {"sent": 7}
    assert otel.sums("smtp.client.recipients", "smtp.recipient.outcome") == {
        "accepted": 13,
        "refused": 1,
    }
    durations = {
        p.attributes["smtp.operation.name"]: p
        for p in otel.points("smtp.client.operation.duration")
    }
    assert durations["send"].count == 3
    assert durations["send_batch"].count == 1
    assert durations["send"].attributes["server.port"] == port
    [batch] = otel.named("smtp send_batch")
    transactions = otel.named("smtp transaction")
    assert len(transactions) == 7
    assert sum(child_of(t, batch) for t in transactions) == 4
    assert batch.attributes["smtp.messages.sent"] == 4


async def test_pooled_transactions_belong_to_their_callers_traces(otel: Recorded) -> None:
    tracer = otel_tracer(otel)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPPool(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            max_connections=2,
        ) as pool:

            async def caller(name: str) -> None:
                with tracer.start_as_current_span(name):
                    await pool.sendmail(SENDER, RCPTS, RAW)

            async with anyio.create_task_group() as group:
                for i in range(4):
                    group.start_soon(caller, f"request {i}")
    requests = {s.name: s for s in otel.spans() if s.name.startswith("request")}
    sends = otel.named("smtp send")
    transactions = otel.named("smtp transaction")
    assert len(sends) == len(transactions) == 4
    for send in sends:
        [request] = [r for r in requests.values() if child_of(send, r)]
        [txn] = [t for t in transactions if child_of(t, send)]
        assert txn.context.trace_id == request.context.trace_id
    # Connections are the pool's, not the caller's that happened to start a worker.
    assert all(s.parent is None for s in otel.named("smtp open"))


def otel_tracer(otel: Recorded) -> Any:
    active = telemetry.current()
    assert active is not None
    return active.tracer


async def test_a_pool_reports_its_connections_in_use_and_idle(otel: Recorded) -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.delay("END_OF_DATA", seconds=0.5)]
    ) as server:
        async with smtpsubmit.SMTPPool(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as pool:

            def states() -> dict[str, int]:
                return otel.sums("smtp.client.connection.count", "smtp.connection.state")

            assert states() == {"used": 0, "idle": 0}
            async with anyio.create_task_group() as group:
                group.start_soon(pool.sendmail, SENDER, RCPTS, RAW)
                with anyio.fail_after(5):
                    # What a metric reader would see: polled, there is no event to wait on.
                    while states()["used"] != 1:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
            assert states() == {"used": 0, "idle": 1}
        assert states() == {}  # a closed pool is no longer reported


async def test_off_records_nothing_and_costs_one_check(otel: Recorded) -> None:
    telemetry.uninstrument()
    assert telemetry.current() is None
    assert telemetry.phase("open", "h", 1) is telemetry._OFF
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            await client.sendmail(SENDER, RCPTS, RAW)
            await client.send_batch([(SENDER, RCPTS, RAW)])
    assert otel.spans() == []
    assert otel.points("smtp.client.messages") == []


def test_it_stays_off_when_the_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_resolved", False)
    monkeypatch.setattr(telemetry, "_active", None)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "redis, smtpsubmit")
    assert telemetry.current() is None
    monkeypatch.setattr(telemetry, "_resolved", False)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "redis")
    telemetry.current()
    assert telemetry._active is not None  # on by itself: the API is installed


def test_error_types_use_the_public_names() -> None:
    assert telemetry.error_type(smtpsubmit.NotSentError("x")) == "smtpsubmit.NotSentError"
    assert telemetry.error_type(ValueError("x")) == "ValueError"
    assert telemetry.error_type(anyio.BrokenResourceError()) == "anyio.BrokenResourceError"
