"""What the optional hooks cost per message: telemetry (off, API only, SDK recording) and
DKIM signing (Ed25519, RSA-2048), against the same send with neither.

One client sends N messages of about 1 KiB with ``sendmail`` over one connection to
Postfix's ``smtp-sink`` (or the fake server without it); each row runs in a fresh
interpreter, rows go round-robin, and the table shows medians::

    .venv/bin/python benchmarks/otel_bench.py            # 2,000 messages, 5 repetitions
    .venv/bin/python benchmarks/otel_bench.py --quick    # 500 messages, 3 repetitions

Rows:

- ``no extras``: opentelemetry, dkimpy and PyNaCl cannot be imported (as if not installed):
  the hooks find no telemetry and no signer. The baseline.
- ``otel API, no SDK``: the API installed, no SDK configured: telemetry is on by itself and
  reports to the API's no-op providers (what a library user gets by default).
- ``otel SDK, recording``: an SDK tracer provider exporting every span to memory and a
  meter provider with an in-memory reader (collected once at the end).
- ``DKIM Ed25519`` / ``DKIM RSA-2048``: no telemetry, every message signed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clients import raw_message  # noqa: E402
from servers import HOST, Services  # noqa: E402

ROWS = ("no extras", "otel API, no SDK", "otel SDK, recording", "DKIM Ed25519", "DKIM RSA-2048")
SIZE = 1024

BLOCK = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("opentelemetry", "dkim", "nacl"):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Missing())
"""


def _signer(algorithm: str) -> object:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from smtpsubmit.dkim import DKIMSigner

    if algorithm == "ed25519":
        key: object = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DKIMSigner(domain="example.com", selector="bench", private_key=pem)


def sample(row: str, port: int, count: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds per message for ``row`` (run in its own interpreter).

    The CPU time of the client process is what a hook costs; wall time also moves with
    the machine's load.
    """
    import anyio

    import smtpsubmit
    from smtpsubmit import telemetry

    options: dict[str, object] = {"tls": "insecure-cleartext"}
    finish = None
    if row == "otel SDK, recording":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        telemetry.instrument(
            tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
        )
        finish = reader.get_metrics_data
    elif row.startswith("DKIM"):
        telemetry.uninstrument()
        options["signer"] = _signer("ed25519" if "Ed25519" in row else "rsa")
    data = raw_message(SIZE)

    async def main() -> tuple[float, float]:
        async with smtpsubmit.SMTPClient(HOST, port, **options) as client:  # type: ignore[arg-type]
            await client.sendmail("a@example.com", ["b@example.com"], data)  # warm up
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                await client.sendmail("a@example.com", ["b@example.com"], data)
            elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        if finish is not None:
            finish()
        return elapsed / count, used / count

    if row == "no extras":
        assert not any(m.split(".")[0] == "opentelemetry" for m in sys.modules)
    return anyio.run(main)


def run_row(row: str, port: int, count: int) -> tuple[float, float]:
    prologue = BLOCK if row == "no extras" else ""
    code = (
        f"{prologue}\nimport sys, json\nsys.path.insert(0, {str(HERE)!r})\n"
        f"from otel_bench import sample\n"
        f"print(json.dumps(sample({row!r}, {port}, {count})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"{row}: {done.stderr.strip()[-2000:]}")
    wall, cpu = json.loads(done.stdout.strip().splitlines()[-1])
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 messages, 3 repetitions")
    parser.add_argument("--count", type=int, help="messages per sample")
    parser.add_argument("--reps", type=int, help="repetitions (medians are shown)")
    parser.add_argument("--json", type=Path, help="write the medians here")
    args = parser.parse_args(argv)
    count = args.count or (500 if args.quick else 2000)
    reps = args.reps or (3 if args.quick else 5)
    samples: dict[str, list[tuple[float, float]]] = {row: [] for row in ROWS}
    with Services() as services:
        server = services.smtp_sink()
        print(f"{count} messages of {SIZE} octets, sendmail, one connection, to {server}")
        for _ in range(reps):
            for row in ROWS:  # round-robin: drift hits every row alike
                samples[row].append(run_row(row, server.port, count))
    medians = {
        row: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for row, runs in samples.items()
    }
    base_cpu = medians[ROWS[0]][1]
    print(
        f"{'row':<22} {'wall us/msg':>12} {'msgs/s':>7} {'CPU us/msg':>11} {'CPU vs no extras':>18}"
    )
    for row, (wall, cpu) in medians.items():
        print(
            f"{row:<22} {wall * 1e6:12.1f} {1 / wall:7.0f} {cpu * 1e6:11.1f} "
            f"{(cpu - base_cpu) * 1e6:+9.1f} {100 * (cpu / base_cpu - 1):+6.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps({"count": count, "reps": reps, "median_s": medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
