"""Tracing and metrics through the OpenTelemetry API (the ``smtpsubmit[otel]`` extra).

Theory of operation:

- Off costs nothing: every hook asks :func:`current` for the active telemetry and does
  nothing more when it is ``None``. ``opentelemetry`` is imported only when telemetry is
  switched on, never by ``import smtpsubmit``.
- On by itself, like any library instrumented with the OpenTelemetry API: the first send
  (or connection) looks for ``opentelemetry-api``; when it is installed, spans and metrics
  go to the global tracer and meter providers. While those are still the API's no-op
  proxies (no SDK configured yet, the usual case when the API came in as someone else's
  dependency) every hook returns at once, as when off, and the API is asked again at most
  once a second (an SDK configured later is picked up within that second). It
  stays off when the API is missing or ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names
  ``smtpsubmit``. :func:`instrument` switches it on with given providers, and
  :func:`uninstrument` switches it off.
- Spans (names and attributes after OpenTelemetry's general conventions: ``server.address``,
  ``server.port``, ``error.type``, ``tls.protocol.version``; the SMTP ones under ``smtp.``):

  * ``smtp send`` / ``smtp send_batch``: one call of ``send_message``/``sendmail`` (retries
    and waits included) or of ``send_batch``, in the caller's task;
  * ``smtp open`` with ``smtp connect``, ``smtp tls`` and ``smtp auth``: opening a
    connection (in a pool, in the worker that opens it);
  * ``smtp transaction`` (kind CLIENT): one attempt, from its serialisation to its outcome,
    with the outcome (``smtp.outcome``: sent, refused, not_sent, unknown), the final reply
    code, recipient counts and the server's queue id; in a pool it is a child of its
    caller's ``smtp send``.

- Metrics: ``smtp.client.messages`` and ``smtp.client.recipients`` (counters by outcome),
  ``smtp.client.operation.duration`` (a histogram of ``send``/``send_batch`` calls, in
  seconds) and ``smtp.client.connection.count`` (a pool's connections by state, ``used`` or
  ``idle``, read when the metrics are collected).
- Never recorded: addresses, message content, credentials, reply text (a reply may quote an
  address); errors are named by type only, and exceptions are not attached to spans.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._errors import OutcomeUnknownError, RecipientsRefusedError, ReplyError
from ._results import SendResult

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from ._pool import SMTPPool
    from ._transaction import Entry, Transaction

__all__ = ["instrument", "uninstrument"]

T = TypeVar("T")
#: Seconds between two looks for an SDK while none is configured.
UNSET_RECHECK = 1.0
#: Upper bounds of the duration histogram's buckets, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

_resolved = False
_active: _Telemetry | None = None


def current() -> _Telemetry | None:
    """The active telemetry, or ``None`` (then every hook does nothing)."""
    tel = _active if _resolved else _resolve()
    if tel is not None and tel.unset is not None:
        # No SDK configured yet, so every span and metric would be dropped: look again at
        # most once a second (asking the API costs microseconds, this check nanoseconds).
        now = time.monotonic()
        if now < tel.next_look:
            return None
        if tel.unset():
            tel.next_look = now + UNSET_RECHECK
            return None
        tel.unset = None  # an SDK is set, for good (the API takes one once)
    return tel


def _unset_check(trace: Any, metrics: Any) -> Callable[[], bool] | None:
    """A check that no SDK was configured yet (the API's proxies are still the global
    providers); ``None`` when one already is, or when this API version cannot tell."""
    get_tracer_provider, get_meter_provider = trace.get_tracer_provider, metrics.get_meter_provider
    tracer_provider, meter_provider = get_tracer_provider(), get_meter_provider()
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - another API layout: always report
        return None
    if not (
        isinstance(tracer_provider, trace.ProxyTracerProvider)
        and isinstance(meter_provider, _ProxyMeterProvider)
    ):
        return None
    return lambda: (
        get_tracer_provider() is tracer_provider and get_meter_provider() is meter_provider
    )


def _resolve() -> _Telemetry | None:
    global _resolved, _active
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    if "smtpsubmit" in (name.strip() for name in disabled.split(",")):
        _active = None
    else:
        try:
            _active = _Telemetry(None, None)
        except ImportError:  # no opentelemetry-api: nothing to report to
            _active = None
    _resolved = True
    return _active


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Report spans and metrics to these providers (the global ones by default).

    Needed only to choose providers, or to switch telemetry on again after
    :func:`uninstrument`: with ``opentelemetry-api`` installed it is on by itself. Raises
    ``ImportError`` without it (``pip install 'smtpsubmit[otel]'``).
    """
    global _resolved, _active
    try:
        _active = _Telemetry(tracer_provider, meter_provider)
    except ImportError as exc:
        raise ImportError(
            "telemetry needs the OpenTelemetry API: pip install 'smtpsubmit[otel]'", name=exc.name
        ) from exc
    _resolved = True


