"""Opening connections, and the choice of transport for the running event loop.

This is the only module that knows both implementations: on asyncio, TCP runs on
asyncio's protocol machinery (less CPU per round trip, see ``_asyncio.py``); on any
other backend (trio) it is an anyio stream.
"""

from __future__ import annotations

import asyncio

import anyio

from ._anyio import AnyIOTransport
from ._asyncio import connect_tcp_asyncio
from ._base import Transport
from ._errors import map_errors

__all__ = ["connect_tcp", "connect_unix"]


async def connect_tcp(host: str, port: int, *, local_host: str | None = None) -> Transport:
    """Open TCP with happy eyeballs (RFC 8305) over every address of ``host``.

    On asyncio the connection runs on asyncio's protocol machinery (less CPU per round
    trip, see ``_asyncio.py``); on any other backend it is an anyio stream.
    """
    if _on_asyncio():
        return await connect_tcp_asyncio(host, port, local_host=local_host)
    with map_errors(f"connect to {host}:{port}"):
        stream = await anyio.connect_tcp(host, port, local_host=local_host)
    return AnyIOTransport(stream)


def _on_asyncio() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop running: trio, or another backend
        return False


async def connect_unix(path: str) -> AnyIOTransport:
    """Open a Unix domain socket (e.g. a local MTA's submission socket)."""
    with map_errors(f"connect to {path}"):
        stream = await anyio.connect_unix(path)
    return AnyIOTransport(stream)
