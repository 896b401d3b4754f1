"""Opening a session: connect, TLS, greeting, EHLO/HELO, STARTTLS and AUTH.

Theory of operation:

- :class:`Settings` is everything needed to open a connection, checked once when a client
  or a pool is made (before any I/O); :func:`open_session` turns it into a ready
  :class:`Session` or raises, having closed whatever it opened.
- Implicit TLS (RFC 8314 3.3) wraps the stream before the first byte is read. STARTTLS
  (RFC 3207) must be offered and accepted; otherwise the session is closed and nothing else
  is sent. After the upgrade the core forgets the extensions and EHLO is sent again.
- No AUTH ever leaves on a cleartext channel unless ``allow_cleartext_auth`` was given
  (the core enforces it too). During AUTH every reply is scrubbed of what we sent, so a
  server that quotes the credentials cannot put them in a log, transcript or error.
- A port that speaks another TLS mode than the one chosen is named as such: a greeting
  that never comes without implicit TLS is reported with the hint that the port seems to
  speak implicit TLS (the other side, a cleartext greeting where a TLS handshake was due,
  is recognised by the transport: :class:`TLSModeMismatchError`).
"""

from __future__ import annotations

import base64
import builtins
import math
import re
import ssl
from dataclasses import dataclass, replace

import anyio
import anyio.to_thread

from . import telemetry
from ._errors import (
    AuthenticationError,
    CleartextAuthError,
    ConnectionLostError,
    NoCompatibleMechanismError,
    StartTLSUnavailableError,
    TimeoutError,
    reply_error,
)
from ._gate import loop_clock
from ._options import TransportFactory
from ._session import Session, timeout_error
from ._signing import Signer
from ._validate import check_client_arguments
from .auth import (
    Authenticator,
    ChannelInfo,
    Mechanism,
    NoCompatibleMechanism,
    PasswordAuth,
    SASLError,
    select_mechanism,
    tls_server_end_point,
)
from .policy import (
    RateLimit,
    RetryPolicy,
    Timeouts,
    TLSMode,
    ascii_hostname,
    default_ssl_context,
    ehlo_name,
    resolve_tls_mode,
)
from .protocol import (
    Auth,
    AuthCancel,
    AuthResponse,
    ClientConnection,
    Ehlo,
    Helo,
    Reply,
    StartTLS,
)
from .transport import (
    ProxyURL,
    TLSInfo,
    Transport,
    connect_proxy,
    connect_tcp,
    connect_unix,
)

__all__ = ["Settings", "open_session"]

#: RFC 4954 4: an AUTH command line may be up to 12288 octets.
MAX_AUTH_LINE = 12288


