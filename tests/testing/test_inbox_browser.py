"""The web inbox in a real browser: headless Chromium driven by Selenium (Debian's chromium
and chromium-driver; CI installs them, a machine without them skips with the reason).

One scenario, as a developer lives it: ``python -m smtpsubmit serve --web 0`` in a child
process, the inbox page open and empty, an HTML message with an inline image and an
attachment sent through the library; the message appears without a reload, its page shows
the HTML part in a sandboxed iframe where its script did not run and its remote image,
stylesheet and background were not fetched (a loopback HTTP server counts requests, and a
direct visit proves the browser can reach it), the attachment downloads with its bytes.
The screenshots are saved under the test's tmp_path, and their paths printed.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import ssl
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fake_smtp_helpers import LineReader
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import smtpsubmit.sync

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: Seconds for any one wait: far above what each step takes.
BOUND = 20.0
SUBJECT = 'Welcome <img src=x onerror="document.title=1">'

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):  # .ci/run installs them: a skip there would hide a failure
        raise RuntimeError("CI must have chromium and chromedriver (apt-get install)")
    pytest.skip(
        "no chromium/chromedriver here: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour (so the browser really decodes the inline image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LOGO = _png(160, 40, (30, 110, 200))
ATTACHMENT = b"%PDF-1.4 not really\n" + bytes(range(256))


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = _png(1, 1, (255, 0, 0))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _counting_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback "remote" server: its base URL and the paths requested from it."""
    requests: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def _serve_web() -> Iterator[dict[str, str]]:
    """``python -m smtpsubmit serve --web 0`` in a child process; what its header says."""
    args = ["--starttls", "0", "--web", "0", "--user", "dev@example.com:pw"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "smtpsubmit", "serve", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        output = LineReader(proc.stdout, timeout=BOUND)
        output.expect("Press Ctrl-C to stop.")
        header = "\n".join(output.seen)
        found = {
            "port": re.search(r"starttls\s+127\.0\.0\.1:(\d+)", header),
            "ca": re.search(r"CA certificate: (\S+)", header),
            "url": re.search(r"web inbox: (\S+)", header),
        }
        assert all(found.values()), header
        yield {name: match[1] for name, match in found.items() if match}
        proc.terminate()
        assert proc.wait(timeout=BOUND) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def _chromium(downloads: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield driver
    finally:
        driver.quit()


def _message(remote: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "new@example.com", SUBJECT
    msg["Bcc"] = "audit@example.com"
    msg.set_content("Hello in text.\n")
    msg.add_alternative(
        f'<html><head><link rel="stylesheet" href="{remote}/style.css"></head>'
        f'<body style="background: url({remote}/background.png)">'
        '<h1 id="greeting">Hello <b>in HTML</b></h1>'
        '<p><img id="logo" alt="logo" src="cid:logo@example.com"></p>'
        f'<p><img id="remote" alt="remote" src="{remote}/pixel.png"></p>'
        "<script>document.body.setAttribute('data-script-ran', 'yes');"
        f"new Image().src = '{remote}/script-ran';</script></body></html>",
        subtype="html",
    )
    msg.get_payload()[1].add_related(LOGO, "image", "png", cid="<logo@example.com>")
    msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="report.pdf")
    return msg


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, BOUND, poll_frequency=0.1)


def test_inbox_in_chromium_lists_shows_sandboxes_and_downloads(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with (
        _counting_server() as (remote, requests),
        _serve_web() as served,
        _chromium(downloads) as driver,
    ):
        # The inbox is open before the message arrives: it must appear without a reload.
        driver.get(served["url"])
        _wait(driver).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "connected"
        )
        assert "No messages yet." in driver.find_element(By.ID, "messages").text

        smtpsubmit.sync.send(
            _message(remote),
            host="127.0.0.1",
            port=int(served["port"]),
            tls="starttls",
            ssl_context=ssl.create_default_context(cafile=served["ca"]),
            username="dev@example.com",
            password="pw",
        )
        link = _wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "#messages a"))
        assert link.text == SUBJECT  # the markup in the subject is text, not an element
        assert driver.find_elements(By.CSS_SELECTOR, "#messages img") == []
        row = driver.find_element(By.CSS_SELECTOR, "#messages tr").text
        assert "app@example.com" in row
        assert "new@example.com, audit@example.com" in row
        assert "dev@example.com" in row  # the AUTH user
        assert re.search(r"TLSv1\.[23]", row)
        list_shot = tmp_path / "inbox-list.png"
        driver.save_screenshot(str(list_shot))

        link.click()
        frame = _wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "iframe.html-part"))
        assert frame.get_attribute("sandbox") == ""  # every restriction: no scripts, no origin
        assert "not transmitted (stripped)" in driver.find_element(By.CSS_SELECTOR, "dl.meta").text
        assert driver.find_element(By.CSS_SELECTOR, "pre.text-part").text == "Hello in text."

        driver.switch_to.frame(frame)
        _wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert driver.find_element(By.ID, "greeting").text == "Hello in HTML"
        logo = driver.find_element(By.ID, "logo")
        remote_image = driver.find_element(By.ID, "remote")
        # Once the document is complete, every image load has ended: the inline image was
        # decoded, the remote one refused before any request left the browser.
        assert logo.get_property("naturalWidth") == 160
        assert remote_image.get_property("complete") is True
        assert remote_image.get_property("naturalWidth") == 0
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-script-ran") is None
        driver.switch_to.default_content()
        driver.set_window_size(1280, 1700)  # down to the attachments
        message_shot = tmp_path / "inbox-message.png"
        driver.save_screenshot(str(message_shot))

        driver.find_element(By.LINK_TEXT, "report.pdf").click()
        saved = downloads / "report.pdf"
        _wait(driver).until(lambda d: saved.is_file() and saved.read_bytes() == ATTACHMENT)

        # The control: the browser can reach the counting server, which counts.
        assert requests == []
        driver.get(f"{remote}/direct-visit")
        _wait(driver).until(lambda d: "/direct-visit" in requests)
        assert set(requests) <= {"/direct-visit", "/favicon.ico"}  # the page, its icon
    print(f"\nscreenshots: {list_shot} {message_shot}")
