"""The dkim and otel extras are optional: without them everything else works, and nothing
imports them until they are used (each scenario in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

EXTRAS = ("opentelemetry", "dkim", "nacl")

BLOCK = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    # As if the extras were not installed.
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {extras!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
"""

SEND = """
import anyio
import smtpsubmit
from smtpsubmit.testing import FakeSMTPServer, Mode

async def main():
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        options = dict(tls="implicit", ssl_context=server.client_ssl_context())
        async with smtpsubmit.SMTPClient(server.host, server.port, **options) as client:
            await client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\\r\\n\\r\\nx")
            item = ("a@example.com", ["b@example.com"], b"Subject: y\\r\\n\\r\\ny")
            await client.send_batch([item])
        async with smtpsubmit.SMTPPool(server.host, server.port, **options) as pool:
            await pool.sendmail("a@example.com", ["b@example.com"], b"Subject: z\\r\\n\\r\\nz")
        print("sent", len(server.messages))

anyio.run(main)
"""

LOADED = """
print("loaded", sorted({{m.split(".")[0] for m in sys.modules}} & set({extras!r})))
"""


def run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_without_the_extras_sending_works_and_their_entry_points_say_what_to_install() -> None:
    script = (
        BLOCK.format(extras=EXTRAS)
        + SEND
        + """
import smtpsubmit.dkim, smtpsubmit.telemetry
assert smtpsubmit.telemetry.current() is None
for make in (
    lambda: smtpsubmit.dkim.DKIMSigner(domain="example.com", selector="s", private_key=b"k"),
    smtpsubmit.telemetry.instrument,
):
    try:
        make()
    except ImportError as exc:
        print("ImportError:", exc)
"""
        + LOADED.format(extras=EXTRAS)
    )
    assert run(script) == [
        "sent 3",
        "ImportError: DKIMSigner needs dkimpy: pip install 'smtpsubmit[dkim]'",
        "ImportError: telemetry needs the OpenTelemetry API: pip install 'smtpsubmit[otel]'",
        "loaded []",
    ]


def test_with_the_extras_installed_importing_and_configuring_imports_neither() -> None:
    script = """
import sys
import smtpsubmit, smtpsubmit.dkim, smtpsubmit.telemetry, smtpsubmit.sync
smtpsubmit.SMTPClient("smtp.example.com", 465)
smtpsubmit.SMTPPool("smtp.example.com", 465)
""" + LOADED.format(extras=EXTRAS)
    assert run(script) == ["loaded []"]


def test_with_the_extras_installed_the_first_send_switches_telemetry_on() -> None:
    script = "import sys\n" + SEND + LOADED.format(extras=EXTRAS)
    assert run(script) == ["sent 3", "loaded ['opentelemetry']"]


def test_with_the_api_but_no_sdk_nothing_is_done_until_an_sdk_is_configured() -> None:
    # The API as someone else's dependency: the hooks return at once. Once an SDK is set
    # as the global provider (any time later), spans are recorded.
    script = """
import anyio
import smtpsubmit
from smtpsubmit import telemetry
from smtpsubmit.testing import FakeSMTPServer, Mode
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

async def send(server):
    options = dict(tls="implicit", ssl_context=server.client_ssl_context())
    await smtpsubmit.SMTPClient(server.host, server.port, **options).sendmail(
        "a@example.com", ["b@example.com"], b"Subject: x\\r\\n\\r\\nx"
    )

async def main():
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        await send(server)
        print("before an SDK:", telemetry.current(), telemetry._active is not None)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await anyio.sleep(telemetry.UNSET_RECHECK)  # noticed within that
        await send(server)
        print("after:", sorted({s.name for s in exporter.get_finished_spans()}))

anyio.run(main)
"""
    assert run(script) == [
        "before an SDK: None True",
        "after: ['smtp connect', 'smtp open', 'smtp send', 'smtp tls', 'smtp transaction']",
    ]