@dataclass(frozen=True, eq=False)
class Settings:
    """How to reach, secure and log in to one server: the connection keywords, checked.

    Built by :meth:`from_options` from the keywords every entry point takes (see
    :class:`smtpsubmit.SMTPClient` for their meaning). ``host`` and ``server_hostname``
    are ASCII: a non-ASCII name is held as its A-label (IDNA 2008, ``policy/_idna.py``),
    the one form every layer below (DNS, SNI, certificate check, logs) gets.
    """

    host: str
    port: int
    tls_mode: TLSMode
    ssl_context: ssl.SSLContext | None
    auth: Authenticator | None
    timeouts: Timeouts
    local_hostname: str | None
    server_hostname: str
    allow_cleartext_auth: bool
    chunking: bool
    transport: TransportFactory | None
    unix_socket: str | None
    source_address: str | None
    retry: RetryPolicy | None = None
    rate_limit: RateLimit | None = None
    #: Connect through this proxy (its ``repr`` masks the password); TLS is unchanged.
    proxy: ProxyURL | None = None
    signer: Signer | None = None

    @classmethod
    def from_options(
        cls,
        host: str,
        port: int,
        *,
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
        unix_socket: str | None = None,
        source_address: str | None = None,
        cafile: str | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        proxy: str | None = None,
        signer: Signer | None = None,
    ) -> Settings:
        """Check the keywords (:func:`._validate.check_client_arguments`, naming any that
        is wrong) and resolve the TLS mode (RFC 8314), before any I/O."""
        check_client_arguments(
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
            unix_socket=unix_socket,
            source_address=source_address,
            cafile=cafile,
            retry=retry,
            rate_limit=rate_limit,
            proxy=proxy,
            signer=signer,
        )
        if username:
            auth = PasswordAuth(username, password or "")
        if cafile is not None:
            ssl_context = default_ssl_context(cafile=cafile)
        # One ASCII form of the name for DNS, SNI, the certificate check and the logs.
        host = ascii_hostname(host)
        return cls(
            host=host,
            port=port,
            tls_mode=resolve_tls_mode(port, tls),
            ssl_context=ssl_context,
            auth=auth,
            timeouts=Timeouts.coerce(timeout),
            local_hostname=local_hostname,
            server_hostname=ascii_hostname(server_hostname) if server_hostname else host,
            allow_cleartext_auth=allow_cleartext_auth,
            chunking=chunking,
            transport=transport,
            unix_socket=unix_socket,
            source_address=source_address,
            retry=retry,
            rate_limit=rate_limit,
            proxy=_proxy(proxy),
            signer=signer,
        )

    @property
    def cleartext(self) -> bool:
        """The caller chose to send without encryption (``TLSMode.INSECURE_CLEARTEXT``)."""
        return self.tls_mode is TLSMode.INSECURE_CLEARTEXT


def _proxy(url: str | None) -> ProxyURL | None:
    """The checked ``proxy=`` URL, its host as ASCII like the mail server's."""
    if url is None:
        return None
    proxy = ProxyURL.parse(url)
    return replace(proxy, host=ascii_hostname(proxy.host))


async def open_session(settings: Settings) -> Session:
    """Connect, greet, secure and authenticate; a ready session, or an error (closed)."""
    with telemetry.phase("open", settings.host, settings.port):
        return await _open(settings)


async def _open(settings: Settings) -> Session:
    clock = loop_clock()
    with telemetry.phase("connect", settings.host, settings.port):
        transport = await _connect(settings)
    session = Session(
        transport,
        ClientConnection(
            encrypted=settings.tls_mode is TLSMode.IMPLICIT,
            allow_cleartext_auth=settings.allow_cleartext_auth,
            # Every body is line-checked by the message layer (BodyChecker, same limit)
            # before or while it is sent, with a MessageError naming the line; checking
            # again in the core's encoder would double the scan for nothing.
            max_data_line=None,
        ),
        host=settings.host,
        port=settings.port,
        timeouts=settings.timeouts,
        clock=clock,
    )
    try:
        await _handshake(session, settings)
    except BaseException:
        await session.close()
        raise
    return session


async def _connect(settings: Settings) -> Transport:
    limit = settings.timeouts.connect
    try:
        with anyio.fail_after(math.inf if limit is None else limit):
            if settings.transport is not None:
                return await settings.transport()
            if settings.unix_socket is not None:
                return await connect_unix(settings.unix_socket)
            if settings.proxy is not None:
                return await connect_proxy(
                    settings.proxy, settings.host, settings.port, local_host=settings.source_address
                )
            return await connect_tcp(
                settings.host, settings.port, local_host=settings.source_address
            )
    except builtins.TimeoutError as exc:
        if isinstance(exc, TimeoutError):
            raise
        raise timeout_error(settings.timeouts, "connect", settings.host, settings.port) from None


