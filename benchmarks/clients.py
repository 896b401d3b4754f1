"""One measurement per process: a client sends N messages and reports what it took.

``run.py`` starts ``python benchmarks/clients.py '<job as JSON>'`` once per repetition, so
each client runs alone in a fresh interpreter (nothing warm, nothing shared) and its CPU
(``time.process_time()``) and peak memory (``ru_maxrss``) are its own. The last line of
output is ``RESULT <measurement as JSON>``.

Timing and CPU cover the send loop only: the connection is opened (and greeted) before the
clock starts, and closed after it stops. Round trips come from the latency proxy's turn
counter, read before and after the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import smtplib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import anyio
from proxy import query_stats

__all__ = [
    "RCPT",
    "SENDER",
    "Job",
    "Measurement",
    "email_message",
    "raw_message",
    "write_raw_message",
]

HOST = "127.0.0.1"
SENDER = "sender@bench.example"
RCPT = "rcpt@bench.example"
LOCAL_HOSTNAME = "bench.localhost"
TIMEOUT = 300.0


@dataclass
class Job:
    """What one worker process does."""

    client: str  #: a key of ``RUNNERS``
    port: int
    count: int = 1
    size: int = 1024  #: message size in octets (ignored with ``message_file``)
    window: int = 16  #: send_batch window
    chunking: bool = True  #: smtpsubmit: use BDAT when offered
    connections: int = 8  #: pool size / number of aiosmtplib clients
    tasks: int = 16  #: concurrent sending tasks for the pool
    control_port: int | None = None  #: the latency proxy's, to count turns
    message_file: str | None = None  #: send this file's bytes (the large-message rows)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class Measurement:
    """What one worker process measured."""

    elapsed: float = 0.0  #: seconds of wall time for the send loop
    cpu: float = 0.0  #: seconds of process CPU (user + system) for the send loop
    sent: int = 0
    failed: int = 0
    message_bytes: int = 0  #: size of one message as given to the client
    turns: int | None = None  #: direction changes seen by the proxy during the loop
    rss_base_kib: int | None = None  #: large message: ru_maxrss when the send starts
    rss_peak_kib: int | None = None  #: large message: ru_maxrss when the send is done
    extensions: str = ""  #: what smtpsubmit used: PIPELINING, CHUNKING
    unavailable: str | None = None
    error: str | None = None


# -- messages --------------------------------------------------------------------------

_HEADERS = (
    f"From: Bench Sender <{SENDER}>\r\nTo: Bench Recipient <{RCPT}>\r\n"
    "Subject: smtpsubmit benchmark message\r\n"
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    "Message-ID: <bench.1@bench.example>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
)
_LINE = b"The quick brown fox jumps over the lazy dog while the benchmark keeps time.\r\n"


def _layout(size: int) -> tuple[bytes, int, bytes]:
    head = _HEADERS.encode()
    lines, rest = divmod(max(size - len(head), 2), len(_LINE))
    tail = b"x" * max(rest - 2, 0) + b"\r\n" if rest else b""
    return head, lines, tail


def raw_message(size: int) -> bytes:
    """An RFC 5322 message of exactly ``size`` octets (CRLF lines of 78 octets)."""
    head, lines, tail = _layout(size)
    return head + _LINE * lines + tail


def write_raw_message(path: Path, size: int) -> None:
    """Write ``raw_message(size)`` to ``path`` without holding it in memory.

    The parent stays small: a child's ``ru_maxrss`` starts at its parent's peak (Linux
    carries the pre-exec high-water mark over), one more reason the workers read VmHWM.
    """
    head, lines, tail = _layout(size)
    block = 10_000
    with path.open("wb") as f:
        f.write(head)
        for start in range(0, lines, block):
            f.write(_LINE * min(block, lines - start))
        f.write(tail)


def email_message(size: int) -> EmailMessage:
    """An ``EmailMessage`` whose serialised form is about ``size`` octets."""
    msg = EmailMessage()
    msg["From"] = f"Bench Sender <{SENDER}>"
    msg["To"] = f"Bench Recipient <{RCPT}>"
    msg["Subject"] = "smtpsubmit benchmark message"
    msg["Date"] = formatdate(0, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="bench.example")
    line = _LINE.decode().replace("\r\n", "\n")
    msg.set_content(line * max((size - 330) // len(line), 1))
    return msg


# -- measuring -------------------------------------------------------------------------


def _reset_peak_rss() -> None:
    """Make ru_maxrss start again from the current RSS (Linux: clear_refs ``5``)."""
    gc.collect()
    # Without it, the baseline is the peak so far (which includes building the message).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _maxrss_kib() -> int:
    """Peak RSS of this process in KiB: VmHWM, which ``_reset_peak_rss`` resets.

    ``ru_maxrss`` is the same high-water mark but also includes the mark inherited across
    exec from the parent's address space, so it cannot go below the parent's peak; it is
    only the fallback where /proc is missing.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Meter:
    """Wall time, process CPU and proxy turns between ``start()`` and ``stop()``."""

    def __init__(self, job: Job, result: Measurement) -> None:
        self.job = job
        self.result = result
        self._turns = 0
        self._t0 = self._c0 = 0.0

    def start(self) -> None:
        if self.job.control_port is not None:
            self._turns = query_stats(self.job.control_port).turns
        if self.job.message_file:  # connected and greeted: what follows is the send
            _reset_peak_rss()
            self.result.rss_base_kib = _maxrss_kib()
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.result.elapsed = time.perf_counter() - self._t0
        self.result.cpu = time.process_time() - self._c0
        if self.job.control_port is not None:
            self.result.turns = query_stats(self.job.control_port).turns - self._turns
        if self.job.message_file:
            self.result.rss_peak_kib = _maxrss_kib()


