"""Connecting through a proxy: SOCKS5 (RFC 1928, RFC 1929), SOCKS4/4a, HTTP CONNECT.

Theory of operation:

- A proxy is only a way to open the byte stream. :func:`connect_proxy` returns a
  :class:`Transport` already connected *through* the proxy to the mail server; the session
  then reads the greeting and does TLS (implicit or STARTTLS) exactly as on a direct
  connection, with the mail server's name for SNI and the certificate check. The proxy
  relays TLS records it cannot read, and decides nothing about TLS.
- Who resolves the mail server's name: the proxy for ``socks5h`` and ``http`` (the name
  goes in the request, as its A-label), this process for ``socks5`` and ``socks4`` (an
  address goes in the request; SOCKS4 knows IPv4 only). SOCKS4a is left out: Dante, the
  SOCKS server the tests run, refuses it, so it could not be tested.
- SOCKS runs on python-socks (the ``smtpsubmit[socks]`` extra), through its anyio support,
  so on asyncio and trio alike; the result is an :class:`AnyIOTransport` on both.
  HTTP CONNECT (RFC 9110 9.3.6) is ours: python-socks reads the proxy's answer with one
  ``receive``, and an SMTP server speaks first, so its greeting, arriving in the same
  segment as ``200 Connection established``, would be swallowed with it. Here the answer
  is read in pieces that can never reach past its blank line (:func:`_read_head`), so
  every byte after it is left for the session.
- Every failure of the proxy is a :class:`ProxyError` subclass that names the proxy: not
  reachable (:class:`ProxyConnectError`), credentials refused or wanted
  (:class:`ProxyAuthenticationError`), destination forbidden by its rules
  (:class:`ProxyRefusedError`), mail server unreachable from it (:class:`ProxyTargetError`).
- Secrets: a :class:`ProxyURL` shows its password as ``********`` in ``repr`` and
  ``str``, and only that form ever goes into a message.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc

from .._errors import (
    ProxyAuthenticationError,
    ProxyConnectError,
    ProxyError,
    ProxyRefusedError,
    ProxyTargetError,
)
from ._anyio import AnyIOTransport
from ._base import Transport
from ._errors import map_errors

__all__ = ["PROXY_SCHEMES", "ProxyURL", "connect_proxy", "socks_available"]

#: The URL schemes of ``proxy=``, and what each means.
PROXY_SCHEMES = {
    "socks5": "SOCKS5, the mail server's name resolved here",
    "socks5h": "SOCKS5, the name resolved by the proxy",
    "socks4": "SOCKS4, the name resolved here (IPv4 only)",
    "http": "HTTP CONNECT",
}
_MASK = "********"
#: The longest answer head to CONNECT we read; a proxy sending more is broken.
MAX_HEAD = 16384
_END = b"\r\n\r\n"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r\n")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_HOST = re.compile(r"[A-Za-z0-9._-]+")


def socks_available() -> bool:
    """Whether python-socks (the ``smtpsubmit[socks]`` extra) can be imported."""
    try:
        import python_socks.async_.anyio  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class ProxyURL:
    """A parsed ``proxy=`` URL: ``scheme://[user[:password]@]host:port``.

    ``Settings`` holds ``host`` as ASCII (a non-ASCII name as its A-label, encoded there
    like the mail server's name). The password never shows:
    ``str()`` and ``repr()`` give ``socks5://alice:********@proxy:1080``.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> ProxyURL:
        """Parse and check ``url``; ``ValueError`` with a reason that never shows the
        password (and the URL only as :attr:`redacted` would)."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 literal
            raise ValueError(f"is not a URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in PROXY_SCHEMES:
            known = ", ".join(f"{name}://" for name in PROXY_SCHEMES)
            shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
            raise ValueError(f"has {shown}; use one of {known}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be scheme://[user:password@]host:port, with nothing after")
        host = parts.hostname
        if not host:
            raise ValueError("names no proxy host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        if port is None or port == 0:
            hint = " (SOCKS proxies usually listen on 1080)" if scheme != "http" else ""
            raise ValueError(f"needs the proxy's port, e.g. {scheme}://{host}:PORT{hint}")
        # A non-ASCII name is left for the client layer to encode (policy's ascii_hostname,
        # like the mail server's name); an ASCII one must look like a name.
        if host.isascii() and not _is_address(host) and not _HOST.fullmatch(host):
            raise ValueError("names a proxy host that is not a host name or address")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        proxy = cls(scheme, host, port, username or None, password)
        proxy._check_credentials()
        return proxy

    def _check_credentials(self) -> None:
        user, password = self.username, self.password
        if self.scheme == "socks4":
            if password:
                raise ValueError("gives a password, but SOCKS4 has only a user id")
            if user is not None and not _printable_ascii(user):
                raise ValueError("has a SOCKS4 user id that is not printable ASCII")
            return
        if user is None:
            if password:
                raise ValueError("gives a password without a user name")
            return
        if not password:
            raise ValueError("gives a user name without a password")
        if self.scheme.startswith("socks5"):
            # RFC 1929 2: each 1-255 octets; python-socks sends them as ASCII.
            for what, value in (("user name", user), ("password", password)):
                if not _printable_ascii(value) or len(value) > 255:
                    raise ValueError(
                        f"has a {what} that SOCKS5 cannot carry (RFC 1929: 1 to 255 "
                        "printable ASCII characters)"
                    )
        elif ":" in user or any(not c.isprintable() for c in user + password):
            raise ValueError(  # RFC 7617 2
                "has a user name with ':' or control characters, which HTTP Basic cannot carry"
            )

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the mail server's name (``socks5h``, ``http``) rather
        than this process."""
        return self.scheme in ("socks5h", "http")

    @property
    def needs_socks(self) -> bool:
        """Whether connecting needs python-socks (every scheme but ``http``)."""
        return self.scheme != "http"

    @property
    def redacted(self) -> str:
        """The URL with the password masked: safe for logs, reprs and errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        credentials = ""
        if self.username is not None:
            secret = f":{_MASK}" if self.password else ""
            credentials = f"{_escaped(self.username)}{secret}@"
        return f"{self.scheme}://{credentials}{host}:{self.port}"

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"ProxyURL({self.redacted!r})"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _printable_ascii(text: str) -> bool:
    return bool(text) and all(" " <= c <= "~" for c in text)


def _escaped(text: str, limit: int = 200) -> str:
    """Text a proxy (or a URL) chose, made safe to show on one line."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:limit])


async def connect_proxy(
    proxy: ProxyURL, host: str, port: int, *, local_host: str | None = None
) -> Transport:
    """A transport connected to ``host:port`` through ``proxy``; TLS is the caller's.

    ``host`` is the mail server's ASCII name or address; ``local_host`` the local address
    of the connection to the proxy. Raises a :class:`ProxyError` subclass when the proxy
    fails, :class:`~smtpsubmit.ConnectError` when this process cannot resolve ``host``
    (``socks5``, ``socks4``). No time limit of its own: the caller bounds the whole connect phase.
    """
    if proxy.needs_socks:
        return AnyIOTransport(await _socks(proxy, host, port, local_host))
    where = f"{host}:{port}"
    with _proxy_unreachable(proxy, where):
        stream = await anyio.connect_tcp(proxy.host, proxy.port, local_host=local_host)
    try:
        await _http_connect(stream, proxy, host, port)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    return AnyIOTransport(stream)


@contextlib.contextmanager
def _proxy_unreachable(proxy: ProxyURL, where: str) -> Iterator[None]:
    """An ``OSError`` while connecting to the proxy itself: :class:`ProxyConnectError`."""
    try:
        yield
    except OSError as exc:
        raise ProxyConnectError(
            f"connect to {where} through the proxy {proxy}: the proxy cannot be reached: "
            f"{exc.strerror or exc}",
            proxy=str(proxy),
        ) from exc


# -- HTTP CONNECT (RFC 9110 9.3.6) ------------------------------------------------------


async def _http_connect(
    stream: anyio.abc.ByteStream, proxy: ProxyURL, host: str, port: int
) -> None:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")  # RFC 7617
    where = f"connect to {target} through the proxy {proxy}"
    with map_errors(where):
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        head = await _read_head(stream, proxy, where)
    status = _STATUS_LINE.match(head)
    if status is None:
        raise ProxyError(
            f"{where}: the proxy did not answer CONNECT in HTTP: "
            f"{_escaped(head[:80].decode('latin-1'))!r}",
            proxy=str(proxy),
        )
    code = int(status[1])
    if 200 <= code < 300:  # the tunnel is open from the end of this head on
        return
    reason = _escaped((status[2] or b"").decode("latin-1"))
    said = f"{where}: the proxy answered {code} {reason}".rstrip()
    if code in (401, 407):  # 407 (RFC 9110 15.5.8); tinyproxy says 401 to wrong ones
        wanted = "refused the credentials" if proxy.username else "wants credentials"
        raise ProxyAuthenticationError(
            f"{said}: it {wanted} (give user:password in the proxy URL)",
            proxy=str(proxy),
            code=code,
        )
    if code == 403:
        raise ProxyRefusedError(
            f"{said}: its rules do not allow this destination", proxy=str(proxy), code=code
        )
    if 500 <= code < 600:  # a CONNECT that fails on the proxy's side of the tunnel
        raise ProxyTargetError(
            f"{said}: it could not reach the mail server", proxy=str(proxy), code=code
        )
    raise ProxyError(said, proxy=str(proxy), code=code)


def _overlap(buffer: bytearray) -> int:
    """How many octets at the end of ``buffer`` begin the blank line (``\\r\\n\\r\\n``)."""
    for size in (3, 2, 1):
        if buffer.endswith(_END[:size]):
            return size
    return 0


async def _read_head(stream: anyio.abc.ByteStream, proxy: ProxyURL, where: str) -> bytes:
    """The answer's head up to and including its blank line, and not one octet more.

    Each receive asks for the fewest octets that could complete ``\\r\\n\\r\\n``: the
    blank line can only end on the last of them, so nothing after it is ever read.
    """
    head = bytearray()
    while not head.endswith(_END):
        if len(head) >= MAX_HEAD:
            raise ProxyError(
                f"{where}: the proxy's answer to CONNECT is over {MAX_HEAD} octets",
                proxy=str(proxy),
            )
        try:
            head += await stream.receive(len(_END) - _overlap(head))
        except anyio.EndOfStream:
            raise ProxyError(
                f"{where}: the proxy closed the connection without answering CONNECT",
                proxy=str(proxy),
            ) from None
    return bytes(head)


# -- SOCKS, through python-socks -----------------------------------------------------

#: (SOCKS version, reply code) -> the error class and what it means (RFC 1928 6; SOCKS4).
_SOCKS_REPLIES: dict[tuple[int, int], tuple[type[ProxyError], str]] = {
    (5, 1): (ProxyError, "general SOCKS server failure"),
    (5, 2): (ProxyRefusedError, "its rules do not allow this destination"),
    (5, 3): (ProxyTargetError, "network unreachable from the proxy"),
    (5, 4): (ProxyTargetError, "the mail server is unreachable from the proxy"),
    (5, 5): (ProxyTargetError, "the mail server refused the proxy's connection"),
    (5, 6): (ProxyTargetError, "the proxy's connection to the mail server timed out"),
    (5, 7): (ProxyError, "the proxy does not support CONNECT"),
    (5, 8): (ProxyError, "the proxy does not support this address type"),
    (4, 0x5B): (ProxyTargetError, "request rejected, or the mail server unreachable"),
    (4, 0x5C): (ProxyAuthenticationError, "the proxy could not reach our identd"),
    (4, 0x5D): (ProxyAuthenticationError, "the user id was refused"),
}
#: python-socks' words for a SOCKS5 authentication refusal (RFC 1929 status != 0, or no
#: acceptable method, RFC 1928 3): it gives these no reply code. Any other wording falls
#: back to a plain ProxyError, still naming the proxy.
_SOCKS_AUTH_FAILURES = (
    "username and password authentication failure",
    "no acceptable authentication methods",
)


async def _socks(
    proxy: ProxyURL, host: str, port: int, local_host: str | None
) -> anyio.abc.ByteStream:
    from python_socks import ProxyConnectionError, ProxyType
    from python_socks import ProxyError as SocksError
    from python_socks.async_.anyio import Proxy

    version = 5 if proxy.scheme.startswith("socks5") else 4
    client = Proxy(
        ProxyType.SOCKS5 if version == 5 else ProxyType.SOCKS4,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=proxy.remote_dns,
    )
    where = f"connect to {host}:{port} through the proxy {proxy}"
    extra: dict[str, Any] = {"local_host": local_host} if local_host else {}
    # Resolving the mail server's name here (socks5, socks4) or a reset by the proxy:
    # map_errors makes those ConnectErrors like on a direct connection.
    with map_errors(where):
        try:
            # No time limit of its own (its default is 60 s): the connect phase's applies.
            return await client.connect(host, port, timeout=math.inf, **extra)
        except ProxyConnectionError as exc:
            raise ProxyConnectError(
                f"{where}: the proxy cannot be reached: {exc.strerror or exc}",
                proxy=str(proxy),
            ) from exc
        except SocksError as exc:
            raise _socks_error(exc, version, proxy, where) from exc


def _socks_error(exc: Exception, version: int, proxy: ProxyURL, where: str) -> ProxyError:
    code = getattr(exc, "error_code", None)
    text = _escaped(str(exc))
    known = _SOCKS_REPLIES.get((version, code)) if isinstance(code, int) else None
    if known is not None:
        kind, meaning = known
        return kind(
            f"{where}: {meaning} (SOCKS{version} reply {code})", proxy=str(proxy), code=code
        )
    if any(words in text.lower() for words in _SOCKS_AUTH_FAILURES):
        wanted = "refused the credentials" if proxy.username else "wants credentials"
        return ProxyAuthenticationError(
            f"{where}: the proxy {wanted}: {text} (RFC 1929)", proxy=str(proxy), code=code
        )
    return ProxyError(f"{where}: SOCKS{version} failure: {text}", proxy=str(proxy), code=code)
