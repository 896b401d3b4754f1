"""Errors raised by the sans-I/O protocol core.

Two kinds, after h11: :class:`LocalProtocolError` means *we* (the caller) asked for
something the protocol forbids, and it is raised before any byte exists;
:class:`RemoteProtocolError` means the *server* sent something that breaks the protocol.
After either, the :class:`~smtpsubmit.protocol.ClientConnection` is in ``State.ERROR`` and
every later call raises again, naming the original problem.

::

    ProtocolError
    ├── LocalProtocolError
    └── RemoteProtocolError
        └── ResponseInjection
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "ResponseInjection"]


class ProtocolError(Exception):
    """Base class of the protocol core's errors."""


class LocalProtocolError(ProtocolError):
    """The caller misused the protocol (invalid argument, command not allowed in this state).

    Raised before any byte is produced, so nothing reached the wire.
    """


class RemoteProtocolError(ProtocolError):
    """The server violated the protocol (malformed or oversized reply, unexpected bytes)."""


class ResponseInjection(RemoteProtocolError):
    """The server sent bytes after agreeing to STARTTLS and before the TLS handshake.

    RFC 3207 6: such bytes could come from a man in the middle and must not be taken as
    replies sent under TLS.
    """