def uninstrument() -> None:
    """Stop reporting: every hook is a no-op again until :func:`instrument`."""
    global _resolved, _active
    _active = None
    _resolved = True


# -- hooks the client layer calls ------------------------------------------------------------


class PhaseSpan(Protocol):
    """What :func:`phase` yields: a span, or a stand-in that records nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Record what was learnt during the phase."""


class _NoSpan:
    """What :func:`phase` yields when telemetry is off."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Nothing to record."""


_OFF: AbstractContextManager[PhaseSpan] = nullcontext(_NoSpan())


def phase(name: str, host: str, port: int) -> AbstractContextManager[PhaseSpan]:
    """A span for one phase of opening a connection (``open``, ``connect``, ``tls``,
    ``auth``), current while it runs; yields it (``set_attribute`` for what is learnt)."""
    tel = current()
    if tel is None:
        return _OFF
    return tel.span(f"smtp {name}", {"server.address": host, "server.port": port})


def isolate() -> None:
    """Forget the trace the current task inherited (a pool worker serves every caller)."""
    tel = _active if _resolved else _resolve()
    if tel is not None:
        tel.context.attach(tel.context.Context())


def traced(entry: Entry) -> Entry:
    """``entry`` carrying the current trace, for a transaction built in another task."""
    tel = current()
    if tel is None:
        return entry
    return replace(entry, trace=tel.context.get_current())


def track_pool(pool: SMTPPool) -> None:
    """Report this pool's connections in ``smtp.client.connection.count`` (from now on,
    even when an SDK is configured only later)."""
    tel = _active if _resolved else _resolve()
    if tel is not None:
        tel.pools.add(pool)


def untrack_pool(pool: SMTPPool) -> None:
    """Stop reporting this pool's connections."""
    tel = _active if _resolved else _resolve()
    if tel is not None:
        tel.pools.discard(pool)


def outcome_name(outcome: object) -> str:
    """``sent``, ``refused`` (a reply refused it), ``unknown`` (may have been queued) or
    ``not_sent`` (anything else: nothing was accepted)."""
    if isinstance(outcome, SendResult):
        return "sent"
    if isinstance(outcome, OutcomeUnknownError):
        return "unknown"
    if isinstance(outcome, ReplyError):
        return "refused"
    return "not_sent"


