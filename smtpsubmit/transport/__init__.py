"""Transports: how bytes reach the server (TCP, TLS, Unix socket, your own stream).

Layout (no module imports one above it in this list, so there is no cycle)::

    _base.py     the Transport interface and TLSInfo; imports no implementation
    _errors.py   map_errors: the one edge where network exceptions become smtpsubmit's
    _anyio.py    AnyIOTransport (trio, Unix sockets, your own anyio stream)
    _asyncio.py  AsyncioTransport (TCP on asyncio's protocol machinery)
    _connect.py  connect_tcp / connect_unix: the choice of implementation
"""

from ._anyio import AnyIOTransport
from ._asyncio import AsyncioTransport
from ._base import TLSInfo, Transport
from ._connect import connect_tcp, connect_unix
from ._errors import map_errors

__all__ = [
    "AnyIOTransport",
    "AsyncioTransport",
    "TLSInfo",
    "Transport",
    "connect_tcp",
    "connect_unix",
    "map_errors",
]
