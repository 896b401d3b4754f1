"""The web inbox's pages, rendered on the server.

Rule: text becomes HTML only through ``render``, which escapes every argument that is not
already ``Html`` (made by ``render`` itself). Templates are constants; nothing from a
message is ever part of a template. Subjects, addresses, header fields, file names and
bodies are the client's choice, hostile or not, in a dev inbox as anywhere.

The message's own HTML body is never put into these pages: it is served on its own URL
with a Content-Security-Policy that blocks scripts and remote content, and shown in an
``<iframe sandbox>`` (see ``_inbox_web``).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from urllib.parse import quote

from ._inbox import Inbox, InboxEntry

__all__ = ["Html", "index_page", "message_page", "message_rows", "render"]


class Html(str):
    """A string that is HTML already: ``render`` inserts it as it is."""

    __slots__ = ()


def render(template: str, *args: object) -> Html:
    """``template.format(*args)`` with each argument HTML-escaped (quotes included),
    unless it is ``Html``."""
    return Html(template.format(*(_escape(arg) for arg in args)))


def _escape(value: object) -> str:
    return value if isinstance(value, Html) else html.escape(str(value), quote=True)


def concat(parts: Iterable[Html]) -> Html:
    """Fragments joined (each one already ``Html``)."""
    return Html("".join(parts))


def _url(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _page(title: str, body: Html, *, live: bool = False) -> Html:
    script = Html('<script src="/static/inbox.js" defer></script>') if live else Html("")
    return render(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{}</title><link rel="stylesheet" href="/static/inbox.css">{}</head>'
        '<body><header><a class="home" href="/">smtpsubmit inbox</a></header>'
        "<main>{}</main></body></html>\n",
        title,
        script,
        body,
    )


def _local_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _size(octets: int) -> str:
    return f"{octets:,} B" if octets < 10_000 else f"{octets / 1024:,.1f} KiB"


def message_rows(inbox: Inbox) -> Html:
    """The ``<tr>`` rows of the message list, newest first."""
    rows = []
    for entry in reversed(list(inbox)):
        s = entry.summary()
        rows.append(
            render(
                '<tr data-id="{}"><td><time datetime="{}">{}</time></td><td>{}</td>'
                '<td>{}</td><td><a href="{}">{}</a></td><td class="num">{}</td>'
                "<td>{}</td><td>{}</td></tr>",
                s["id"],
                s["received_at"],
                _local_time(entry.captured.received_at),
                s["mail_from"] or "<>",
                ", ".join(s["rcpt_to"]),
                _url("messages", s["id"]),
                s["subject"] or "(no subject)",
                _size(s["size"]),
                s["tls_version"] or "none",
                s["auth_identity"] or "-",
            )
        )
    if not rows:
        return Html('<tr class="empty"><td colspan="7">No messages yet.</td></tr>')
    return concat(rows)


def index_page(inbox: Inbox) -> Html:
    """The message list; ``inbox.js`` refreshes its rows when a message arrives."""
    return _page(
        "smtpsubmit inbox",
        render(
            "<h1>Messages</h1>"
            '<table class="messages"><thead><tr><th>Received</th><th>From</th><th>To</th>'
            '<th>Subject</th><th class="num">Size</th><th>TLS</th><th>AUTH</th></tr></thead>'
            '<tbody id="messages" data-rows="/fragments/rows">{}</tbody></table>',
            message_rows(inbox),
        ),
        live=True,
    )


def _definitions(items: Iterable[tuple[str, Html | str]]) -> Html:
    """``<dt>``/``<dd>`` pairs, leaving out the empty ones (a message without Cc)."""
    return concat(
        render("<dt>{}</dt><dd>{}</dd>", name, value) for name, value in items if value != ""
    )


def message_page(entry: InboxEntry) -> Html:
    """Everything about one message: envelope, session, bodies, attachments, header
    fields, raw source."""
    s = entry.detail()
    base = ("messages", entry.id)
    bcc = [value for name, value in entry.headers if name.lower() == "bcc"]
    session = f"{s['via']}, TLS: {s['tls_version'] or 'none'}, AUTH: {s['auth_identity'] or '-'}"
    meta = _definitions(
        [
            ("Envelope from", s["mail_from"] or "<>"),
            ("Envelope to", ", ".join(s["rcpt_to"])),
            ("From", s["from"]),
            ("To", s["to"]),
            ("Cc", s["cc"]),
            (
                "Bcc field",
                render('<span class="bad">transmitted: {}</span>', "; ".join(bcc))
                if bcc
                else render('<span class="good">{}</span>', "not transmitted (stripped)"),
            ),
            ("Date", s["date"]),
            ("Received", f"{_local_time(entry.captured.received_at)} ({s['received_at']})"),
            ("Size", _size(s["size"])),
            ("Session", session),
            ("Client", f"EHLO {s['client_name']} from {s['peer']}"),
            ("Queue id", s["id"]),
        ]
    )
    html_part = (
        render(
            '<iframe class="html-part" sandbox="" referrerpolicy="no-referrer" '
            'title="HTML part" src="{}"></iframe><p class="note">Sandboxed: scripts do not '
            "run, remote images, styles and fonts are blocked.</p>",
            _url(*base, "html"),
        )
        if s["html"] is not None
        else Html('<p class="none">No HTML part.</p>')
    )
    text_part = (
        render('<pre class="text-part">{}</pre>', s["text"])
        if s["text"] is not None
        else Html('<p class="none">No text part.</p>')
    )
    attachments = concat(
        render(
            '<li><a href="{}" download="{}">{}</a> <span class="dim">{}, {}{}</span></li>',
            _url(*base, "attachments", str(a.index)),
            a.filename,
            a.filename,
            a.content_type,
            _size(a.size),
            f", inline <{a.content_id}>" if a.content_id else "",
        )
        for a in entry.attachments
    )
    headers = concat(
        render("<tr><th>{}</th><td>{}</td></tr>", name, value) for name, value in entry.headers
    )
    body = render(
        '<p class="back"><a href="/">&larr; all messages</a></p><h1>{}</h1>'
        '<dl class="meta">{}</dl>'
        '<nav class="sections"><a href="#html">HTML</a> <a href="#text">Text</a> '
        '<a href="#attachments">Attachments ({})</a> <a href="#headers">Header fields</a> '
        '<a href="#raw">Raw source</a> <a href="{}">JSON</a></nav>'
        '<section id="html"><h2>HTML</h2>{}</section>'
        '<section id="text"><h2>Text</h2>{}</section>'
        '<section id="attachments"><h2>Attachments</h2><ul>{}</ul></section>'
        '<section id="headers"><h2>Header fields</h2><table class="headers">{}</table></section>'
        '<section id="raw"><h2>Raw source</h2><p><a href="{}" download="{}.eml">Download '
        '.eml</a></p><pre class="raw">{}</pre></section>',
        s["subject"] or "(no subject)",
        meta,
        len(entry.attachments),
        _url("api", *base),
        html_part,
        text_part,
        attachments or Html('<li class="none">None.</li>'),
        headers,
        _url(*base, "raw"),
        entry.id,
        entry.raw_text(),
    )
    return _page(s["subject"] or "(no subject)", body)
