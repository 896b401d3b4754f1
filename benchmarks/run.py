"""smtpsubmit vs aiosmtplib vs smtplib vs smtp-source, on one loopback server, in one run.

    python benchmarks/run.py [--quick] [--json out.json]

See benchmarks/README.md for what each scenario measures and how.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from clients import LOCAL_HOSTNAME, RCPT, SENDER, Job, Measurement, raw_message, write_raw_message
from report import Row, Target, format_table, summarise, targets_summary, write_json
from servers import HOST, Service, Services, ensure_tools, find_postfix_tool

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
DELAY = 0.010  #: one-way latency added by the proxy, seconds
WORKER_TIMEOUT = 900.0


@dataclass(frozen=True)
class Settings:
    """Sizes of the run; ``--quick`` shrinks them."""

    reps: int = 5  #: repetitions of the direct (cheap) rows; the median is reported
    latency_reps: int = 1  #: repetitions of the proxied rows (latency-bound, stable)
    small: int = 1024  #: octets per message
    count: int = 2000  #: scenario 1
    latency_count: int = 300  #: scenario 2
    pool_count: int = 2000  #: scenario 3
    big: int = 25_000_000  #: scenario 4, octets
    windows: tuple[int, ...] = (16, 64)


QUICK = Settings(reps=1, latency_reps=1, count=1000, latency_count=40, pool_count=400)

TITLES = {
    "1": "1. 1 KB messages over one connection, direct to {sink}",
    "2a": "2a. Through the proxy (+10 ms each way), pipelining only: {sink}",
    "2b": "2b. Through the proxy (+10 ms each way), CHUNKING: smtpsubmit's fake server "
    "(smtp-sink has no CHUNKING)",
    "3a": "3a. 8 connections (SMTPPool vs 8 aiosmtplib clients), direct to {sink}",
    "3b": "3b. 8 connections through the proxy (+10 ms each way) to {sink}",
    "4": "4. One 25 MB message, direct to {sink} (peak mem = RSS growth during the send / size)",
}


# -- targets ---------------------------------------------------------------------------


def _at_least(factor: float) -> Callable[[Row, Row | None], bool | None]:
    def check(row: Row, base: Row | None) -> bool | None:
        return None if row.ratio is None else row.ratio >= factor

    return check


def _pipelined(row: Row, base: Row | None) -> bool | None:
    if row.ratio is None or row.rt_per_msg is None:
        return None
    return row.rt_per_msg <= 1.2 and row.ratio >= 3


def _big(row: Row, base: Row | None) -> bool | None:
    if row.ratio is None or row.mem_growth is None:
        return None
    return row.mem_growth < 2 and row.ratio >= 2


# -- the plan --------------------------------------------------------------------------


@dataclass
class Case:
    """A row and how to produce one sample of it."""

    row: Row
    port: int
    job: Job | None  #: None: smtp-source, run from here
    reps: int


@dataclass(frozen=True)
class Servers:
    sink: Service
    fake: Service
    sink_proxy: Service
    fake_proxy: Service


def plan(s: Settings, srv: Servers, big_file: Path) -> list[Case]:
    """Every row of the run, in table order."""
    cases: list[Case] = []

    def add(
        key: str,
        label: str,
        server: Service,
        job: Job | None,
        *,
        baseline: str | None = None,
        target: Target | None = None,
    ) -> None:
        scenario = key.split("/")[0]
        proxied = server.control_port is not None
        count = {"1": s.count, "2a": s.latency_count, "2b": s.latency_count}.get(
            scenario, s.pool_count
        )
        if scenario == "4":
            count = 1
        row = Row(
            key=key,
            scenario=scenario,
            label=label,
            server=server.name,
            count=count,
            delay=DELAY if proxied else None,
            size_metrics=scenario == "4",
            baseline=f"{scenario}/{baseline}" if baseline else None,
            target=target,
        )
        if job is not None:
            job = replace(job, port=server.port, count=count, control_port=server.control_port)
        cases.append(Case(row, server.port, job, s.latency_reps if proxied else s.reps))

    def job(client: str, **kw: Any) -> Job:
        return Job(client=client, port=0, size=s.small, **kw)

    w = s.windows[0]
    sink, fake, sink_px, fake_px = srv.sink, srv.fake, srv.sink_proxy, srv.fake_proxy
    raw, msg = "aiosmtplib.sendmail", "aiosmtplib.send_message"

    # 1. throughput and CPU over one connection
    add("1/smtp-source", "smtp-source (Postfix, C, no pipelining)", sink, None)
    add("1/smtplib.sendmail", "smtplib sendmail (raw bytes)", sink, job("smtplib.sendmail"))
    add("1/smtplib.send_message", "smtplib send_message", sink, job("smtplib.send_message"))
    add(
        "1/floor",
        "floor: bare asyncio, pre-rendered, 2 RT/msg",
        sink,
        job("floor"),
        baseline=raw,  # the ceiling of the per-message sendmail ratio
    )
    add("1/" + raw, "aiosmtplib sendmail (raw bytes)", sink, job(raw))
    add("1/" + msg, "aiosmtplib send_message", sink, job(msg))
    add(
        "1/smtpsubmit.sendmail",
        "smtpsubmit sendmail (raw bytes)",
        sink,
        job("smtpsubmit.sendmail"),
        baseline=raw,
        target=Target(">= 2x", _at_least(2)),
    )
    add(
        "1/smtpsubmit.send_message",
        "smtpsubmit send_message",
        sink,
        job("smtpsubmit.send_message"),
        baseline=msg,
        target=Target(">= 1.5x", _at_least(1.5)),
    )
    add(
        "1/smtpsubmit.send_batch",
        f"smtpsubmit send_batch (raw, window {w})",
        sink,
        job("smtpsubmit.send_batch", window=w),
        baseline=raw,
    )

    # 2a. latency, pipelining only (smtp-sink)
    add("2a/smtplib.sendmail", "smtplib sendmail", sink_px, job("smtplib.sendmail"))
    add("2a/" + raw, "aiosmtplib sendmail", sink_px, job(raw))
    add(
        "2a/smtpsubmit.sendmail",
        "smtpsubmit sendmail (PIPELINING)",
        sink_px,
        job("smtpsubmit.sendmail"),
        baseline=raw,
    )
    add(
        "2a/smtpsubmit.send_batch",
        "smtpsubmit send_batch (PIPELINING)",
        sink_px,
        job("smtpsubmit.send_batch", window=w),
        baseline=raw,
        target=Target("<= 1.2 RT/msg, >= 3x", _pipelined),
    )

    # 2b. latency, CHUNKING (fake server)
    add("2b/" + raw, "aiosmtplib sendmail", fake_px, job(raw))
    add(
        "2b/smtpsubmit.sendmail.nochunking",
        "smtpsubmit sendmail (chunking=False)",
        fake_px,
        job("smtpsubmit.sendmail", chunking=False),
        baseline=raw,
    )
    add(
        "2b/smtpsubmit.sendmail",
        "smtpsubmit sendmail (BDAT LAST)",
        fake_px,
        job("smtpsubmit.sendmail"),
        baseline=raw,
    )
    for window in s.windows:
        add(
            f"2b/smtpsubmit.send_batch.w{window}",
            f"smtpsubmit send_batch (window {window})",
            fake_px,
            job("smtpsubmit.send_batch", window=window),
            baseline=raw,
            target=Target(">= 10x", _at_least(10)),
        )

    # 3. eight connections, direct and through the proxy
    for scenario, server in (("3a", sink), ("3b", sink_px)):
        add(
            f"{scenario}/aiosmtplib.concurrent",
            "8 aiosmtplib clients, 8 tasks",
            server,
            job("aiosmtplib.concurrent", connections=8),
        )
        add(
            f"{scenario}/smtpsubmit.pool",
            "SMTPPool(max_connections=8), 16 tasks",
            server,
            job("smtpsubmit.pool", connections=8, tasks=16),
            baseline="aiosmtplib.concurrent",
            target=Target(">= 2x", _at_least(2)),
        )

    # 4. one large message
    def big(client: str) -> Job:
        return Job(client=client, port=0, message_file=str(big_file))

    add("4/smtplib.sendmail", "smtplib sendmail", sink, big("smtplib.sendmail"))
    add("4/" + raw, "aiosmtplib sendmail", sink, big(raw))
    add(
        "4/smtpsubmit.sendmail",
        "smtpsubmit sendmail (DATA)",
        sink,
        big("smtpsubmit.sendmail"),
        baseline=raw,
        target=Target("mem < 2x size, >= 2x", _big),
    )
    add(
        "4/smtpsubmit.sendmail.bdat",
        "smtpsubmit sendmail (BDAT) [fake server]",
        fake,
        big("smtpsubmit.sendmail"),
        baseline=raw,
    )
    return cases


# -- running ---------------------------------------------------------------------------


def run_worker(job: Job) -> Measurement:
    """One sample in a fresh interpreter (see clients.py)."""
    argv = [sys.executable, str(HERE / "clients.py"), json.dumps(asdict(job))]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return Measurement(error=f"worker timed out after {WORKER_TIMEOUT:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = Measurement(**json.loads(line[len("RESULT ") :]))
            if result.error and proc.stderr.strip():
                print(proc.stderr.strip()[-2000:], file=sys.stderr)
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return Measurement(error=f"worker exited {proc.returncode}: {tail[0][:200]}")


def run_smtp_source(port: int, count: int, source_file: Path) -> Measurement:
    """Postfix's smtp-source, one session, ``count`` messages; CPU from RUSAGE_CHILDREN."""
    tool = find_postfix_tool("smtp-source")
    if tool is None:
        return Measurement(unavailable="smtp-source is not installed")
    argv = [tool, "-d", "-s", "1", "-m", str(count), "-F", str(source_file)]
    argv += ["-f", SENDER, "-t", RCPT, "-M", LOCAL_HOSTNAME, f"{HOST}:{port}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        return Measurement(error=f"smtp-source exited {proc.returncode}: {proc.stderr[-200:]}")
    return Measurement(
        elapsed=elapsed, cpu=cpu, sent=count, message_bytes=source_file.stat().st_size
    )


def run_cases(cases: list[Case], source_file: Path) -> None:
    """Repetitions round-robin within each scenario, so drift hits every row alike."""
    scenarios: dict[str, list[Case]] = {}
    for case in cases:
        scenarios.setdefault(case.row.scenario, []).append(case)
    for scenario, group in scenarios.items():
        started = time.perf_counter()
        for rep in range(max(c.reps for c in group)):
            for case in group:
                if rep >= case.reps:
                    continue
                if case.job is None:
                    sample = run_smtp_source(case.port, case.row.count, source_file)
                else:
                    sample = run_worker(case.job)
                case.row.samples.append(sample)
                if sample.unavailable:
                    case.reps = rep + 1  # no point asking again
        took = time.perf_counter() - started
        print(f"[bench] scenario {scenario} done in {took:.1f} s", file=sys.stderr, flush=True)


# -- main ------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _postfix_version() -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "postfix"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _meta(args: argparse.Namespace, settings: Settings, problems: list[str]) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "settings": asdict(settings),
        "proxy_delay_each_way_s": DELAY,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
        "versions": {
            "smtpsubmit": _version("smtpsubmit"),
            "aiosmtplib": _version("aiosmtplib"),
            "anyio": _version("anyio"),
            "postfix": _postfix_version(),
        },
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller counts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--reps", type=int, help="repetitions of the direct rows")
    parser.add_argument("--latency-reps", type=int, help="repetitions of the proxied rows")
    parser.add_argument(
        "--only",
        metavar="SCENARIOS",
        help="comma-separated scenarios to run, e.g. 1,2b,4 (default: all)",
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    if args.reps:
        settings = replace(settings, reps=args.reps)
    if args.latency_reps:
        settings = replace(settings, latency_reps=args.latency_reps)

    began = time.perf_counter()
    problems = ensure_tools()
    for problem in problems:
        print(f"[bench] warning: {problem}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="smtpsubmit-bench-") as tmp, Services() as services:
        big_file = Path(tmp) / "big.eml"
        write_raw_message(big_file, settings.big)
        source_file = Path(tmp) / "small.txt"  # smtp-source -F: LF lines, it adds the CR
        source_file.write_bytes(raw_message(settings.small).replace(b"\r\n", b"\n"))
        sink = services.smtp_sink()
        fake = services.fake_server(chunking=True)
        servers = Servers(sink, fake, services.proxy(sink, DELAY), services.proxy(fake, DELAY))
        ports = f"{servers.sink_proxy.port}, {servers.fake_proxy.port}"
        print(f"[bench] servers: {sink}, {fake}; proxies on {ports}", file=sys.stderr)
        titles = {k: v.format(sink=sink.name) for k, v in TITLES.items()}
        cases = plan(settings, servers, big_file)
        run_smtp_source(sink.port, 200, source_file)  # warm-up, not recorded
        if args.only:
            wanted = {w.strip() for w in args.only.split(",")}
            cases = [c for c in cases if c.row.scenario in wanted or c.row.scenario[0] in wanted]
        run_cases(cases, source_file)
    rows = [case.row for case in cases]
    summarise(rows)
    took = time.perf_counter() - began

    mode = "quick" if args.quick else "full"
    reps = f"{settings.reps} rep(s) direct, {settings.latency_reps} proxied; medians"
    print(f"\nsmtpsubmit benchmark ({mode}: {reps}) in {took:.0f} s\n")
    print(format_table(rows, titles))
    print("\nTargets (ratio = smtpsubmit msgs/s, or MB/s in 4, over aiosmtplib's):")
    print(targets_summary(rows))
    meta = {**_meta(args, settings, problems), "duration_s": round(took, 1)}
    write_json(args.json, rows, meta)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
