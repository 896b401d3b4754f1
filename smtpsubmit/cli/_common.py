"""What ``send`` and ``probe`` share: trust, event loop choice."""

from __future__ import annotations

import ssl

from ..policy import default_ssl_context

__all__ = ["BACKENDS", "ssl_context_for"]

#: anyio backends the commands can run on.
BACKENDS = ("asyncio", "trio")


def ssl_context_for(cafile: str | None) -> ssl.SSLContext:
    """The library's default context, or the same policy trusting only ``cafile``.

    Only ``cafile`` (not certifi as well), as with ``curl --cacert``: a private CA is meant
    to be the one that vouches for the server. Raises ``OSError``/``ssl.SSLError`` when
    the file cannot be read.
    """
    if cafile is None:
        return default_ssl_context()
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
