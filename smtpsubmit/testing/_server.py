"""The fake SMTP submission server: lifecycle, listening socket, public handle.

``FakeSMTPServer`` runs on the caller's event loop (``async with``); ``run_in_thread()``
runs the same server on a private event loop in a background thread (an anyio blocking
portal) and hands back a ``ThreadedSMTPServer`` whose waits are synchronous, for plain
``def`` tests and for tests on another event loop.

Rule: nothing one connection does can stop the server. A failing ``accept()`` (out of file
descriptors: EMFILE) is retried after a pause, and a session that fails in any way is
recorded in ``errors``; neither escapes into the task group that serves the listener.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import Listener, SocketAttribute, SocketListener, SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener

from ._capture import CapturedMessage, MessageStore, TranscriptEntry
from ._config import Mode, ServerConfig
from ._faults import Fault, FaultScript
from ._session import ServerContext, Session
from ._tls import ServerCertificates

__all__ = ["FakeSMTPServer", "SMTPServerFactory", "ThreadedSMTPServer"]

_DEFAULT_TIMEOUT = 10.0
#: Pauses between accept() retries: doubling from the first to the last while it fails,
#: so a descriptor shortage neither spins the loop nor delays recovery by much.
_ACCEPT_RETRY_FIRST = 0.01
_ACCEPT_RETRY_MAX = 1.0

logger = logging.getLogger("smtpsubmit.testing")


class _ServerView:
    """What both handles expose: addresses, trust material, captured data. Thread-safe."""

    _ctx: ServerContext
    _port: int | None

    @property
    def config(self) -> ServerConfig:
        """The server's configuration (its repr masks passwords and tokens)."""
        return self._ctx.config

    @property
    def mode(self) -> Mode:
        """STARTTLS, IMPLICIT_TLS or PLAIN."""
        return self.config.mode

    @property
    def host(self) -> str:
        """The address the server listens on (``127.0.0.1`` by default)."""
        return self.config.host

    @property
    def port(self) -> int:
        """The TCP port, chosen when the server started."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def users(self) -> Mapping[str, str]:
        """The configured ``{username: password}``."""
        return self.config.users

    @property
    def ca_pem_path(self) -> str:
        """Path of the test CA certificate (PEM), e.g. for ``swaks --tls-ca-path``."""
        return self._ctx.certificates.ca_pem_path

    def client_ssl_context(self) -> ssl.SSLContext:
        """A new client ``SSLContext`` that trusts (only) this server's test CA."""
        return self._ctx.certificates.client_ssl_context()

    @property
    def messages(self) -> list[CapturedMessage]:
        """Snapshot of the captured messages, oldest first."""
        return self._ctx.store.messages()

    @property
    def transcripts(self) -> list[list[TranscriptEntry]]:
        """Snapshot of every connection's transcript, in connection order."""
        return self._ctx.store.transcripts()

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised inside sessions (a bug in the fake server)."""
        return list(self._ctx.errors)

    def add_faults(self, *faults: Fault) -> None:
        """Script more faults; their ``nth`` counts from now on."""
        self._ctx.faults.add(*faults)

    @property
    def pending_faults(self) -> list[Fault]:
        """The scripted faults that have not fired yet, in script order.

        When the server stops, a ``required`` one among them fails the test (see
        ``FaultNotFiredError``).
        """
        return self._ctx.faults.pending()

    def clear(self) -> None:
        """Forget captured messages and transcripts."""
        self._ctx.store.clear()


class FakeSMTPServer(_ServerView):
    """An in-process SMTP submission server on a free loopback port, for tests.

    ``async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users={"u": "p"}) as server:`` runs
    it on the current event loop (asyncio or trio); ``with FakeSMTPServer().run_in_thread()
    as server:`` runs it in a background thread. Options are the fields of ``ServerConfig``,
    given as a ``ServerConfig`` and/or as keyword arguments that override it.
    ``certificates`` shares one test CA between servers.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        /,
        *,
        certificates: ServerCertificates | None = None,
        **options: Any,
    ) -> None:
        base = config if config is not None else ServerConfig()
        self._config = dataclasses.replace(base, **options) if options else base
        self._given_certificates = certificates
        self._port = None
        self._listener: Listener[SocketStream] | None = None
        self._task_group: TaskGroup | None = None
        self._running = False

    @property
    def config(self) -> ServerConfig:
        """The server's configuration (its repr masks passwords and tokens)."""
        return self._config

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port else "stopped"
        return f"<FakeSMTPServer {self._config.mode.value} {where}>"

    async def __aenter__(self) -> FakeSMTPServer:
        if self._running:
            raise RuntimeError("the server is already running")
        certificates = self._given_certificates or ServerCertificates()
        self._ctx = ServerContext(
            config=self._config,
            certificates=certificates,
            faults=FaultScript(self._config.faults),
            store=MessageStore(),
        )
        try:
            listener = await anyio.create_tcp_listener(
                local_host=self._config.host, local_port=self._config.port
            )
        except BaseException:
            if self._given_certificates is None:
                certificates.close()
            raise
        self._listener = listener
        self._port = int(listener.extra(SocketAttribute.local_port))
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        parts = listener.listeners if isinstance(listener, MultiListener) else [listener]
        for part in parts:
            assert isinstance(part, SocketListener)
            self._task_group.start_soon(self._accept_forever, part, self._task_group)
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving; then, if the block raised nothing, raise ``FaultNotFiredError``
        when a required scripted fault never fired (a failing block keeps its own error)."""
        assert self._task_group is not None
        assert self._listener is not None
        self._running = False
        try:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self._listener.aclose()
            self._ctx.store.close()
            if self._given_certificates is None:
                self._ctx.certificates.close()
            self._port = None
        if exc_type is None:
            self._ctx.faults.check_fired()

    async def _accept_forever(self, listener: SocketListener, task_group: TaskGroup) -> None:
        # Not Listener.serve(): its first accept() error (EMFILE under load) would end it
        # and fail the task group, and the server would never accept again.
        pause = _ACCEPT_RETRY_FIRST
        failing = False
        while True:
            try:
                stream = await listener.accept()
            except anyio.ClosedResourceError:
                return  # the server is stopping
            except (OSError, anyio.BrokenResourceError) as exc:
                # anyio raises the OSError itself on asyncio, BrokenResourceError from it on
                # trio; the listener is fine either way.
                if not failing:
                    logger.warning(
                        "fake SMTP server %s:%s: accept() failed (%s); retrying until it works",
                        self.host,
                        self._port,
                        exc.__cause__ or exc,
                    )
                    failing = True
                await anyio.sleep(pause)
                pause = min(pause * 2, _ACCEPT_RETRY_MAX)
                continue
            if failing:
                logger.warning("fake SMTP server %s:%s: accepting again", self.host, self._port)
                failing = False
                pause = _ACCEPT_RETRY_FIRST
            task_group.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        try:
            session = Session(self._ctx, stream)
        except Exception as exc:  # a bug: record it like a session's own (see Session.run)
            self._ctx.errors.append(exc)
            await anyio.aclose_forcefully(stream)
            return
        await session.run()

    async def wait_for_messages(
        self,
        count: int = 1,
        *,
        # A plain timeout (not fail_after) because the wait happens in a worker thread.
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> list[CapturedMessage]:
        """Wait (without blocking the event loop) until ``count`` messages are captured.

        Returns all captured messages; raises TimeoutError after ``timeout`` seconds.
        Works from any event loop, not only the server's.
        """
        return await anyio.to_thread.run_sync(
            self._ctx.store.wait, count, timeout, abandon_on_cancel=True
        )

    @contextlib.contextmanager
    def run_in_thread(self, *, backend: str = "asyncio") -> Iterator[ThreadedSMTPServer]:
        """Run the server on its own event loop in a background thread while the block runs."""
        with (
            anyio.from_thread.start_blocking_portal(backend) as portal,
            portal.wrap_async_context_manager(self),
        ):
            yield ThreadedSMTPServer(self)


class ThreadedSMTPServer(_ServerView):
    """Handle on a server running in a background thread (see ``run_in_thread``).

    Every method is safe to call from any thread; waits come in a blocking and an async
    flavour, the async one usable on any event loop (asyncio or trio).
    """

    def __init__(self, server: FakeSMTPServer) -> None:
        self._server = server
        self._ctx = server._ctx
        self._port = server._port

    def __repr__(self) -> str:
        return f"<ThreadedSMTPServer {self.mode.value} {self.host}:{self._port}>"

    def wait_for_messages(
        self, count: int = 1, *, timeout: float = _DEFAULT_TIMEOUT
    ) -> list[CapturedMessage]:
        """Block until ``count`` messages are captured; return them all (TimeoutError after
        ``timeout`` seconds). Do not call it from an event loop thread: use the async form."""
        return self._ctx.store.wait(count, timeout)

    async def wait_for_messages_async(
        self,
        count: int = 1,
        *,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> list[CapturedMessage]:
        """Like ``wait_for_messages`` without blocking the calling event loop."""
        return await anyio.to_thread.run_sync(
            self._ctx.store.wait, count, timeout, abandon_on_cancel=True
        )


class SMTPServerFactory(Protocol):
    """The type of the ``smtp_server_factory`` fixture: start a configured threaded server."""

    def __call__(self, config: ServerConfig | None = None, /, **options: Any) -> ThreadedSMTPServer:
        """Start a server with ``config`` and/or ``ServerConfig`` keyword options."""
        ...