def error_type(exc: BaseException) -> str:
    """``error.type``: the exception's class, named as the public API names it."""
    cls = type(exc)
    if cls.__module__.startswith("smtpsubmit"):
        return f"smtpsubmit.{cls.__qualname__}"
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class TransactionSpan:
    """The span of one transaction, ended by :meth:`Transaction.settle`."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def end(self, txn: Transaction, outcome: object) -> None:
        """Record how the transaction ended and end the span."""
        span = self._span
        if span.is_recording():  # a no-op span (no SDK) is only ended
            span.set_attributes(_transaction_attributes(txn, outcome))
            if isinstance(outcome, BaseException):
                _failed(span, outcome)
        span.end()


def _transaction_attributes(txn: Transaction, outcome: object) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"smtp.outcome": outcome_name(outcome)}
    commands = {type(c).__name__ for c in txn.commands}
    if commands & {"Bdat", "Data"}:
        attributes["smtp.transfer"] = "BDAT" if "Bdat" in commands else "DATA"
    reply = outcome.reply if isinstance(outcome, SendResult | ReplyError) else None
    if reply is not None:
        attributes["smtp.reply.code"] = reply.code
        if reply.enhanced is not None:
            attributes["smtp.reply.enhanced_code"] = str(reply.enhanced)
    if isinstance(outcome, SendResult):
        attributes["smtp.recipients.accepted"] = len(outcome.accepted)
        attributes["smtp.recipients.refused"] = len(outcome.refused)
        if outcome.queue_id:
            attributes["smtp.queue_id"] = outcome.queue_id
    elif isinstance(outcome, RecipientsRefusedError):
        attributes["smtp.recipients.refused"] = len(outcome.refused)
    return attributes


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import StatusCode

    span.set_attribute("error.type", error_type(exc))
    span.set_status(StatusCode.ERROR)  # no description: it may quote an address


class _Telemetry:
    """Switched-on telemetry: a tracer, a meter and the instruments."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from opentelemetry import context, metrics, trace

        from . import __version__

        #: While it says so, the global providers are the API's no-ops: skip all the work.
        self.unset: Callable[[], bool] | None = None
        if tracer_provider is None and meter_provider is None:
            self.unset = _unset_check(trace, metrics)
        self.next_look = 0.0
        self.context = context
        self.trace = trace
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            "smtpsubmit", __version__
        )
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(
            "smtpsubmit", __version__
        )
        self.messages = meter.create_counter(
            "smtp.client.messages", "{message}", "Messages by outcome: sent, refused, ..."
        )
        self.recipients = meter.create_counter(
            "smtp.client.recipients", "{recipient}", "Recipients accepted or refused"
        )
        self.duration = meter.create_histogram(
            "smtp.client.operation.duration",
            "s",
            "Duration of send and send_batch calls",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.pools: weakref.WeakSet[SMTPPool] = weakref.WeakSet()
        meter.create_observable_up_down_counter(
            "smtp.client.connection.count",
            [self._observe_pools],
            "{connection}",
            "A pool's connections: used (sending) or idle",
        )

    @contextmanager
    def span(
        self, name: str, attributes: Mapping[str, str | int], *, client: bool = True
    ) -> Iterator[Span]:
        """A span, current while the block runs; ``error.type`` if the block raises."""
        kind = self.trace.SpanKind.CLIENT if client else self.trace.SpanKind.INTERNAL
        span = self.tracer.start_span(
            name, kind=kind, attributes=attributes, record_exception=False
        )
        token = self.context.attach(self.trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            self.context.detach(token)
            span.end()

    def transaction(
        self, host: str, port: int, recipients: int, size: int | None, parent: object
    ) -> TransactionSpan:
        """Start the span of a transaction (``parent``: the caller's trace, if known)."""
        attributes: dict[str, str | int] = {
            "server.address": host,
            "server.port": port,
            "smtp.recipients": recipients,
        }
        if size is not None:
            attributes["smtp.message.size"] = size
        span = self.tracer.start_span(
            "smtp transaction",
            context=parent,  # type: ignore[arg-type]  # a Context, or None: the current one
            kind=self.trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        return TransactionSpan(span)

    async def send(
        self,
        operation: str,
        server: tuple[str, int],
        run: Callable[[], Awaitable[T]],
        count: Callable[[T], Iterable[object]],
    ) -> T:
        """Run one ``send``/``send_batch`` call in its span, then count its outcomes
        (``count`` gives the outcome of each message from what ``run`` returned)."""
        host, port = server
        attributes: dict[str, str | int] = {"server.address": host, "server.port": port}
        start = time.perf_counter()
        span = self.tracer.start_span(
            f"smtp {operation}", attributes=attributes, record_exception=False
        )
        token = self.context.attach(self.trace.set_span_in_context(span))
        try:
            result = await run()
        except BaseException as exc:
            self._count(span, attributes, (exc,), operation, start)
            _failed(span, exc)
            raise
        else:
            self._count(span, attributes, count(result), operation, start)
        finally:
            self.context.detach(token)
            span.end()
        return result

    def _count(
        self,
        span: Span,
        attributes: dict[str, str | int],
        outcomes: Iterable[object],
        operation: str,
        start: float,
    ) -> None:
        tally: dict[str, int] = {}
        messages, recipients = self.messages, self.recipients
        for outcome in outcomes:
            name = outcome_name(outcome)
            tally[name] = tally.get(name, 0) + 1
            attrs = {**attributes, "smtp.outcome": name}
            if isinstance(outcome, BaseException):
                attrs["error.type"] = error_type(outcome)
            messages.add(1, attrs)
            accepted = len(outcome.accepted) if isinstance(outcome, SendResult) else 0
            refused = (
                len(outcome.refused)
                if isinstance(outcome, SendResult | RecipientsRefusedError)
                else 0
            )
            for state, number in (("accepted", accepted), ("refused", refused)):
                if number:
                    recipients.add(number, {**attributes, "smtp.recipient.outcome": state})
        if span.is_recording():
            span.set_attributes({f"smtp.messages.{name}": n for name, n in tally.items()})
        self.duration.record(
            time.perf_counter() - start, {**attributes, "smtp.operation.name": operation}
        )

    def _observe_pools(self, options: Any) -> Iterator[Any]:
        if _active is not self:  # switched off or replaced: this meter reports nothing
            return
        from opentelemetry.metrics import Observation

        for pool in list(self.pools):
            used, idle = pool._connection_counts()
            attributes: dict[str, str | int] = {
                "server.address": pool.host,
                "server.port": pool.port,
            }
            yield Observation(used, {**attributes, "smtp.connection.state": "used"})
            yield Observation(idle, {**attributes, "smtp.connection.state": "idle"})
