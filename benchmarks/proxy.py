"""A loopback TCP proxy that adds a fixed one-way delay and counts round trips.

Run as a process of its own (so its CPU is nobody's measurement)::

    python benchmarks/proxy.py --target 127.0.0.1:2525 --delay 0.010

It prints ``PORTS <proxy port> <control port>`` once listening. Every chunk read from
one side is written to the other ``delay`` seconds after it arrived. Each direction of
each connection has its own delay queue (a reader task stamps chunks with their due time,
a writer task sleeps until then), so chunks in flight overlap the way they do on a real
link: a pipelined burst costs one delay, not one per chunk, and order is preserved.

Round trips are counted as *turns*: each time the traffic of a connection changes from
client->server to server->client, as seen by the proxy. The control port answers a line
``STATS`` with a JSON object ``{"turns": .., "c2s_bytes": .., "s2c_bytes": ..,
"connections": ..}`` (totals since start; callers take differences).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import sys
from dataclasses import asdict, dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["ProxyStats", "main", "query_stats", "serve"]

C2S = "c2s"
S2C = "s2c"
READ_SIZE = 65536
#: Chunks a direction may hold in flight before its reader stops reading (backpressure).
QUEUE_CHUNKS = 4096


@dataclass
class ProxyStats:
    """Totals over every connection the proxy carried."""

    turns: int = 0
    c2s_bytes: int = 0
    s2c_bytes: int = 0
    connections: int = 0


class _Connection:
    """Direction bookkeeping of one proxied connection."""

    def __init__(self, stats: ProxyStats) -> None:
        self.stats = stats
        self.last: str | None = None

    def saw(self, direction: str, size: int) -> None:
        if not size:
            return
        if direction == S2C:
            self.stats.s2c_bytes += size
            if self.last == C2S:
                self.stats.turns += 1
        else:
            self.stats.c2s_bytes += size
        self.last = direction


def _nodelay(stream: SocketStream) -> None:
    with contextlib.suppress(OSError, KeyError):
        sock = stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _read_side(
    src: SocketStream,
    queue: MemoryObjectSendStream[tuple[float, bytes]],
    conn: _Connection,
    direction: str,
    delay: float,
) -> None:
    async with queue:
        chunk = b"-"
        while chunk:
            try:
                chunk = await src.receive(READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                chunk = b""  # end of stream: forwarded as a half-close
            conn.saw(direction, len(chunk))
            try:
                await queue.send((anyio.current_time() + delay, chunk))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the other side is gone


async def _write_side(
    queue: MemoryObjectReceiveStream[tuple[float, bytes]], dst: SocketStream
) -> None:
    async with queue:
        async for due, chunk in queue:
            wait = due - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
            try:
                if not chunk:
                    await dst.send_eof()
                    return
                await dst.send(chunk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return


async def _pump(
    src: SocketStream, dst: SocketStream, conn: _Connection, direction: str, delay: float
) -> None:
    send, receive = anyio.create_memory_object_stream[tuple[float, bytes]](QUEUE_CHUNKS)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_read_side, src, send, conn, direction, delay)
        tg.start_soon(_write_side, receive, dst)


async def _handle(
    client: SocketStream, target: tuple[str, int], delay: float, stats: ProxyStats
) -> None:
    async with client:
        try:
            async with await anyio.connect_tcp(*target) as upstream:
                _nodelay(client)
                _nodelay(upstream)
                stats.connections += 1
                conn = _Connection(stats)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pump, client, upstream, conn, C2S, delay)
                    tg.start_soon(_pump, upstream, client, conn, S2C, delay)
        except Exception as exc:  # one broken connection must not stop the proxy
            print(f"proxy: connection ended with {exc!r}", file=sys.stderr, flush=True)


async def _control(stream: SocketStream, stats: ProxyStats) -> None:
    async with stream:
        buffer = b""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                while b"\n" not in buffer:
                    buffer += await stream.receive()
                line, _, buffer = buffer.partition(b"\n")
                if line.strip().upper() == b"STATS":
                    await stream.send(json.dumps(asdict(stats)).encode() + b"\n")
                else:
                    await stream.send(b'{"error": "unknown command"}\n')


async def serve(target: tuple[str, int], delay: float, host: str = "127.0.0.1") -> None:
    """Listen on free ports of ``host``, print them, and proxy until cancelled."""
    stats = ProxyStats()
    proxy = await anyio.create_tcp_listener(local_host=host, local_port=0)
    control = await anyio.create_tcp_listener(local_host=host, local_port=0)
    proxy_port = proxy.extra(SocketAttribute.local_port)
    control_port = control.extra(SocketAttribute.local_port)
    print(f"PORTS {proxy_port} {control_port}", flush=True)

    async def handle(client: SocketStream) -> None:
        await _handle(client, target, delay, stats)

    async def handle_control(stream: SocketStream) -> None:
        await _control(stream, stats)

    async with proxy, control, anyio.create_task_group() as tg:
        tg.start_soon(proxy.serve, handle)
        tg.start_soon(control.serve, handle_control)


def query_stats(control_port: int, host: str = "127.0.0.1") -> ProxyStats:
    """Ask a running proxy for its totals (a blocking call: keep it out of timed code)."""
    with socket.create_connection((host, control_port), timeout=5) as sock:
        sock.sendall(b"STATS\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return ProxyStats(**json.loads(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delaying, turn-counting TCP proxy.")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay", type=float, default=0.010, help="one-way delay, seconds")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not math.isfinite(args.delay) or args.delay < 0:
        parser.error("--delay must be a non-negative number")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, (host or "127.0.0.1", int(port)), args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
