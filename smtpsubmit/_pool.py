"""SMTPPool: many tasks share up to N authenticated connections to one server.

Theory of operation:

- A FIFO semaphore of ``max_connections`` slots serves waiting callers in arrival order
  (anyio's semaphore is fair), which is the backpressure: a burst of sends waits instead of
  opening unbounded connections.
- A slot takes the most recently used idle client (warm TLS session, likely alive) or
  opens a new one. Before reuse, a client idle longer than ``health_check_after`` gets a
  NOOP; one that is too old (``max_connection_age``), has sent ``max_messages_per_connection``
  or sat idle past ``idle_timeout`` is closed instead.
- A client comes back to the pool only if it is idle and connected. A failure or a
  cancellation mid-transaction makes the client close itself (see ``SMTPClient``), so no
  half-used connection is ever handed to the next caller; a 421 closes it too (eviction).
- A reused connection that turns out dead before anything of the message was accepted
  (the server timed it out while idle) is retried once on a fresh connection. Nothing is
  retried after the message was sent: that is :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from email.message import Message
from types import TracebackType

import anyio

from ._client import DSN, SMTPClient, TransportFactory
from ._errors import ConnectError, SMTPError, TransientReplyError
from ._results import SendResult
from .auth import Authenticator
from .policy import Timeouts, TLSMode

__all__ = ["SMTPPool"]

_Operation = Callable[[SMTPClient], Awaitable[SendResult]]


class SMTPPool:
    """A pool of :class:`SMTPClient` connections to one server, shared by many tasks.

    The connection keywords are those of :class:`SMTPClient`. ``max_connections`` bounds
    concurrency; ``max_messages_per_connection`` and ``max_connection_age`` (seconds)
    recycle connections; ``idle_timeout`` closes connections unused for that long;
    ``health_check_after`` sends NOOP before reusing a connection idle for that long.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 8,
        max_messages_per_connection: int | None = 1000,
        max_connection_age: float | None = 600.0,
        idle_timeout: float | None = 60.0,
        health_check_after: float | None = 5.0,
        tls: TLSMode | str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        auth: Authenticator | None = None,
        timeout: Timeouts | float | None = None,
        local_hostname: str | None = None,
        server_hostname: str | None = None,
        allow_cleartext_auth: bool = False,
        chunking: bool = True,
        transport: TransportFactory | None = None,
        source_address: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_messages_per_connection = max_messages_per_connection
        self.max_connection_age = max_connection_age
        self.idle_timeout = idle_timeout
        self.health_check_after = health_check_after

        def factory() -> SMTPClient:
            return SMTPClient(
                host,
                port,
                tls=tls,
                ssl_context=ssl_context,
                username=username,
                password=password,
                auth=auth,
                timeout=timeout,
                local_hostname=local_hostname,
                server_hostname=server_hostname,
                allow_cleartext_auth=allow_cleartext_auth,
                chunking=chunking,
                transport=transport,
                source_address=source_address,
            )

        factory()  # validate the options (TLS policy, auth) now, not at the first send
        self._factory = factory
        self._slots = anyio.Semaphore(max_connections)
        self._idle: list[tuple[SMTPClient, float]] = []  # (client, idle since), LIFO
        self._in_use = 0
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<SMTPPool {self.host}:{self.port} idle={len(self._idle)} in_use={self._in_use} "
            f"max={self.max_connections}>"
        )

    async def __aenter__(self) -> SMTPPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def stats(self) -> dict[str, int]:
        """Connections idle and in use right now."""
        return {"idle": len(self._idle), "in_use": self._in_use}

    async def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
    ) -> SendResult:
        """Send an ``EmailMessage`` on a pooled connection (see ``SMTPClient.send_message``)."""
        return await self._run(
            lambda c: c.send_message(message, sender=sender, recipients=recipients, dsn=dsn)
        )

    async def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes,
        *,
        dsn: DSN | None = None,
    ) -> SendResult:
        """Send raw bytes on a pooled connection (see ``SMTPClient.sendmail``)."""
        return await self._run(lambda c: c.sendmail(sender, recipients, data, dsn=dsn))

    async def aclose(self) -> None:
        """QUIT every idle connection; connections in use close when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for client, _ in idle:
            await client.quit()

    async def _run(self, operation: _Operation) -> SendResult:
        if self._closed:
            raise SMTPError("the pool is closed")
        async with self._slots:
            self._in_use += 1
            try:
                client, reused = await self._checkout()
                try:
                    return await operation(client)
                except (ConnectError, TransientReplyError) as exc:
                    if not reused or not _stale(exc):
                        raise
                    # The idle connection had died under us before anything was accepted.
                    await client.aclose()
                    client = self._factory()
                    return await operation(client)
                finally:
                    await self._checkin(client)
            finally:
                self._in_use -= 1

    async def _checkout(self) -> tuple[SMTPClient, bool]:
        now = anyio.current_time()
        while self._idle:
            client, since = self._idle.pop()
            if not self._fresh(client, since, now):
                await client.quit()
                continue
            if self.health_check_after is not None and now - since >= self.health_check_after:
                try:
                    await client.noop()
                except SMTPError:
                    await client.aclose()
                    continue
            return client, True
        client = self._factory()
        await client.connect()
        return client, False

    def _fresh(self, client: SMTPClient, since: float, now: float) -> bool:
        if not client.is_connected:
            return False
        if self.idle_timeout is not None and now - since > self.idle_timeout:
            return False
        if (
            self.max_connection_age is not None
            and client.connected_at is not None
            and now - client.connected_at > self.max_connection_age
        ):
            return False
        limit = self.max_messages_per_connection
        return limit is None or client.messages_sent < limit

    async def _checkin(self, client: SMTPClient) -> None:
        if self._closed or not client.is_connected:
            with anyio.CancelScope(shield=True):
                await client.aclose()
            return
        self._idle.append((client, anyio.current_time()))


def _stale(exc: SMTPError) -> bool:
    """A dead idle connection: lost, or a 421 that came before any reply of ours."""
    if isinstance(exc, TransientReplyError):
        return exc.code == 421 and exc.command is not None and exc.command.startswith("MAIL")
    return True
