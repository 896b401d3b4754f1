"""Transports: how bytes reach the server (TCP, TLS, Unix socket, your own stream).

Layout (no module imports one above it in this list, so there is no cycle)::

    _base.py     the Transport interface and TLSInfo; imports no implementation
    _errors.py   map_errors: the one edge where network exceptions become smtpsubmit's
    _anyio.py    AnyIOTransport (trio, Unix sockets, your own anyio stream)
    _asyncio.py  AsyncioTransport (TCP on asyncio's protocol machinery)
    _connect.py  connect_tcp / connect_unix: the choice of implementation
    _proxy.py    ProxyURL, connect_proxy: SOCKS5/SOCKS4 (python-socks) and HTTP CONNECT
"""

from ._anyio import AnyIOTransport
from ._asyncio import AsyncioTransport
from ._base import TLSInfo, Transport
from ._connect import connect_tcp, connect_unix
from ._errors import map_errors
from ._proxy import ProxyURL, connect_proxy, socks_available

__all__ = [
    "AnyIOTransport",
    "AsyncioTransport",
    "ProxyURL",
    "TLSInfo",
    "Transport",
    "connect_proxy",
    "connect_tcp",
    "connect_unix",
    "map_errors",
    "socks_available",
]
