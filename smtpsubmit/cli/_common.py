"""What ``send`` and ``probe`` share: trust, event loop choice, one-line usage errors."""

from __future__ import annotations

import ssl

from ..policy import default_ssl_context, system_trust_context

__all__ = ["BACKENDS", "TRUST_CHOICES", "CommandLineError", "ssl_context_for"]

#: anyio backends the commands can run on.
BACKENDS = ("asyncio", "trio")


#: ``--trust``: certifi's CAs (the library's default) or the operating system's store.
TRUST_CHOICES = ("certifi", "system")


class CommandLineError(Exception):
    """A problem with the command line or a file it names: one line, exit status 2."""


def ssl_context_for(cafile: str | None, trust: str = "certifi") -> ssl.SSLContext:
    """The library's default context, the system trust store's (``trust="system"``,
    ``--trust system``), or the same policy trusting only ``cafile``.

    Only ``cafile`` (not certifi as well), as with ``curl --cacert``: a private CA is meant
    to be the one that vouches for the server. Raises :class:`CommandLineError` naming the
    file when it cannot be read or holds no certificate (``ssl`` itself names neither).
    """
    if cafile is not None and trust != "certifi":
        raise CommandLineError("--cafile and --trust system exclude each other: give one")
    if trust == "system":
        try:
            return system_trust_context()
        except ImportError as exc:
            raise CommandLineError(f"--trust system: {exc}") from None
    if cafile is None:
        return default_ssl_context()
    try:
        context = ssl.create_default_context(cafile=cafile)
    except OSError as exc:  # ssl.SSLError too: not PEM, no certificate in it
        reason = exc.strerror or str(exc)
        raise CommandLineError(f"cannot use --cafile {cafile}: {reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
