"""Fixtures of the Celery tests: redis-server, the fake SMTP server, Celery workers.

They skip, saying why, when redis-server or Celery is not installed here (CI installs
both: .ci/run apt-installs redis-server, the Makefile installs the ``celery`` extra).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpsubmit.testing import FakeSMTPServer, Mode, ThreadedSMTPServer


def _require_celery() -> None:
    pytest.importorskip("celery", reason="Celery is not installed (pip install smtpsubmit[celery])")
    pytest.importorskip(
        "redis", reason="redis-py is not installed (pip install smtpsubmit[celery])"
    )
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")


@pytest.fixture(scope="module")
def celery_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory for Redis's files, worker logs and readiness files."""
    _require_celery()
    return tmp_path_factory.mktemp("celery")


@pytest.fixture(scope="module")
def redis_server(celery_dir: Path) -> Iterator[Any]:
    """A redis-server of our own on a free loopback port, stopped afterwards."""
    from celery_helpers import RedisServer

    server = RedisServer(celery_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def smtp_target(celery_dir: Path) -> Iterator[ThreadedSMTPServer]:
    """The fake SMTP server the workers send to (plaintext on loopback)."""
    with FakeSMTPServer(mode=Mode.PLAIN).run_in_thread() as server:
        yield server
        assert not server.errors, f"the fake server crashed: {server.errors!r}"


@pytest.fixture(scope="module")
def celery_env(redis_server: Any, smtp_target: ThreadedSMTPServer) -> dict[str, str]:
    """What the workers read to find Redis and the fake server."""
    return {
        "SMTPSUBMIT_TEST_REDIS": redis_server.url,
        "SMTPSUBMIT_TEST_SMTP_HOST": smtp_target.host,
        "SMTPSUBMIT_TEST_SMTP_PORT": str(smtp_target.port),
    }


@pytest.fixture(scope="module")
def test_app(redis_server: Any, smtp_target: ThreadedSMTPServer) -> Any:
    """The test process's copy of the app (to queue tasks and read results)."""
    from celery_testapp import build

    return build(redis_server.url, smtp_target.host, smtp_target.port)


@pytest.fixture(scope="module")
def prefork_workers(celery_dir: Path, celery_env: dict[str, str], test_app: Any) -> Iterator[Any]:
    """Two prefork workers of two processes each, on the default queue."""
    from celery_helpers import workers

    specs: list[dict[str, object]] = [{"name": "w1"}, {"name": "w2"}]
    with workers(celery_dir, celery_env, specs) as started:
        yield started
