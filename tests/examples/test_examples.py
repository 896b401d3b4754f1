"""Run every program in examples/ against the embedded fake server (no SMTP_HOST set)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import runpy
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRAMS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(autouse=True)
def _no_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples fall back to the fake server when SMTP_HOST is unset; make sure it is."""
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_USERNAME", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))  # what `python examples/x.py` does


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import an example by file name, as a module of its own for this test."""

    def load(name: str) -> ModuleType:
        module_name = f"example_{name}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Dataclasses and pydantic resolve string annotations through sys.modules.
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``Target`` of every ``smtp_target()`` an example opens, to inspect its server.

    The fake server's captured messages and transcripts stay readable after it stops.
    """
    import _target

    seen: list[Any] = []
    real = _target.smtp_target

    @contextlib.asynccontextmanager
    async def recording() -> AsyncIterator[Any]:
        async with real() as target:
            seen.append(target)
            yield target

    monkeypatch.setattr(_target, "smtp_target", recording)
    return seen


def client_verbs(transcript: list[Any]) -> list[str]:
    return [e.line.split(" ")[0].upper() for e in transcript if e.direction == "client"]


def check_send_basic(out: list[str], target: Any) -> None:
    captured = target.fake.messages
    # One line per result, naming the recipient, the final reply and its queue id...
    assert out == [
        f"accepted {target.recipient}: 250 2.0.0 Ok: queued as {m.queue_id} (queue id {m.queue_id})"
        for m in captured
    ] + [f"the fake server captured {len(captured)} messages over TLS"]
    # ...for what it says it sends: send(), then a session with a message and raw bytes.
    assert [m.message["Subject"] for m in captured] == [
        "Hello from send()",
        "First of two",
        "Second of two (raw bytes)",
    ]
    assert all(
        (m.mail_from, m.rcpt_to, m.tls, m.auth_identity)
        == (target.sender, [target.recipient], True, target.username)
        for m in captured
    )
    # send() is a connection of its own; the session carries two messages.
    assert [client_verbs(t).count("MAIL") for t in target.fake.transcripts] == [1, 2]
    assert all("STARTTLS" in client_verbs(t) for t in target.fake.transcripts)


def check_trio_program(out: list[str], target: Any) -> None:
    captured = target.fake.messages
    batch, pooled = captured[:5], captured[5:]
    assert out == [
        f"#{n}: 250 2.0.0 Ok: queued as {m.queue_id}" for n, m in enumerate(batch, 1)
    ] + [f"the fake server captured {len(captured)} messages"]
    assert [m.message["Subject"] for m in batch] == [f"Newsletter #{n}" for n in range(1, 6)]
    assert sorted(m.message["Subject"] for m in pooled) == [
        f"Newsletter #{n}" for n in (100, 101, 102)
    ]
    assert all(m.tls and m.auth_identity == target.username for m in captured)
    transcripts = target.fake.transcripts
    # The batch shares one connection; the pool opens at most its two.
    assert client_verbs(transcripts[0]).count("MAIL") == 5
    assert 1 <= len(transcripts) - 1 <= 2
    assert sum(client_verbs(t).count("MAIL") for t in transcripts[1:]) == 3


def check_fastapi_pool(out: list[str], target: Any) -> None:
    captured = target.fake.messages
    sent = [ast.literal_eval(line.removeprefix("200 ")) for line in out[:3]]
    assert sent == [
        {"accepted": [target.recipient], "refused": [], "queue_id": m.queue_id} for m in captured
    ]
    assert [m.message["Subject"] for m in captured] == [f"Hi #{n}" for n in range(3)]
    assert all(m.tls and m.auth_identity == target.username for m in captured)
    status, body = out[3].split(" ", 1)
    assert status == "422"
    assert "not an address" in ast.literal_eval(body)["detail"]  # refused before any I/O
    assert out[4:] == ["pool: {'connections': 1, 'busy': 0, 'waiting': 0}"]
    assert len(target.fake.transcripts) == 1  # one warm connection served every request


