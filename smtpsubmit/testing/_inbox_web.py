"""``serve --web``: the web inbox, a Starlette app served by Hypercorn.

Hypercorn runs on asyncio and on trio, so the app runs on the fake servers' own event
loop, whichever it is (uvicorn is asyncio only, and installs signal handlers of its own
that would take SIGTERM from ``serve``). One loop means no threads and no locks: the
servers' ``on_message`` adds to the ``Inbox`` and wakes the Server-Sent Events streams
directly. Both libraries come from the ``inbox`` extra and are imported only here.

Rules of the responses:

- every one carries a Content-Security-Policy, ``nosniff``, ``no-referrer`` and
  ``no-store``; the pages' policy allows this origin's script and style only;
- a message's HTML body is served alone, under a policy that allows no script and no
  remote anything (images, styles, fonts, frames, forms), plus the CSP ``sandbox``
  directive, and the page shows it in an ``<iframe sandbox="">``: two locks, one of which
  holds even when the body's URL is opened directly;
- downloads are ``application/octet-stream`` with ``Content-Disposition: attachment``
  and a file name reduced to safe characters (RFC 6266; RFC 8187 for the UTF-8 form);
- on a loopback address, requests must name the server by a loopback ``Host`` (Hypercorn's
  ``server_names``), so that a web page on a rebound DNS name cannot read the inbox.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from importlib import resources
from typing import Any, cast
from urllib.parse import quote, unquote

import anyio
from hypercorn.config import Config
from hypercorn.typing import Framework
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ._inbox import Inbox, InboxEntry
from ._inbox_html import index_page, message_page, message_rows

__all__ = ["content_disposition", "create_app", "is_loopback", "serve_inbox"]

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: For a message's HTML body: inline styles, data: images and fonts (self-contained mail,
#: and its own image parts: ``cid:`` references become data: URLs), nothing fetched. Not
#: even from this origin: the sandboxed document has an opaque origin, so ``'self'`` would
#: not match it anyway.
HTML_PART_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
#: For downloads and parts: nothing runs even if a browser renders one (an SVG, say).
DOWNLOAD_POLICY = "default-src 'none'; sandbox"
_CID_REFERENCE = re.compile(r"\bcid:([^\"'\s)<>]+)", re.IGNORECASE)
_IMAGE_TYPE = re.compile(r"image/[a-z0-9.+-]+")
_STATIC = {"inbox.js": "text/javascript", "inbox.css": "text/css"}


def _respond(
    body: str | bytes, media_type: str, *, policy: str = PAGE_POLICY, **headers: str
) -> Response:
    fixed = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-DNS-Prefetch-Control": "off",
    }
    return Response(body, media_type=media_type, headers={**fixed, **headers})


def _json(data: Any) -> Response:
    return _respond(json.dumps(data, indent=1), "application/json")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact UTF-8 one in ``filename*``
    (RFC 6266 4.3, RFC 8187); ``filename`` is already free of paths and controls."""
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _inline_image(entry: InboxEntry, reference: re.Match[str]) -> str:
    """A ``cid:`` URL (RFC 2392) of an image part as a data: URL; others stay as they are
    (and load nothing)."""
    part = entry.attachment_for_cid(unquote(reference[1]))
    if part is None or not _IMAGE_TYPE.fullmatch(part.content_type):
        return reference[0]
    return f"data:{part.content_type};base64,{base64.b64encode(part.content).decode()}"


def create_app(inbox: Inbox) -> Starlette:
    """The ASGI app of the web inbox over ``inbox``: pages, downloads, JSON API, events."""
    static = {
        name: (resources.files(__package__) / "_inbox_static" / name).read_bytes()
        for name in _STATIC
    }

    def entry_of(request: Request) -> InboxEntry:
        entry = inbox.get(request.path_params["id"])
        if entry is None:
            raise HTTPException(404, "no such message")
        return entry

    async def index(request: Request) -> Response:
        return _respond(index_page(inbox), "text/html")

    async def rows(request: Request) -> Response:
        return _respond(message_rows(inbox), "text/html")

    async def message(request: Request) -> Response:
        return _respond(message_page(entry_of(request)), "text/html")

    async def html_part(request: Request) -> Response:
        entry = entry_of(request)
        if entry.html is None:
            raise HTTPException(404, "no HTML part")
        body = _CID_REFERENCE.sub(lambda m: _inline_image(entry, m), entry.html)
        return _respond(body, "text/html", policy=HTML_PART_POLICY)

    async def attachment(request: Request) -> Response:
        parts = entry_of(request).attachments
        index = request.path_params["index"]
        if not 0 <= index < len(parts):
            raise HTTPException(404, "no such attachment")
        part = parts[index]
        return _respond(
            part.content,
            "application/octet-stream",
            policy=DOWNLOAD_POLICY,
            **{"Content-Disposition": content_disposition(part.filename)},
        )

    async def raw(request: Request) -> Response:
        entry = entry_of(request)
        return _respond(
            entry.captured.data,
            "application/octet-stream",
            policy=DOWNLOAD_POLICY,
            **{"Content-Disposition": content_disposition(f"{entry.id}.eml")},
        )

    async def api_list(request: Request) -> Response:
        return _json({"messages": [entry.summary() for entry in reversed(list(inbox))]})

    async def api_detail(request: Request) -> Response:
        return _json(entry_of(request).detail())

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = len(inbox)
            yield "retry: 1000\n\n"
            while await inbox.wait_beyond(seen):
                for entry in inbox.since(seen):
                    yield f"data: {json.dumps(entry.summary())}\n\n"
                seen = len(inbox)

        response = StreamingResponse(stream(), media_type="text/event-stream")
        response.headers.update({"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        return response

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise HTTPException(404)
        return _respond(static[name], _STATIC[name])

    return Starlette(
        routes=[
            Route("/", index),
            Route("/fragments/rows", rows),
            Route("/messages/{id}", message),
            Route("/messages/{id}/html", html_part),
            Route("/messages/{id}/attachments/{index:int}", attachment),
            Route("/messages/{id}/raw", raw),
            Route("/api/messages", api_list),
            Route("/api/messages/{id}", api_detail),
            Route("/api/events", events),
            Route("/static/{name}", static_file),
        ]
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)  # connections wait in the backlog until Hypercorn accepts
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(sock: socket.socket) -> str:
    address = sock.getsockname()[0]
    return f"[{address}]" if sock.family == socket.AF_INET6 else address


def _running_on_trio() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


@contextlib.asynccontextmanager
async def serve_inbox(
    inbox: Inbox, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False
) -> AsyncIterator[str]:
    """Serve the web inbox on the current event loop (asyncio or trio) while the block
    runs; yield its URL. Closes ``inbox`` on exit, which ends the event streams."""
    sock = _listen(host, port)
    bound_port = int(sock.getsockname()[1])
    url = f"http://{_url_host(sock)}:{bound_port}/"
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 2.0
    config.include_server_header = False
    if not allow_remote:
        hosts = {"127.0.0.1", "localhost", "[::1]", _url_host_literal(host)}
        config.server_names = sorted(f"{name}:{bound_port}" for name in hosts)
    app = cast(Framework, create_app(inbox))
    stop = anyio.Event()
    serve: Callable[..., Coroutine[Any, Any, None]]
    if _running_on_trio():
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield url
        finally:
            inbox.close()
            stop.set()


def _url_host_literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host.lower()
