"""Host names on the wire: one ASCII form for DNS, SNI, certificate checks and logs.

Theory of operation: a non-ASCII server name (``straße.example``) is turned into its
A-label (``xn--strae-oqa.example``) once, with the ``idna`` package (IDNA 2008, UTS 46
mapping, RFC 5891), when the connection keywords are checked; every layer below gets that
ASCII name. That matters because the layers disagree on non-ASCII: the standard library's
``idna`` codec (used by ``socket.getaddrinfo`` on asyncio and by ``ssl`` for SNI and the
host name check) is IDNA 2003, which maps ``ß`` to ``ss``, while anyio's address lookup
(trio) is IDNA 2008, which keeps it. Given ``straße.example`` raw, one name could be looked
up and another verified. An ASCII name passes every codec unchanged, so they all agree.

ASCII names are left as they are (IP literals, ``localhost``, names with ``_`` that IDNA
2008 would refuse but DNS serves): only a name that needs IDNA goes through it.
"""

from __future__ import annotations

import idna

__all__ = ["ascii_hostname"]


def ascii_hostname(name: str) -> str:
    """``name`` as DNS, TLS (SNI, RFC 6066 3) and certificates (RFC 6125 6.4.2) spell it.

    ASCII is returned unchanged; anything else is encoded to A-labels (IDNA 2008 with the
    UTS 46 mapping, non-transitional: ``ß`` stays ``ß``). Raises ``ValueError`` with the
    reason when ``name`` is not a valid internationalised domain name.
    """
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"not a valid internationalised domain name (IDNA 2008): {exc}") from None
