"""The web inbox (``serve --web``) without a browser: its JSON API, downloads, response
policies and escaping, served by Hypercorn on the fake server's own loop (asyncio and trio).
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

import smtpsubmit
from smtpsubmit.testing import CapturedMessage, FakeSMTPServer
from smtpsubmit.testing._cli import serve_main
from smtpsubmit.testing._inbox import Inbox
from smtpsubmit.testing._inbox_html import message_page, message_rows
from smtpsubmit.testing._inbox_web import (
    HTML_PART_POLICY,
    content_disposition,
    create_app,
    is_loopback,
    serve_inbox,
)

ATTACHMENT = bytes(range(256)) * 4
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _html_message(subject: str = "Welcome") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "new@example.com", subject
    msg["Bcc"] = "audit@example.com"
    msg.set_content("Hello in text.\n")
    msg.add_alternative('<p>Hello <b>in HTML</b><img src="cid:logo@example.com"></p>', "html")
    msg.get_payload()[1].add_related(
        b"\x89PNG\r\n\x1a\nlogo", maintype="image", subtype="png", cid="<logo@example.com>"
    )
    msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="report.pdf")
    return msg


def _captured(data: bytes, **overrides: Any) -> CapturedMessage:
    fields: dict[str, Any] = {
        "queue_id": "0123456789AB",
        "mail_from": "app@example.com",
        "mail_from_params": {},
        "recipients": (),
        "data": data,
        "message": BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(data),
        "via": "DATA",
        "tls": True,
        "tls_version": "TLSv1.3",
        "auth_identity": "user@example.com",
        "client_name": "client.example",
        "peer": ("127.0.0.1", 40000),
        "transcript": (),
    }
    return CapturedMessage(**{**fields, **overrides})


def _fetch(url: str, **headers: str) -> tuple[int, Message, bytes]:
    """Status, header fields (names case-insensitive), body."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


async def _get(url: str, **headers: str) -> tuple[int, Message, bytes]:
    return await anyio.to_thread.run_sync(lambda: _fetch(url, **headers))


@contextlib.asynccontextmanager
async def _inbox_and_server() -> AsyncIterator[tuple[FakeSMTPServer, str]]:
    inbox = Inbox()
    async with FakeSMTPServer(users={"u": "p"}, on_message=inbox.add) as server:
        async with serve_inbox(inbox) as url:
            yield server, url


async def _send(server: FakeSMTPServer, msg: EmailMessage) -> None:
    await smtpsubmit.send(
        msg,
        host=server.host,
        port=server.port,
        tls="starttls",
        ssl_context=server.client_ssl_context(),
        username="u",
        password="p",
    )


@pytest.mark.anyio
async def test_json_api_shows_a_message_sent_through_the_library() -> None:
    async with _inbox_and_server() as (server, url):
        await _send(server, _html_message())
        [captured] = await server.wait_for_messages(1)

        status, headers, body = await _get(url + "api/messages")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        [summary] = json.loads(body)["messages"]
        assert summary == {
            "id": captured.queue_id,
            "received_at": summary["received_at"],
            "mail_from": "app@example.com",
            "rcpt_to": ["new@example.com", "audit@example.com"],
            "from": "app@example.com",
            "to": "new@example.com",
            "subject": "Welcome",
            "size": len(captured.data),
            "tls_version": captured.tls_version,
            "auth_identity": "u",
            "attachments": 2,
        }

        status, _, body = await _get(f"{url}api/messages/{captured.queue_id}")
        detail = json.loads(body)
        assert detail["bcc_transmitted"] is False  # the client stripped it
        assert ["Subject", "Welcome"] in detail["headers"]
        assert detail["text"] == "Hello in text.\n"
        assert detail["html"].startswith("<p>Hello <b>in HTML</b>")
        assert detail["via"] == "BDAT"
        assert [(a["filename"], a["content_type"], a["size"]) for a in detail["attachments"]] == [
            ("part-1.png", "image/png", 12),
            ("report.pdf", "application/pdf", len(ATTACHMENT)),
        ]

        status, headers, body = await _get(f"{url}messages/{captured.queue_id}/attachments/1")
        assert (status, body) == (200, ATTACHMENT)
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Disposition"] == (
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        )
        status, _, body = await _get(f"{url}messages/{captured.queue_id}/raw")
        assert body == captured.data
        status, _, _ = await _get(f"{url}api/messages/NOSUCHID")
        assert status == 404


@pytest.mark.anyio
async def test_event_stream_announces_each_new_message() -> None:
    async with _inbox_and_server() as (server, url):
        connected = anyio.Event()

        def listen() -> dict[str, Any]:
            with urllib.request.urlopen(url + "api/events", timeout=10) as stream:
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                assert stream.readline() == b"retry: 1000\n"
                anyio.from_thread.run_sync(connected.set)
                while True:
                    line = stream.readline()
                    if line.startswith(b"data: "):
                        return dict(json.loads(line[6:]))

        announced: list[dict[str, Any]] = []

        async def listener() -> None:
            announced.append(await anyio.to_thread.run_sync(listen))

        with anyio.fail_after(15):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(listener)
                await connected.wait()
                await _send(server, _html_message("Announced"))
        [captured] = await server.wait_for_messages(1)
        assert [(a["id"], a["subject"]) for a in announced] == [(captured.queue_id, "Announced")]