# -- smtpsubmit ------------------------------------------------------------------------


def _smtpsubmit_kwargs(job: Job) -> dict[str, Any]:
    import smtpsubmit

    return {
        "tls": smtpsubmit.TLSMode.INSECURE_CLEARTEXT,
        "local_hostname": LOCAL_HOSTNAME,
        "chunking": job.chunking,
        "timeout": TIMEOUT,
    }


def _used(client: Any, job: Job) -> str:
    ext = client.extensions
    used = ["PIPELINING"] if ext.pipelining else []
    if ext.chunking and job.chunking:
        used.append("CHUNKING")
    return "+".join(used) or "none"


async def smtpsubmit_each(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    import smtpsubmit

    async with smtpsubmit.SMTPClient(HOST, job.port, **_smtpsubmit_kwargs(job)) as client:
        result.extensions = _used(client, job)
        send: Callable[[], Awaitable[object]]
        if isinstance(item, EmailMessage):

            def send() -> Awaitable[object]:
                return client.send_message(item)
        else:

            def send() -> Awaitable[object]:
                return client.sendmail(SENDER, [RCPT], item)

        meter.start()
        for _ in range(job.count):
            try:
                await send()
                result.sent += 1
            except smtpsubmit.SMTPError as exc:
                result.failed += 1
                result.error = repr(exc)
        meter.stop()


async def smtpsubmit_batch(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    import smtpsubmit

    async with smtpsubmit.SMTPClient(HOST, job.port, **_smtpsubmit_kwargs(job)) as client:
        if not hasattr(client, "send_batch"):
            result.unavailable = "SMTPClient.send_batch does not exist yet"
            return
        result.extensions = _used(client, job)
        items = [item if isinstance(item, EmailMessage) else (SENDER, [RCPT], item)]
        items *= job.count
        meter.start()
        outcomes = await client.send_batch(items, window=job.window)
        meter.stop()
        for outcome in outcomes:
            if isinstance(outcome, smtpsubmit.SendResult):
                result.sent += 1
            else:
                result.failed += 1
                result.error = repr(outcome)


async def smtpsubmit_pool(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    import smtpsubmit

    kwargs = _smtpsubmit_kwargs(job)
    async with smtpsubmit.SMTPPool(
        HOST, job.port, max_connections=job.connections, **kwargs
    ) as pool:
        async with anyio.create_task_group() as tg:  # warm-up: open every connection
            for _ in range(job.connections):
                tg.start_soon(pool.sendmail, SENDER, [RCPT], item)
        remaining = job.count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                try:
                    await pool.sendmail(SENDER, [RCPT], item)
                    result.sent += 1
                except smtpsubmit.SMTPError as exc:
                    result.failed += 1
                    result.error = repr(exc)

        meter.start()
        async with anyio.create_task_group() as tg:
            for _ in range(job.tasks):
                tg.start_soon(worker)
        meter.stop()


# -- aiosmtplib ------------------------------------------------------------------------


async def _aiosmtplib_connect(job: Job) -> Any:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(
        hostname=HOST,
        port=job.port,
        use_tls=False,
        start_tls=False,
        local_hostname=LOCAL_HOSTNAME,
        timeout=TIMEOUT,
    )
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def _aiosmtplib_send(smtp: Any, item: Any, result: Measurement) -> None:
    import aiosmtplib

    try:
        if isinstance(item, EmailMessage):
            await smtp.send_message(item)
        else:
            await smtp.sendmail(SENDER, [RCPT], item)
        result.sent += 1
    except aiosmtplib.SMTPException as exc:
        result.failed += 1
        result.error = repr(exc)


async def aiosmtplib_each(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    smtp = await _aiosmtplib_connect(job)
    try:
        meter.start()
        for _ in range(job.count):
            await _aiosmtplib_send(smtp, item, result)
        meter.stop()
    finally:
        await smtp.quit()


async def aiosmtplib_concurrent(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    clients = [await _aiosmtplib_connect(job) for _ in range(job.connections)]
    warmup = Measurement()
    async with anyio.create_task_group() as tg:  # same warm-up as the pool's
        for smtp in clients:
            tg.start_soon(_aiosmtplib_send, smtp, item, warmup)
    remaining = job.count

    async def worker(smtp: Any) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await _aiosmtplib_send(smtp, item, result)

    try:
        meter.start()
        async with anyio.create_task_group() as tg:
            for smtp in clients:
                tg.start_soon(worker, smtp)
        meter.stop()
    finally:
        for smtp in clients:
            await smtp.quit()


# -- smtplib ---------------------------------------------------------------------------


def smtplib_each(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    with smtplib.SMTP(HOST, job.port, local_hostname=LOCAL_HOSTNAME, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        meter.start()
        for _ in range(job.count):
            try:
                if isinstance(item, EmailMessage):
                    smtp.send_message(item)
                else:
                    smtp.sendmail(SENDER, [RCPT], item)
                result.sent += 1
            except smtplib.SMTPException as exc:
                result.failed += 1
                result.error = repr(exc)
        meter.stop()


# -- the floor: no SMTP logic at all ---------------------------------------------------


class _CountingProtocol(asyncio.Protocol):
    """Counts complete replies (a final line: ``NNN`` and a space) and wakes the sender when
    the ones it waits for are in. No parsing beyond that."""

    def __init__(self) -> None:
        self.replies_in = 0
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None
        self._partial = b""

    def data_received(self, data: bytes) -> None:
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        self.replies_in += sum(1 for line in data[:end].split(b"\n") if line[3:4] == b" ")
        if self.waiter is not None and self.replies_in >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    async def replies(self, count: int) -> None:
        self.want += count
        if self.replies_in < self.want:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


async def floor_each(job: Job, result: Measurement, item: Any, meter: Meter) -> None:
    """What two round trips per message cost a Python client and nothing else: a bare
    asyncio protocol writes pre-rendered MAIL, RCPT and DATA, waits for their 3 replies,
    writes the body and its end, waits for 1. No checks, no parsing, no results: the
    ceiling for any client that sends each message on its own with PIPELINING and DATA."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_CountingProtocol, HOST, job.port)
    envelope = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
    body = item + b".\r\n"
    await protocol.replies(1)  # the greeting
    transport.write(f"EHLO {LOCAL_HOSTNAME}\r\n".encode())
    await protocol.replies(1)
    meter.start()
    for _ in range(job.count):
        transport.write(envelope)
        await protocol.replies(3)
        transport.write(body)
        await protocol.replies(1)
        result.sent += 1
    meter.stop()
    transport.write(b"QUIT\r\n")
    await protocol.replies(1)
    transport.close()


AsyncRunner = Callable[[Job, Measurement, Any, Meter], Awaitable[None]]
SyncRunner = Callable[[Job, Measurement, Any, Meter], None]

#: client key -> (runner, is_async, sends an EmailMessage)
RUNNERS: dict[str, tuple[AsyncRunner | SyncRunner, bool, bool]] = {
    "smtpsubmit.sendmail": (smtpsubmit_each, True, False),
    "smtpsubmit.send_message": (smtpsubmit_each, True, True),
    "smtpsubmit.send_batch": (smtpsubmit_batch, True, False),
    "smtpsubmit.pool": (smtpsubmit_pool, True, False),
    "aiosmtplib.sendmail": (aiosmtplib_each, True, False),
    "aiosmtplib.send_message": (aiosmtplib_each, True, True),
    "aiosmtplib.concurrent": (aiosmtplib_concurrent, True, False),
    "smtplib.sendmail": (smtplib_each, False, False),
    "smtplib.send_message": (smtplib_each, False, True),
    "floor": (floor_each, True, False),
}


def run_job(job: Job) -> Measurement:
    """Build the message, reset the peak-memory mark, run the client, measure."""
    result = Measurement()
    runner, is_async, wants_email = RUNNERS[job.client]
    item: bytes | EmailMessage
    if job.message_file:
        item = Path(job.message_file).read_bytes()  # one allocation of the file's size
    elif wants_email:
        item = email_message(job.size)
    else:
        item = raw_message(job.size)
    result.message_bytes = len(item) if isinstance(item, bytes) else len(item.as_bytes())
    meter = Meter(job, result)
    if is_async:
        anyio.run(runner, job, result, item, meter, backend="asyncio")  # type: ignore[arg-type]
    else:
        runner(job, result, item, meter)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: clients.py '<job as JSON>'", file=sys.stderr)
        return 2
    try:
        result = run_job(Job.from_json(args[0]))
    except Exception as exc:
        traceback.print_exc()
        result = Measurement(error=f"{type(exc).__name__}: {exc}")
    print("RESULT " + json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
