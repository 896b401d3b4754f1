"""Blocking facade for synchronous code (Django, scripts, thread pools).

Every call runs the async implementation on one shared event loop that lives in a
background thread (an anyio blocking portal), so:

- there is no second implementation to keep in step: these classes only forward;
- it works from plain threads and from inside a thread whose event loop is already running
  (where ``asyncio.run`` fails), because the loop that does the work is never the caller's;
- it is thread-safe: calls from many threads are serialised per client by the async
  client's own lock, and an ``SMTPPool`` shares its connections across threads;
- after ``os.fork`` the child starts its own portal thread (threads do not survive a fork);
- arguments are checked in the caller's thread, by the same checks as the async classes,
  before the portal is touched: a bad ``port`` raises where it was passed.

Example::

    from smtpsubmit.sync import SMTPClient
    with SMTPClient("smtp.example.com", 587, username="u", password="p") as client:
        client.send_message(msg)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from email.message import Message
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from . import _client, _pool
from ._client import DSN
from ._errors import SMTPError
from ._options import ClientOptions, PoolOptions, Unpack
from ._results import SendResult
from ._validate import check_client_arguments, check_pool_arguments
from .protocol import Reply

__all__ = ["SMTPClient", "SMTPPool", "send"]

T = TypeVar("T")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_portal_pid = 0


def _forget_portal_in_child() -> None:
    # A fork copies the lock as it is: held, when another thread was inside _get_portal.
    # No thread in the child would ever release it; start afresh instead.
    global _lock, _portal
    _lock = threading.Lock()
    _portal = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_portal_in_child)


def _serve_portal(ready: list[BlockingPortal], started: threading.Event) -> None:
    async def serve() -> None:
        async with BlockingPortal() as portal:
            ready.append(portal)
            started.set()
            await portal.sleep_until_stopped()

    anyio.run(serve)


def _get_portal() -> BlockingPortal:
    """The process-wide portal, started on first use (and again in a forked child).

    Its loop runs in a daemon thread: interpreter exit must never wait for it, whereas a
    thread-pool worker (what ``start_blocking_portal`` uses) would be joined at exit first.
    """
    global _portal, _portal_pid
    with _lock:
        if _portal is None or _portal_pid != os.getpid():
            ready: list[BlockingPortal] = []
            started = threading.Event()
            thread = threading.Thread(
                target=_serve_portal, args=(ready, started), name="smtpsubmit-sync", daemon=True
            )
            thread.start()
            started.wait()
            _portal, _portal_pid = ready[0], os.getpid()
        return _portal


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    portal = _get_portal()
    return portal.call(lambda: func(*args, **kwargs))


class SMTPClient:
    """Blocking twin of :class:`smtpsubmit.SMTPClient`; same arguments, same behaviour."""

    def __init__(self, host: str, port: int, **options: Unpack[ClientOptions]) -> None:
        """``options`` are the keywords of :class:`smtpsubmit.SMTPClient`."""
        self._async: _client.SMTPClient = _client.SMTPClient(host, port, **options)

    def __repr__(self) -> str:
        return f"<sync {self._async!r}>"

    def __enter__(self) -> SMTPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.quit()

    @property
    def is_connected(self) -> bool:
        """True when a session is open and ready for a transaction."""
        return self._async.is_connected

    @property
    def async_client(self) -> _client.SMTPClient:
        """The async client doing the work."""
        return self._async

    def connect(self) -> None:
        """Connect, greet, secure and authenticate (see the async ``connect``)."""
        _call(self._async.connect)

    def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an ``EmailMessage`` (see the async ``send_message``)."""
        result: SendResult = _call(
            self._async.send_message,
            message,
            sender=sender,
            recipients=recipients,
            dsn=dsn,
            requiretls=requiretls,
        )
        return result

    def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes | BinaryIO,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send raw bytes or a binary file (see the async ``sendmail``)."""
        result: SendResult = _call(
            self._async.sendmail, sender, recipients, data, dsn=dsn, requiretls=requiretls
        )
        return result

    def send_batch(
        self,
        items: Iterable[Message | tuple[str, Sequence[str] | str, bytes]],
        *,
        window: int = 16,
        dsn: DSN | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages with several in flight (see the async ``send_batch``)."""
        results: list[SendResult | SMTPError] = _call(
            self._async.send_batch, list(items), window=window, dsn=dsn
        )
        return results

    def noop(self) -> Reply:
        """NOOP (see the async ``noop``)."""
        reply: Reply = _call(self._async.noop)
        return reply

    def quit(self) -> None:
        """QUIT and close; never raises."""
        _call(self._async.quit)

    def close(self) -> None:
        """Close without QUIT."""
        _call(self._async.aclose)


class SMTPPool:
    """Blocking twin of :class:`smtpsubmit.SMTPPool`, shared safely between threads.

    It starts working when created; call :meth:`close` (or use ``with``) to stop it.
    """

    def __init__(self, host: str, port: int, **options: Unpack[PoolOptions]) -> None:
        """``options`` are the keywords of :class:`smtpsubmit.SMTPPool`."""
        check_pool_arguments(host, port, **options)
        self._async: _pool.SMTPPool = _call(lambda: _pool.SMTPPool(host, port, **options))
        # The async pool's workers live in its task group: enter it on the portal's loop
        # and keep it open until close().
        self._context: AbstractContextManager[_pool.SMTPPool] | None = (
            _get_portal().wrap_async_context_manager(self._async)
        )
        self._context.__enter__()

    def __repr__(self) -> str:
        return f"<sync {self._async!r}>"

    def __enter__(self) -> SMTPPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an ``EmailMessage`` on a pooled connection."""
        result: SendResult = _call(
            self._async.send_message,
            message,
            sender=sender,
            recipients=recipients,
            dsn=dsn,
            requiretls=requiretls,
        )
        return result

    def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send raw bytes on a pooled connection."""
        result: SendResult = _call(
            self._async.sendmail, sender, recipients, data, dsn=dsn, requiretls=requiretls
        )
        return result

    def send_batch(
        self,
        items: Iterable[Message | tuple[str, Sequence[str] | str, bytes]],
        *,
        dsn: DSN | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send every item on the pool's connections; one outcome per item, in order,
        never raising for one message (see the async ``SMTPPool.send_batch``)."""
        results: list[SendResult | SMTPError] = _call(self._async.send_batch, list(items), dsn=dsn)
        return results

    def close(self) -> None:
        """Send what is queued, QUIT every connection and stop the workers."""
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)


def send(
    message: Message,
    *,
    host: str,
    port: int,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    dsn: DSN | None = None,
    **options: Unpack[ClientOptions],
) -> SendResult:
    """Blocking :func:`smtpsubmit.send`: connect, send one message, QUIT."""
    check_client_arguments(host, port, **options)

    async def run() -> SendResult:
        return await _client.send(
            message,
            host=host,
            port=port,
            sender=sender,
            recipients=recipients,
            dsn=dsn,
            **options,
        )

    result: SendResult = _get_portal().call(run)
    return result