#: What each program in examples/ is for, checked on its output and its server.
EXPECTATIONS: dict[str, Callable[[list[str], Any], None]] = {
    "send_basic": check_send_basic,
    "trio_program": check_trio_program,
    "fastapi_pool": check_fastapi_pool,
}


def test_every_example_has_expectations() -> None:
    assert {p.stem for p in PROGRAMS} == set(EXPECTATIONS)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_example_runs_as_a_script_and_does_what_it_says(
    path: Path, capsys: pytest.CaptureFixture[str], targets: list[Any]
) -> None:
    source = path.read_text(encoding="utf-8")
    assert "def main(" in source
    assert 'if __name__ == "__main__":' in source
    runpy.run_path(str(path), run_name="__main__")
    [target] = targets
    assert target.fake is not None  # SMTP_HOST is unset: the embedded fake server
    assert target.fake.errors == []
    EXPECTATIONS[path.stem](capsys.readouterr().out.splitlines(), target)


def test_send_basic_sends_three_messages_over_tls(
    load: Callable[[str], ModuleType], targets: list[Any]
) -> None:
    module = load("send_basic")
    results = asyncio.run(module.run())
    [target] = targets
    captured = target.fake.messages
    assert [r.queue_id for r in results] == [m.queue_id for m in captured]
    assert all(r.accepted == (target.recipient,) and r.refused == {} for r in results)
    assert all(r.reply.code == 250 for r in results)


@pytest.mark.parametrize("count", [1, 4])
def test_trio_program_sends_a_batch_and_through_a_pool(
    count: int,
    load: Callable[[str], ModuleType],
    capsys: pytest.CaptureFixture[str],
    targets: list[Any],
) -> None:
    module = load("trio_program")
    assert trio.run(module.run, count) == count
    [target] = targets
    captured = target.fake.messages
    assert len(captured) == count + 3
    out = capsys.readouterr().out.splitlines()
    assert out[:count] == [
        f"#{n}: 250 2.0.0 Ok: queued as {m.queue_id}" for n, m in enumerate(captured[:count], 1)
    ]
    assert out[count:] == [f"the fake server captured {count + 3} messages"]


def test_fastapi_endpoint_sends_through_the_pool(load: Callable[[str], ModuleType]) -> None:
    from fastapi.testclient import TestClient

    module = load("fastapi_pool")
    with TestClient(module.app) as client:
        fake = module.app.state.target.fake
        assert fake is not None  # SMTP_HOST is unset: the embedded fake server
        for n in range(3):
            response = client.post(
                "/mail", json={"to": "bob@example.org", "subject": f"n{n}", "body": "Hi"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == ["bob@example.org"]
        captured = fake.messages
        assert [m.message["Subject"] for m in captured] == ["n0", "n1", "n2"]
        assert all(m.tls and m.auth_identity == "me@example.com" for m in captured)
        stats = module.app.state.pool.stats
        assert stats == {"connections": 1, "busy": 0, "waiting": 0}  # one warm connection

        bad = client.post(
            "/mail", json={"to": "x@y\r\nBcc: evil@example.com", "subject": "s", "body": "b"}
        )
        assert bad.status_code == 422
        assert len(fake.messages) == 3


def test_target_reads_a_real_server_from_the_environment(
    load: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    import smtpsubmit

    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_PORT", "465")
    monkeypatch.setenv("SMTP_USERNAME", "me@example.com")
    monkeypatch.setenv("SMTP_PASSWORD", "app-password")
    target = load("_target")._from_environment("smtp.example.com")
    assert (target.host, target.port, target.tls) == ("smtp.example.com", 465, None)
    assert (target.sender, target.recipient) == ("me@example.com", "me@example.com")
    client = target.client()
    assert client.tls_mode is smtpsubmit.TLSMode.IMPLICIT
    assert target.fake is None
