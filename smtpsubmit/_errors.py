"""The public exception hierarchy: one root, :class:`SMTPError`.

::

    SMTPError
    ├── ArgumentError                 an argument refused before any I/O (it names which)
    ├── ConnectError                  could not reach the server (DNS, refused, reset)
    │   ├── ConnectionLostError       the server closed or reset an established connection
    │   ├── NotSentError              this message was never (wholly) transmitted: retry-safe
    │   └── ProxyError                the proxy failed (it was the proxy, not the server)
    │       ├── ProxyConnectError         the proxy could not be reached
    │       ├── ProxyAuthenticationError  the proxy refused our credentials or wants some
    │       ├── ProxyRefusedError         the proxy's rules forbid connecting to the server
    │       └── ProxyTargetError          the proxy could not reach the mail server
    ├── TimeoutError                  a phase exceeded its timeout (a builtins.TimeoutError too)
    ├── TLSError                      handshake or certificate failure
    │   ├── CertificateError          the certificate did not verify (CA, hostname, expiry)
    │   └── TLSModeMismatchError      the port speaks the other TLS mode (465 vs 587 style)
    ├── SecurityPolicyError           refused by our policy before anything unsafe happened
    │   ├── TLSPolicyError            wrong or ambiguous TLS mode for the port (RFC 8314);
    │   │                             an ArgumentError too
    │   ├── StartTLSUnavailableError  STARTTLS missing or refused; nothing more was sent
    │   └── CleartextAuthError        AUTH would go over an unencrypted channel
    ├── ProtocolViolationError        the server broke the protocol (e.g. 250 to DATA)
    │   └── ResponseInjectionError    bytes before the TLS handshake after STARTTLS (RFC 3207 6)
    ├── MessageError                  the message or envelope cannot be sent as given
    ├── AuthenticationError           AUTH failed or could not be attempted
    │   └── NoCompatibleMechanismError
    ├── ReplyError                    the server refused a command (carries the reply)
    │   ├── TransientReplyError       4xx: try again later
    │   ├── PermanentReplyError       5xx: do not retry unchanged
    │   └── RecipientsRefusedError    every recipient refused (per-recipient replies inside)
    └── OutcomeUnknownError           the link dropped after the end of the message and before
                                      the final reply: the message MAY have been accepted

Every error that answers a server reply carries ``code``, ``enhanced`` and ``text`` (text
with control characters escaped), the ``command`` it answered, rendered with secrets
redacted, and that command's ``verb``. A :class:`TransientReplyError` always carries a 4xx
code and a :class:`PermanentReplyError` a 5xx one: a reply outside those ranges where a
failure was due (a 250 to DATA) is a :class:`ProtocolViolationError`, which carries the
reply too. No exception message ever contains a password, token or AUTH payload.

An :class:`ArgumentError` carries the keywords it is about (``arguments``); front ends that
take the same values under other names (the CLI's options, Django's settings) re-spell its
message in their own words (:meth:`ArgumentError.spelled`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from .protocol import EnhancedStatus as EnhancedStatus
from .protocol import Reply

if TYPE_CHECKING:
    from ._results import Attempt

__all__ = [
    "ArgumentError",
    "AuthenticationError",
    "CertificateError",
    "CleartextAuthError",
    "ConnectError",
    "ConnectionLostError",
    "MessageError",
    "NoCompatibleMechanismError",
    "NotSentError",
    "OutcomeUnknownError",
    "PermanentReplyError",
    "ProtocolViolationError",
    "ProxyAuthenticationError",
    "ProxyConnectError",
    "ProxyError",
    "ProxyRefusedError",
    "ProxyTargetError",
    "RecipientsRefusedError",
    "ReplyError",
    "ResponseInjectionError",
    "SMTPError",
    "SecurityPolicyError",
    "StartTLSUnavailableError",
    "TLSError",
    "TLSModeMismatchError",
    "TLSPolicyError",
    "TimeoutError",
    "TransientReplyError",
    "reply_error",
]


class SMTPError(Exception):
    """Root of every error smtpsubmit raises.

    Under a :class:`~smtpsubmit.RetryPolicy`, the error of the last attempt carries every
    attempt in ``history`` (an :class:`~smtpsubmit.Attempt` each; empty without retries).
    """

    history: tuple[Attempt, ...] = ()

    @property
    def attempts(self) -> int:
        """How many tries ended in this error (1 without a retry policy)."""
        return max(1, len(self.history))


#: How a front end spells an argument: ``spelling("port", None)`` is its name (``--port``,
#: ``EMAIL_PORT``); ``spelling("tls", "implicit")`` is the argument set to that value
#: (``--tls implicit``, ``EMAIL_USE_SSL = True``). ``None``: the library's own spelling.
Spelling = Callable[[str, "str | None"], "str | None"]

_E = TypeVar("_E", bound="ArgumentError")


def _keyword(argument: str, value: str | None) -> str:
    """The library's spelling: the keyword (``port``), or ``tls=TLSMode.IMPLICIT``."""
    if value is None:
        return argument
    if argument == "tls":
        return f"tls=TLSMode.{value.upper().replace('-', '_')}"
    if argument == "port":
        return f"port {value}"
    return f"{argument}={value}"


