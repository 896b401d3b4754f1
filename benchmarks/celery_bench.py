"""Celery throughput: messages a second through 1, 2 and 4 worker processes, next to one
process with an SMTPPool, all through the latency proxy (+10 ms each way by default).

    .venv/bin/python benchmarks/celery_bench.py                 # about a minute
    .venv/bin/python benchmarks/celery_bench.py --messages 600 --delay 0

Not part of the test run. It needs the ``celery`` extra and Debian's ``redis-server``;
it starts, on 127.0.0.1 only, a redis-server of its own (temporary directory, no
persistence), smtpsubmit's fake server in a process of its own (``servers.py fake``),
the latency proxy in front of it (``proxy.py``) and, per row, one Celery worker
(``celery -A celery_bench worker``, this very file), and stops all of them at the end.

Rows: ``SMTPPool`` in one process (1 and 4 connections, ``send_batch``); Celery prefork
workers of 1, 2 and 4 processes (one message per task: each process sends one message
at a time on its own pooled connection); a Celery threads worker (one process, 16
threads sharing one pool, so queued messages share windows). A Celery row's time runs
from the first ``apply_async`` to the last result read, after a warm-up that opens the
workers' connections. Nothing here asserts on timings: it prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import smtpsubmit  # noqa: E402

ENV_REDIS = "SMTPSUBMIT_BENCH_REDIS"
ENV_PORT = "SMTPSUBMIT_BENCH_SMTP_PORT"
ENV_READY = "SMTPSUBMIT_BENCH_READY"


def build_app(redis_url: str, smtp_port: int) -> tuple[Any, Any]:
    """The benchmark's Celery app and its sending task (workers and caller alike)."""
    from celery import Celery

    from smtpsubmit.contrib.celery import register_smtp_task

    app = Celery("smtpsubmit_bench", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
    task = register_smtp_task(
        app,
        "127.0.0.1",
        smtp_port,
        name="bench.send",
        tls=smtpsubmit.TLSMode.INSECURE_CLEARTEXT,
        store=f"{redis_url}/2",
        max_connections=16,
    )
    return app, task


if ENV_REDIS in os.environ:  # imported by a worker (`celery -A celery_bench worker`)
    from celery import signals

    app, _task = build_app(os.environ[ENV_REDIS], int(os.environ[ENV_PORT]))

    @signals.worker_ready.connect
    def _ready(**_: Any) -> None:
        Path(os.environ[ENV_READY]).write_text("ready", encoding="ascii")


def _log(text: str) -> None:
    print(f"[celery-bench] {text}", file=sys.stderr, flush=True)


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the prefork children too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server on a free loopback port; yields its URL (no database number)."""
    import redis
    from servers import free_port

    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def up() -> bool:
            with contextlib.suppress(redis.ConnectionError):
                return bool(client.ping())
            return False

        _wait(up, 10, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(proc)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far, from /proc."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def worker(
    folder: Path, redis_url: str, smtp_port: int, pool: str, concurrency: int
) -> Iterator[int]:
    ready = folder / f"ready-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        ENV_REDIS: redis_url,
        ENV_PORT: str(smtp_port),
        ENV_READY: str(ready),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--pool", pool]
    argv += ["--concurrency", str(concurrency), "--loglevel", "warning"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    log = (folder / "worker.log").open("ab")
    proc = subprocess.Popen(
        argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait(lambda: ready.exists() or proc.poll() is not None, 60, "the worker")
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited; see {folder / 'worker.log'}")
        yield proc.pid
    finally:
        _stop(proc)
        log.close()


def messages(count: int) -> list[EmailMessage]:
    """``count`` messages of about 1 KB, each with its own Message-ID."""
    run = uuid.uuid4().hex[:10]
    out = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"], msg["To"] = "bench@example.com", f"user{i}@example.org"
        msg["Subject"], msg["Message-ID"] = f"bench {i}", f"<{run}.{i}@bench.example>"
        msg.set_content("x" * 900 + "\n")
        out.append(msg)
    return out


def pool_rate(port: int, count: int, connections: int) -> float:
    """Messages a second of ``SMTPPool.send_batch`` in this process."""
    import anyio

    async def run() -> float:
        batch = messages(count)
        async with smtpsubmit.SMTPPool(
            "127.0.0.1", port, tls="insecure-cleartext", max_connections=connections
        ) as pool:
            await pool.send_batch(messages(connections * 2))  # open the connections
            started = time.perf_counter()
            outcomes = await pool.send_batch(batch)
            elapsed = time.perf_counter() - started
        assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)
        return count / elapsed

    return anyio.run(run)


def celery_rate(task: Any, count: int, warm_up: int, pid: int) -> tuple[float, float]:
    """Messages a second through the running worker, and its CPU ms per message."""
    task.send_batch(messages(warm_up)).wait(timeout=300, interval=0.05)
    batch = messages(count)
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    summary = task.send_batch(batch).wait(timeout=600, interval=0.02)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    if summary.sent != count:
        raise RuntimeError(f"not all sent: {summary}")
    return count / elapsed, cpu / count * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per row")
    parser.add_argument("--delay", type=float, default=0.010, help="proxy delay each way (s)")
    args = parser.parse_args(argv)
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        print("needs the celery extra: pip install -e '.[celery]'", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("needs redis-server (Debian: apt-get install redis-server)", file=sys.stderr)
        return 2
    from servers import Services

    rows: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp, Services() as services:
        folder = Path(tmp)
        fake = services.fake_server()
        target = services.proxy(fake, args.delay) if args.delay else fake
        _log(f"target: {target}")
        for connections in (1, 4):
            _log(f"SMTPPool, {connections} connection(s)")
            cpu = time.process_time()
            rate = pool_rate(target.port, args.messages, connections)
            cpu = (time.process_time() - cpu) / (args.messages + 2 * connections) * 1000
            rows.append((f"SMTPPool, 1 process, {connections} connection(s)", rate, cpu))
        with redis_server(folder) as redis_url:
            _app, task = build_app(redis_url, target.port)
            plan = [("prefork", n, f"Celery prefork, {n} worker process(es)") for n in (1, 2, 4)]
            plan.append(("threads", 16, "Celery threads, 1 process x 16 threads"))
            for pool, concurrency, name in plan:
                _log(name)
                with worker(folder, redis_url, target.port, pool, concurrency) as pid:
                    rate, cpu = celery_rate(task, args.messages, 4 * concurrency, pid)
                rows.append((name, rate, cpu))
    base = rows[1][1]
    print(f"\n{args.messages} messages per row, proxy +{args.delay * 1000:g} ms each way")
    print(f"({os.cpu_count()} CPUs; CPU = the sending process(es), ms per message)\n")
    print(f"| {'row':<42} | {'msg/s':>7} | {'vs SMTPPool x4':>14} | {'CPU ms/msg':>10} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 16}|{'-' * 12}|")
    for name, rate, cpu_ms in rows:
        shown = f"{cpu_ms:10.1f}" if cpu_ms is not None else " " * 10
        print(f"| {name:<42} | {rate:7.1f} | {rate / base:13.2f}x | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
