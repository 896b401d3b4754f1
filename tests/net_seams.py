"""Test seams for names: a resolver that knows only the names a test gives it, and a TLS
server context that records the SNI each client sent.

The resolver replaces ``socket.getaddrinfo`` (monkeypatch): asyncio's lookups and trio's
(through anyio) both end there. It answers the names it was given, passes numeric
addresses through, and says "no such name" for anything else, recording every name it
was asked; so a test can prove which name was looked up, and that one was not looked up
at all (when a proxy resolves it instead). Nothing in /etc/hosts is touched.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any


class Resolver:
    """``socket.getaddrinfo`` that knows ``names`` (name -> IP) and nothing else."""

    def __init__(self, names: Mapping[str, str], real: Callable[..., Any]) -> None:
        self._names = dict(names)
        self._real = real
        #: Every non-numeric name asked, as text, in order.
        self.asked: list[str] = []

    def __call__(self, host: object, port: object, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            self.asked.append(name)
            if name not in self._names:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            host = self._names[name]
        return self._real(host, port, *args, **kwargs)


def record_sni(context: ssl.SSLContext) -> list[str | None]:
    """The SNI names clients send to servers using ``context``, as they arrive."""
    seen: list[str | None] = []

    def record(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.append(name)

    context.sni_callback = record
    return seen