class _Spelled:
    """What a template's ``{port}`` and ``{tls:implicit}`` fields format (see ArgumentError)."""

    def __init__(self, argument: str, spelling: Spelling) -> None:
        self._argument = argument
        self._spelling = spelling

    def __format__(self, value: str) -> str:
        spelled = self._spelling(self._argument, value or None)
        return _keyword(self._argument, value or None) if spelled is None else spelled


class _Arguments(dict[str, _Spelled]):
    def __init__(self, spelling: Spelling) -> None:
        super().__init__()
        self._spelling = spelling

    def __missing__(self, argument: str) -> _Spelled:
        return _Spelled(argument, self._spelling)


def render_template(template: str, spelling: Spelling | None = None) -> str:
    """``template`` with its ``{port}``/``{tls:implicit}`` fields spelled by ``spelling``
    (default: as the library's keywords); see :class:`ArgumentError`."""
    return template.format_map(_Arguments(spelling or _keyword))


class ArgumentError(SMTPError, ValueError):
    """An argument was refused before any I/O: wrong type, out of range, or in conflict.

    ``arguments`` are the keywords involved (``("password", "username")``), ``argument``
    the first (``None`` when the error names none). ``str()`` speaks the library's keywords.
    The message is a ``template`` whose ``{port}`` fields name an argument and whose
    ``{tls:implicit}`` fields name it set to a value; :meth:`spelled` renders it in a front
    end's words. Never contains a password.
    """

    def __init__(self, template: str, *arguments: str, spelling: Spelling | None = None) -> None:
        self.template = template
        self.arguments = arguments
        self.argument = arguments[0] if arguments else None
        super().__init__(self.message(spelling) if arguments else template)

    def message(self, spelling: Spelling | None = None) -> str:
        """The message, each argument spelled by ``spelling`` (default: as keywords)."""
        if not self.arguments:
            return self.template
        return render_template(self.template, spelling)

    def spelled(self: _E, spelling: Spelling) -> _E:
        """The same error (same class, same ``arguments``) with its message re-spelled."""
        return type(self)(self.template, *self.arguments, spelling=spelling)


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (``tls=True``, ``port="25"``): a ``TypeError`` too."""


class ConnectError(SMTPError):
    """The server could not be reached, or the connection broke."""


class ConnectionLostError(ConnectError):
    """The server closed or reset the connection in the middle of the session."""


class NotSentError(ConnectError):
    """The message was not transmitted, so the server cannot have accepted it.

    The connection failed (or the server said 421 to an earlier command, RFC 5321 3.8)
    before the end of this message was written: sending it again cannot duplicate it.
    ``__cause__`` is the failure that stopped it.
    """


class ProxyError(ConnectError):
    """The proxy given as ``proxy=`` failed; the mail server was not reached through it.

    ``proxy`` is the proxy's URL with its password masked; ``code`` is the proxy's own
    answer when it gave one (a SOCKS reply code, an HTTP status), else ``None``. This
    class itself means the proxy broke its protocol or failed in a way no subclass names.
    """

    def __init__(self, message: str, *, proxy: str, code: int | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy
        self.code = code


class ProxyConnectError(ProxyError):
    """The proxy itself could not be reached (refused, no route, its name unknown)."""


class ProxyAuthenticationError(ProxyError):
    """The proxy refused the credentials in its URL, or wants credentials none were given
    for (SOCKS5 RFC 1929 failure, no acceptable method; HTTP 407). Not worth retrying."""


class ProxyRefusedError(ProxyError):
    """The proxy's rules do not allow a connection to this server and port (SOCKS5
    "not allowed by ruleset", HTTP 403). Not worth retrying."""


class ProxyTargetError(ProxyError):
    """The proxy could not reach the mail server: refused, unreachable or timed out from
    the proxy's side (SOCKS5 reply 3-6, SOCKS4 91, an HTTP 5xx answer to CONNECT)."""


