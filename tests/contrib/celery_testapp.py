"""The Celery app of the Celery tests: what ``celery -A celery_testapp worker`` loads.

Workers read where Redis and the fake SMTP server are from the environment (the fixtures
in celery_helpers.py set it); the test process calls :func:`build` with the same values,
so both sides register the same tasks with the same configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, signals

import smtpsubmit
from smtpsubmit.contrib.celery import SMTPTask, register_smtp_task

#: Shared by every worker on every machine in the rate-limit test: 20 messages a second.
SHARED_RATE = smtpsubmit.RateLimit(per_second=20, burst=1)
#: Seconds before the broker gives a lost worker's unacknowledged tasks to another.
VISIBILITY_TIMEOUT = 5
#: Quick retries, so the 4xx test does not wait long for its second attempt.
RETRY = smtpsubmit.RetryPolicy(attempts=3, backoff=0.2, max_backoff=0.4)


@dataclass
class TestApp:
    """The app and its two sending tasks."""

    app: Any
    send: SMTPTask
    send_limited: SMTPTask


def build(redis_url: str, smtp_host: str, smtp_port: int) -> TestApp:
    """The app on ``redis_url`` (broker db 0, results db 1, records db 2)."""
    app = Celery("smtpsubmit_celery_tests", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
    app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=3600,
        # A whole worker lost: its unacknowledged tasks go to another worker after this
        # many seconds (one hour by default), swept for every second.
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
    )
    common: dict[str, Any] = {
        "tls": smtpsubmit.TLSMode.INSECURE_CLEARTEXT,  # the fake server on loopback
        "store": f"{redis_url}/2",
        "in_flight_wait": 2.0,
    }
    send = register_smtp_task(app, smtp_host, smtp_port, name="t.send", retry=RETRY, **common)
    send_limited = register_smtp_task(
        app, smtp_host, smtp_port, name="t.send_limited", shared_rate_limit=SHARED_RATE, **common
    )
    return TestApp(app, send, send_limited)


if "SMTPSUBMIT_TEST_REDIS" in os.environ:  # in a worker
    _test_app = build(
        os.environ["SMTPSUBMIT_TEST_REDIS"],
        os.environ["SMTPSUBMIT_TEST_SMTP_HOST"],
        int(os.environ["SMTPSUBMIT_TEST_SMTP_PORT"]),
    )
    app = _test_app.app

    @signals.worker_ready.connect
    def _ready(sender: Any = None, **_: Any) -> None:
        """Tell the fixture this worker consumes (a file named after the node)."""
        directory = Path(os.environ["SMTPSUBMIT_TEST_READY_DIR"])
        (directory / str(sender.hostname)).write_text(str(os.getpid()), encoding="ascii")