async def _handshake(session: Session, settings: Settings) -> None:
    host, port = settings.host, settings.port
    if settings.tls_mode is TLSMode.IMPLICIT:
        with telemetry.phase("tls", host, port) as span:
            await session.start_tls(_context(settings), settings.server_hostname)
            _tls_attributes(span, session)
    try:
        greeting = await session.read_reply("greeting")
    except (TimeoutError, ConnectionLostError) as exc:
        if settings.tls_mode is TLSMode.IMPLICIT:
            raise
        # A server speaking implicit TLS waits for our handshake and never greets.
        hint = (
            "; no greeting came: this port seems to speak implicit TLS (the port-465 way), "
            "not plain SMTP with STARTTLS"
        )
        if isinstance(exc, TimeoutError):
            raise TimeoutError(str(exc) + hint, phase=exc.phase, timeout=exc.timeout) from exc
        raise ConnectionLostError(str(exc) + hint) from exc
    if not greeting.is_positive:
        raise reply_error(greeting, f"server refused the session: {greeting}")
    name = settings.local_hostname or ehlo_name(session.transport.local_ip)
    session.ehlo_name = name
    await _hello(session, name, settings)
    if settings.tls_mode is TLSMode.STARTTLS:
        with telemetry.phase("tls", host, port) as span:
            await _starttls(session, settings)
            _tls_attributes(span, session)
        await _hello(session, name, settings)
    if settings.auth is not None:
        with telemetry.phase("auth", host, port) as span:
            await _authenticate(session, settings)
            span.set_attribute("smtp.auth.mechanism", session.authenticated_mechanism)


def _tls_attributes(span: telemetry.PhaseSpan, session: Session) -> None:
    """The negotiated protocol on the TLS phase's span (OpenTelemetry's ``tls.*``)."""
    info = session.tls_info
    if info is not None and info.version:
        span.set_attribute("tls.protocol.name", "tls")
        span.set_attribute("tls.protocol.version", info.version.removeprefix("TLSv"))


def _context(settings: Settings) -> ssl.SSLContext:
    return settings.ssl_context or default_ssl_context()


async def _hello(session: Session, name: str, settings: Settings) -> None:
    reply = await session.command(Ehlo(name))
    starttls_pending = settings.tls_mode is TLSMode.STARTTLS and not session.conn.encrypted
    if reply.code in (500, 502) and not starttls_pending:
        # RFC 5321 3.2: fall back to HELO for pre-ESMTP servers. Not before STARTTLS:
        # a HELO session has no extensions, so it could never be upgraded.
        reply = await session.command(Helo(name))
    if not reply.is_positive:
        raise reply_error(reply)


async def _starttls(session: Session, settings: Settings) -> None:
    if not session.conn.extensions.starttls:
        raise StartTLSUnavailableError(
            f"{settings.host}:{settings.port} does not offer STARTTLS; refusing to continue "
            "without encryption (RFC 8314). Nothing else was sent"
        )
    reply = await session.command(StartTLS())
    if reply.code != 220:
        raise StartTLSUnavailableError(
            f"the server refused STARTTLS ({reply}); refusing to continue without encryption"
        )
    await session.start_tls(_context(settings), settings.server_hostname)
    try:
        session.conn.start_tls_done()
    except Exception as exc:  # bytes injected before the handshake (RFC 3207 6)
        raise session.error_for(exc, "tls") from None


# -- authentication ----------------------------------------------------------------


async def _authenticate(session: Session, settings: Settings) -> None:
    authenticator = settings.auth
    assert authenticator is not None
    conn = session.conn
    if not conn.encrypted and not settings.allow_cleartext_auth:
        raise CleartextAuthError(
            "refusing to send credentials over an unencrypted connection; use TLS, or "
            "pass allow_cleartext_auth=True if you really mean it"
        )
    offered = conn.extensions.auth
    if not offered:
        raise NoCompatibleMechanismError(
            f"credentials were given but {settings.host} offers no AUTH mechanism"
        )
    channel = ChannelInfo(
        encrypted=conn.encrypted,
        tls_server_end_point=_channel_binding(session.tls_info),
        server_hostname=settings.server_hostname,
        server_mechanisms=offered,
    )
    try:
        name = select_mechanism(offered, authenticator, channel=channel)
    except NoCompatibleMechanism as exc:
        raise NoCompatibleMechanismError(str(exc)) from None
    renew = False
    while True:
        try:
            mechanism = await authenticator.start(name, channel, renew=renew)
        except SASLError as exc:  # e.g. credentials that SASLprep refuses
            raise AuthenticationError(f"cannot authenticate with {name}: {exc}") from None
        with session.secret(*_secrets_of(authenticator)):
            reply = await _exchange(session, name, mechanism)
        if reply.is_positive:
            session.authenticated_mechanism = name
            return
        if authenticator.can_renew and not renew and reply.code in (454, 535):
            renew = True  # an expired OAuth token: ask the provider once for a new one
            continue
        raise AuthenticationError(f"authentication with {name} failed: {reply}", reply)