class TimeoutError(SMTPError, builtins.TimeoutError):
    """A phase (connect, TLS, greeting, a command, data, final reply) timed out.

    ``phase`` names it; ``timeout`` is the limit in seconds that was exceeded.
    """

    def __init__(self, message: str, *, phase: str, timeout: float | None) -> None:
        super().__init__(message)
        self.phase = phase
        self.timeout = timeout


class TLSError(SMTPError):
    """The TLS handshake failed."""


class CertificateError(TLSError):
    """The server's certificate was rejected (untrusted CA, wrong host, expired)."""


class TLSModeMismatchError(TLSError):
    """The port seems to speak another TLS mode than the one chosen (RFC 8314):
    ``server_speaks`` is ``"plain"`` (a 220 greeting in clear where a TLS handshake was
    expected) or ``"tls"`` (a TLS handshake where a greeting was expected)."""

    def __init__(self, message: str, *, server_speaks: str) -> None:
        super().__init__(message)
        self.server_speaks = server_speaks


class SecurityPolicyError(SMTPError):
    """Our security policy refused to go on; nothing unsafe was sent."""


class TLSPolicyError(SecurityPolicyError, ArgumentError):
    """The TLS mode and port do not make a safe, unambiguous choice (RFC 8314).

    An :class:`ArgumentError` too: it names ``port`` and ``tls``.
    """


class StartTLSUnavailableError(SecurityPolicyError):
    """STARTTLS was required but not offered or refused; the session was closed."""


class CleartextAuthError(SecurityPolicyError):
    """Credentials would have crossed an unencrypted channel."""


class ProtocolViolationError(SMTPError):
    """The server violated the SMTP protocol; the connection was closed.

    When the violation is a reply (a 250 to DATA, a 354 to RCPT), ``reply``, ``code``,
    ``enhanced``, ``text``, ``command`` and ``verb`` describe it, else they are ``None``.
    """

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply
        self.code = reply.code if reply else None
        self.enhanced = reply.enhanced if reply else None
        self.text = reply.text if reply else None
        command = reply.command if reply else None
        self.command = command.log_line() if command is not None else None
        self.verb = command.verb if command is not None else None


class ResponseInjectionError(ProtocolViolationError):
    """The server sent bytes after agreeing to STARTTLS and before the TLS handshake.

    A man in the middle (or a broken server) could have injected replies that way
    (RFC 3207 6); the connection was closed and nothing more was sent.
    """


class MessageError(SMTPError, ValueError):
    """The message or envelope cannot be sent as given (checked before any I/O)."""