@pytest.mark.anyio
async def test_a_request_naming_another_host_is_refused() -> None:
    # DNS rebinding: a page on evil.example, resolved to 127.0.0.1, must not read the inbox.
    async with _inbox_and_server() as (_, url):
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert (await _get(url + "api/messages"))[0] == 200
        assert (await _get(url + "api/messages", Host=f"localhost:{port}"))[0] == 200
        assert (await _get(url + "api/messages", Host=f"evil.example:{port}"))[0] == 404


@pytest.mark.anyio
async def test_allow_remote_accepts_any_host_name() -> None:
    inbox = Inbox()
    async with serve_inbox(inbox, "127.0.0.1", 0, allow_remote=True) as url:
        status, _, body = await _get(url + "api/messages", Host="mail-dev.example:8025")
        assert (status, json.loads(body)) == (200, {"messages": []})


def test_serve_refuses_a_non_loopback_web_host_unless_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        serve_main(["--plain", "0", "--web", "0", "--web-host", "0.0.0.0"])
    assert info.value.code == 2
    assert (
        "--web-host 0.0.0.0 is not a loopback address: whoever reaches it would read every "
        "captured message; add --web-allow-remote to mean it"
    ) in capsys.readouterr().err


def test_html_part_is_served_alone_under_a_policy_without_scripts_or_remote_content() -> None:
    inbox = Inbox()
    inbox.add(_captured(_html_message().as_bytes()))
    with TestClient(create_app(inbox)) as client:
        page = client.get("/messages/0123456789AB")
        assert '<iframe class="html-part" sandbox="" ' in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        part = client.get("/messages/0123456789AB/html")
        assert part.headers["Content-Security-Policy"] == HTML_PART_POLICY
        assert part.headers["Content-Type"] == "text/html; charset=utf-8"
        # An image part named by a cid: reference is inlined: the sandbox fetches nothing.
        logo = base64.b64encode(b"\x89PNG\r\n\x1a\nlogo").decode()
        assert f'<img src="data:image/png;base64,{logo}">' in part.text
        for path in ("/messages/0123456789AB/attachments/0", "/messages/0123456789AB/raw"):
            response = client.get(path)
            assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get("/messages/0123456789AB/attachments/9").status_code == 404
        assert client.get("/static/inbox.js").headers["Content-Type"].startswith("text/javascript")
        assert client.get("/static/../_inbox.py").status_code == 404


def test_every_text_from_the_message_is_escaped_in_the_pages() -> None:
    msg = EmailMessage()
    msg["From"] = f'"{HOSTILE}" <a@example.com>'
    msg["To"] = "b@example.com"
    msg["Subject"] = HOSTILE
    msg["X-Custom"] = HOSTILE
    msg.set_content(f"</pre>{HOSTILE}")
    msg.add_attachment(b"x", maintype="text", subtype="html", filename=f'{HOSTILE}".html')
    inbox = Inbox()
    inbox.add(
        _captured(
            msg.as_bytes(),
            mail_from=f"{HOSTILE}@example.com",
            auth_identity=HOSTILE,
            client_name=HOSTILE,
        )
    )
    [entry] = inbox
    with TestClient(create_app(inbox)) as client:
        pages = [client.get(p).text for p in ("/", "/fragments/rows", "/messages/0123456789AB")]
    for page in [*pages, message_rows(inbox), message_page(entry)]:
        assert "<script>" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # The file name keeps its last path segment ("</script>" has a slash), "<>" replaced.
    assert 'download="script__img src=x onerror=alert(1)__.html"' in pages[2]


def test_download_names_keep_no_path_and_no_quote() -> None:
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    assert content_disposition("Grüße 1.txt") == (
        "attachment; filename=\"Gr__e 1.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%201.txt"
    )
    msg = EmailMessage()
    msg.set_content("body")
    for name in ("../../.bashrc", 'a"b\tc.txt', "C:\\Windows\\evil.exe", "...", ""):
        msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=name)
    inbox = Inbox()
    inbox.add(_captured(msg.as_bytes()))
    [entry] = inbox
    assert [a.filename for a in entry.attachments] == [
        "bashrc",
        "a_b_c.txt",
        "evil.exe",
        "part-4.bin",
        "part-5.bin",
    ]


def test_loopback_means_localhost_or_a_loopback_address() -> None:
    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.1.2.3", "::1", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.1", "example.com", "10.0.0.1"]))


MALFORMED = [
    b"Subject: =?unknown-8bit?q?caf=E9?=\r\nContent-Type: text/plain; charset=x-nope\r\n"
    b"\r\n\xe9\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n",
    b"From: \xff\xfe <x@\xc3>\r\nSubject: \xed\xa0\x80\r\n\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n'
    b"\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n",
]


@given(st.binary(max_size=400))
@example(MALFORMED[0])
@example(MALFORMED[1])
@example(MALFORMED[2])
@example(MALFORMED[3])
@example(MALFORMED[4])
def test_any_message_renders_and_serialises(data: bytes) -> None:
    inbox = Inbox()
    inbox.add(_captured(data.replace(b"\r\n", b"\n"), mail_from="\udce9@x"))
    [entry] = inbox
    json.dumps(entry.detail(), ensure_ascii=False).encode("utf-8")
    message_page(entry).encode("utf-8")
    message_rows(inbox).encode("utf-8")
    for attachment in entry.attachments:
        content_disposition(attachment.filename).encode("latin-1")