async def _exchange(session: Session, name: str, mechanism: Mechanism) -> Reply:
    """Run one SASL exchange (RFC 4954 4); return the server's final reply.

    Whatever is sent is added to the session's secrets first, so no reply that quotes it
    is logged or kept unscrubbed.
    """
    conn = session.conn
    initial = mechanism.initial_response()
    held_back = None
    if initial is not None and 4 * (len(initial) + 2) // 3 + len(name) + 8 > MAX_AUTH_LINE:
        held_back, initial = initial, None  # too long for the AUTH line: send it at 334
    # SCRAM's PBKDF2 may take long (a server picks the iteration count): not on the loop.
    slow = name.startswith("SCRAM-")
    try:
        with session.secret(*_forms_of(initial)):
            reply = await session.command(Auth(name, initial))
        while reply.code == 334:
            challenge = conn.auth_challenge(reply)
            try:
                if held_back is not None:
                    response, held_back = held_back, None
                elif slow:
                    response = await anyio.to_thread.run_sync(mechanism.respond, challenge)
                else:
                    response = mechanism.respond(challenge)
            except SASLError as exc:
                cancel = await session.command(AuthCancel())
                raise AuthenticationError(
                    f"authentication with {name} aborted: {exc}", cancel
                ) from None
            with session.secret(*_forms_of(response)):
                reply = await session.command(AuthResponse(response))
        if reply.is_positive:
            mechanism.success()
    except SASLError as exc:
        # The server claimed success without proving it knows the password (SCRAM).
        await session.close()
        raise AuthenticationError(f"authentication with {name} failed: {exc}") from None
    except Exception as exc:
        raise session.error_for(exc, "command") from None
    return reply


_FIELDS = re.compile(rb"[\x00\x01]|auth=Bearer |=")


def _secrets_of(authenticator: Authenticator) -> list[str]:
    """The authenticator's configured secrets, in every form they may be echoed as."""
    return [form for secret in authenticator.secrets() for form in _forms_of(secret.encode())]


def _forms_of(secret: bytes | None) -> list[str]:
    """``secret`` and every text it may be echoed as: decoded, base64, base64 inside a
    longer base64 text (each of the three alignments), and the same for each of its
    fields (PLAIN's NUL-separated parts, XOAUTH2's ``auth=Bearer`` token)."""
    if not secret:
        return []
    pieces = [secret, *(p for p in _FIELDS.split(secret) if len(p) >= 3)]
    forms: list[str] = []
    for piece in pieces:
        forms.append(piece.decode("utf-8", "replace"))
        forms.append(base64.b64encode(piece).decode("ascii"))
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + piece).decode("ascii")
            core = encoded[(shift * 8 + 5) // 6 : (len(piece) + shift) // 3 * 4]
            if len(core) >= 4:
                forms.append(core)
    # Longest first, so a shorter form never breaks a longer one before it is replaced.
    return sorted(set(forms), key=len, reverse=True)


def _channel_binding(info: TLSInfo | None) -> bytes | None:
    """RFC 5929 tls-server-end-point data for SCRAM-*-PLUS, when the certificate allows."""
    if info is None or not info.peer_certificate:
        return None
    try:
        return tls_server_end_point(info.peer_certificate)
    except ValueError:
        return None