class ReplyError(SMTPError):
    """The server answered a command with a failure reply."""

    def __init__(self, reply: Reply, message: str | None = None) -> None:
        self.reply = reply
        self.code = reply.code
        self.enhanced: EnhancedStatus | None = reply.enhanced
        self.text = reply.text
        command = reply.command
        self.command = command.log_line() if command is not None else None
        #: The verb of the command answered (``"MAIL"``, ``"RCPT"``, ``"BDAT"``, ...).
        self.verb: str | None = command.verb if command is not None else None
        super().__init__(message or describe(reply))

    @staticmethod
    def from_reply(reply: Reply, message: str | None = None) -> ReplyError:
        """The transient or permanent subclass that fits a 4xx or 5xx reply.

        Use :func:`reply_error` where the code may be out of range (it is checked here).
        """
        error = reply_error(reply, message)
        if not isinstance(error, ReplyError):
            raise ValueError(f"not a failure reply: {reply}")
        return error


class TransientReplyError(ReplyError):
    """A 4xx reply: a temporary condition; retrying later may succeed."""

    def __init__(self, reply: Reply, message: str | None = None) -> None:
        if not 400 <= reply.code < 500:
            raise ValueError(f"TransientReplyError needs a 4xx reply, not {reply.code}")
        super().__init__(reply, message)


class PermanentReplyError(ReplyError):
    """A 5xx reply: retrying the same thing will fail again."""

    def __init__(self, reply: Reply, message: str | None = None) -> None:
        if not 500 <= reply.code < 600:
            raise ValueError(f"PermanentReplyError needs a 5xx reply, not {reply.code}")
        super().__init__(reply, message)


class RecipientsRefusedError(ReplyError):
    """Every recipient was refused; ``refused`` maps each to its reply."""

    def __init__(self, refused: Mapping[str, Reply]) -> None:
        self.refused = MappingProxyType(dict(refused))
        first = next(iter(self.refused.values()))
        listed = ", ".join(f"{rcpt} ({r.code})" for rcpt, r in self.refused.items())
        super().__init__(first, f"all recipients refused: {listed}")

    @property
    def transient(self) -> bool:
        """True when every refusal was a 4xx (the whole send may be retried)."""
        return all(r.code < 500 for r in self.refused.values())


class AuthenticationError(SMTPError):
    """Authentication failed or could not be attempted.

    ``reply`` is the server's final reply when there was one (``code``/``enhanced``/
    ``text`` mirror it): 535 5.7.8 bad credentials, 534 5.7.9 mechanism too weak,
    538 5.7.11 encryption required, 454 4.7.0 temporary failure.
    """

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply
        self.code = reply.code if reply else None
        self.enhanced = reply.enhanced if reply else None
        self.text = reply.text if reply else None

    @property
    def transient(self) -> bool:
        """True for 4xx (e.g. 454 4.7.0): retrying later may work."""
        return self.code is not None and self.code < 500


class NoCompatibleMechanismError(AuthenticationError):
    """The server offers no SASL mechanism we may use with the given credentials."""


class OutcomeUnknownError(SMTPError):
    """The connection failed after the whole message was sent and before the final reply.

    The server may or may not have queued the message; resending risks a duplicate, not
    resending risks a loss. ``accepted`` lists the recipients the server had accepted.
    """

    def __init__(self, message: str, *, accepted: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.accepted = accepted


def describe(reply: Reply) -> str:
    """``server replied 550 5.1.1 to RCPT: text``: a reply as an error message says it."""
    what = f" to {reply.command.verb}" if reply.command is not None else ""
    status = f" {reply.enhanced}" if reply.enhanced else ""
    return f"server replied {reply.code}{status}{what}: {reply.text}"


def reply_error(reply: Reply, message: str | None = None) -> ReplyError | ProtocolViolationError:
    """The error for a reply that ends what it answered.

    4xx is a :class:`TransientReplyError`, 5xx a :class:`PermanentReplyError`; any other
    code where a failure was due (a 250 to DATA, a 1xx) is a
    :class:`ProtocolViolationError`: no error class carries a code outside its range.
    """
    if 400 <= reply.code < 500:
        return TransientReplyError(reply, message)
    if 500 <= reply.code < 600:
        return PermanentReplyError(reply, message)
    return ProtocolViolationError(
        f"protocol violation: unexpected reply {describe(reply)[len('server replied ') :]}",
        reply,
    )
