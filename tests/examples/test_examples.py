"""Run every program in examples/ against the embedded fake server (no SMTP_HOST set)."""

from __future__ import annotations

import asyncio
import importlib.util
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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


def test_there_are_examples() -> None:
    assert {p.stem for p in PROGRAMS} >= {"send_basic", "trio_program", "fastapi_pool"}


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_example_runs_as_a_script(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = path.read_text(encoding="utf-8")
    assert "def main(" in source
    assert 'if __name__ == "__main__":' in source
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out


def test_send_basic_sends_three_messages_over_tls(load: Callable[[str], ModuleType]) -> None:
    module = load("send_basic")
    results = asyncio.run(module.run())
    assert len(results) == 3
    assert all(r.accepted == ("you@example.org",) and r.queue_id for r in results)


def test_trio_program_sends_a_batch_and_through_a_pool(
    load: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    module = load("trio_program")
    assert trio.run(module.run, 4) == 4
    out = capsys.readouterr().out
    assert "#4: 250" in out
    assert "captured 7 messages" in out


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
