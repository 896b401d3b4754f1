"""The Celery integration on real components: redis-server, Celery worker processes
(prefork, and threads), the fake SMTP server as the target.

The workers run ``celery_testapp`` (two tasks: ``t.send`` with a quick RetryPolicy and
``t.send_limited`` with a rate limit shared through Redis); the fixtures are in
conftest.py and celery_helpers.py. Every wait polls observable state with a deadline.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from smtpsubmit.testing import Fault, ThreadedSMTPServer

pytest.importorskip("celery", reason="Celery is not installed (pip install smtpsubmit[celery])")
pytest.importorskip("redis", reason="redis-py is not installed (pip install smtpsubmit[celery])")

from celery_helpers import wait_for, workers


def make_messages(count: int, run: str, recipients: int = 1) -> list[EmailMessage]:
    """``count`` messages with Message-IDs ``<run.i@celery.test>``."""
    messages = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = "app@example.com"
        msg["To"] = ", ".join(f"user{i}.{r}@example.org" for r in range(recipients))
        msg["Subject"] = f"message {i}"
        msg["Message-ID"] = f"<{run}.{i}@celery.test>"
        msg.set_content(f"Hello number {i}\n")
        messages.append(msg)
    return messages


def captured_ids(server: ThreadedSMTPServer, run: str) -> Counter[str]:
    """How many times the server captured each Message-ID of this run."""
    ids = (str(m.message["Message-ID"]) for m in server.messages)
    return Counter(i for i in ids if i.startswith(f"<{run}."))


@pytest.fixture
def run_id(smtp_target: ThreadedSMTPServer) -> str:
    smtp_target.clear()
    return uuid.uuid4().hex[:12]


def test_500_messages_through_two_workers_arrive_exactly_once(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    messages = make_messages(500, run_id)
    batch = test_app.send.send_batch(messages)
    progress: list[int] = []
    summary = batch.wait(timeout=60, interval=0.2, on_progress=lambda s: progress.append(s.done))

    assert (summary.sent, summary.failed, summary.unknown, summary.errors) == (500, 0, 0, 0)
    assert summary.accepted == 500
    assert not summary.refused
    seen = captured_ids(smtp_target, run_id)
    assert set(seen) == {str(m["Message-ID"]) for m in messages}
    assert max(seen.values()) == 1  # each exactly once
    assert progress[-1] == 500
    assert progress == sorted(progress)
    # Both workers took part: results carry the queue ids the server gave.
    results = batch.results()
    assert all(r is not None and not isinstance(r, BaseException) for r in results)
    queue_ids = {m.queue_id for m in smtp_target.messages}
    assert {r["queue_id"] for r in results} == queue_ids  # type: ignore[index]


def test_4xx_recipients_are_retried_through_celery_and_only_they(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    smtp_target.add_faults(
        Fault.reply("RCPT", nth=2, code=450, enhanced="4.2.1", text="Mailbox busy"),
        Fault.reply("RCPT", nth=3, code=550, enhanced="5.1.1", text="No such user"),
    )
    msg = make_messages(1, run_id)[0]
    del msg["To"]
    msg["To"] = "ok@example.org, busy@example.org, gone@example.org"

    outcome = test_app.send.send_message(msg).get(timeout=30)

    assert outcome["status"] == "sent"
    assert outcome["accepted"] == ["ok@example.org", "busy@example.org"]
    assert outcome["refused"] == {
        "gone@example.org": {"code": 550, "enhanced": "5.1.1", "text": "No such user"}
    }
    assert outcome["attempts"] == 2
    first, second = outcome["history"]
    assert first["refused"]["busy@example.org"]["code"] == 450
    assert second["recipients"] == ["busy@example.org"]
    # The server saw a second transaction for the 4xx recipient only.
    transactions = [m.rcpt_to for m in smtp_target.messages]
    assert transactions == [["ok@example.org"], ["busy@example.org"]]
    # The retry went back through the broker: attempt 1 handed over, attempt 2 finished.
    records = test_app.send.records(outcome["key"])
    assert [r["state"] for r in records] == ["retry_published", "done"]
    assert records[1]["outcome"] == outcome


def test_a_duplicate_enqueue_of_a_sent_message_is_not_sent_again(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    msg = make_messages(1, run_id)[0]
    first = test_app.send.send_message(msg)
    assert first.get(timeout=30)["status"] == "sent"
    again = test_app.send.send_message(msg).get(timeout=30)
    assert again["status"] == "duplicate"
    assert again["duplicate_of"] == first.id
    assert sum(captured_ids(smtp_target, run_id).values()) == 1


def test_shared_rate_limit_paces_two_workers_together(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    # 20 messages a second in bursts of 1, shared by 4 worker processes: 100 messages
    # need 99 / 20 = 4.95 s at least, however many workers there are.
    messages = make_messages(100, run_id)
    started = time.monotonic()
    batch = test_app.send_limited.send_batch(messages)
    summary = batch.wait(timeout=40, interval=0.1)
    elapsed = time.monotonic() - started

    assert summary.sent == 100
    assert max(captured_ids(smtp_target, run_id).values()) == 1
    assert elapsed >= 4.5, elapsed
    arrivals = sorted(m.received_at for m in smtp_target.messages)
    assert arrivals[-1] - arrivals[0] >= 4.5  # as the server saw them
    assert elapsed < 20, elapsed  # paced, not stalled


@pytest.mark.parametrize(("pool", "concurrency"), [("threads", 4), ("prefork", 1)])
def test_each_pool_kind_sends_once_and_quits_on_shutdown(
    test_app: Any,
    celery_dir: Path,
    celery_env: dict[str, str],
    smtp_target: ThreadedSMTPServer,
    run_id: str,
    pool: str,
    concurrency: int,
) -> None:
    queue = f"only-{pool}"  # the module's prefork workers do not consume it
    specs: list[dict[str, object]] = [
        {"name": pool, "pool": pool, "concurrency": concurrency, "queues": queue}
    ]
    with workers(celery_dir, celery_env, specs):
        messages = make_messages(30, run_id, recipients=2)
        summary = test_app.send.send_batch(messages, queue=queue).wait(timeout=30)
    assert (summary.sent, summary.accepted) == (30, 60)
    assert Counter(captured_ids(smtp_target, run_id).values()) == {1: 30}
    # Each process's pool was closed on shutdown (worker_process_shutdown in prefork
    # children, worker_shutdown with threads): every connection ended with QUIT.
    sessions = [t for t in smtp_target.transcripts if any("MAIL FROM" in e.line for e in t)]
    assert sessions
    for transcript in sessions:
        assert [e.line for e in transcript if e.direction == "client"][-1] == "QUIT"


def test_sigkill_of_a_worker_mid_run_leaves_each_message_sent_once_or_unknown(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    count = 120
    # A little server latency after the body, so a kill often lands after the message was
    # written and before its reply: the case where only "unknown" is honest.
    smtp_target.add_faults(Fault.delay("END_OF_DATA", seconds=0.03, times=count))
    send = test_app.send
    messages = make_messages(count, run_id)
    batch = send.send_batch(messages)

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["key"].startswith(f"<{run_id}.")]

    def freeze_a_sender() -> tuple[int, list[dict[str, Any]]] | None:
        """SIGSTOP a worker process while it holds a message in flight."""
        if len(smtp_target.messages) < 20:
            return None  # let the run get going first
        for record in mine(send.in_flight()):
            os.kill(record["pid"], signal.SIGSTOP)
            held = [r for r in mine(send.in_flight()) if r["pid"] == record["pid"]]
            if held:
                return record["pid"], held
            os.kill(record["pid"], signal.SIGCONT)  # it had just finished: try another
        return None

    victim, held = wait_for(freeze_a_sender, 30, "a message in flight", interval=0.01)
    # The victim is stopped, so this is exactly what was in flight when it dies.
    in_flight_at_kill = mine(send.in_flight())
    os.kill(victim, signal.SIGKILL)

    summary = batch.wait(timeout=60, interval=0.2)
    results = batch.results()
    seen = captured_ids(smtp_target, run_id)
    unknown = [r for r in results if isinstance(r, dict) and r["status"] == "unknown"]
    print(
        f"\nSIGKILL of pid {victim} holding {[r['key'] for r in held]}: in flight at the kill "
        f"{len(in_flight_at_kill)}, sent {summary.sent}, unknown {summary.unknown} "
        f"{summary.unknown_keys}, captured {len(seen)} distinct, max per id "
        f"{max(seen.values())}"
    )

    assert summary.complete
    assert summary.errors == 0
    assert summary.failed == 0
    assert max(seen.values()) == 1  # never twice
    for msg, result in zip(messages, results, strict=True):
        assert isinstance(result, dict)
        if result["status"] != "unknown":
            assert result["status"] == "sent"
            assert seen[str(msg["Message-ID"])] == 1, result
    assert len(unknown) <= len(in_flight_at_kill)
    # Exactly what the killed process held is unknown; its task was delivered again.
    assert sorted(summary.unknown_keys) == sorted(r["key"] for r in held)
    # The lost attempt is recorded as unknown for good: a later delivery will not resend.
    for result in unknown:
        [record] = send.records(result["key"])
        assert record["state"] == "done"
        assert record["outcome"]["status"] == "unknown"


def children_of(pid: int) -> set[int]:
    """The pids of a process's children (a prefork worker's pool processes)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def test_sigkill_of_a_whole_worker_node_comes_back_after_the_visibility_timeout(
    test_app: Any, prefork_workers: Any, smtp_target: ThreadedSMTPServer, run_id: str
) -> None:
    # The machine-lost case: the main process and its pool processes die together, so no
    # worker rejects the tasks; the broker gives them to the surviving worker after the
    # visibility timeout (5 s in celery_testapp), and the records say what may have gone.
    # It kills one of the module's two workers, so it comes last.
    count = 120
    smtp_target.add_faults(Fault.delay("END_OF_DATA", seconds=0.03, times=count))
    send = test_app.send
    victim = prefork_workers[1]
    assert victim.proc is not None
    node = victim.proc.pid
    pool_processes = children_of(node)
    messages = make_messages(count, run_id)
    batch = send.send_batch(messages)

    def mine() -> list[dict[str, Any]]:
        return [r for r in send.in_flight() if r["key"].startswith(f"<{run_id}.")]

    def freeze_the_node() -> list[dict[str, Any]] | None:
        if len(smtp_target.messages) < 10 or not any(r["pid"] in pool_processes for r in mine()):
            return None
        os.killpg(node, signal.SIGSTOP)
        held = [r for r in mine() if r["pid"] in pool_processes]
        if not held:
            os.killpg(node, signal.SIGCONT)
        return held or None

    held = wait_for(freeze_the_node, 30, "the victim sending", interval=0.01)
    in_flight_at_kill = mine()
    os.killpg(node, signal.SIGKILL)
    killed_at = time.monotonic()
    summary = batch.wait(timeout=60, interval=0.2)
    waited = time.monotonic() - killed_at

    results = batch.results()
    seen = captured_ids(smtp_target, run_id)
    print(
        f"\nSIGKILL of worker node {node} holding {[r['key'] for r in held]}: in flight at "
        f"the kill {len(in_flight_at_kill)}, sent {summary.sent}, unknown {summary.unknown}, "
        f"all results after {waited:.1f} s"
    )
    assert summary.complete
    assert (summary.errors, summary.failed) == (0, 0)
    assert max(seen.values()) == 1
    for msg, result in zip(messages, results, strict=True):
        assert isinstance(result, dict)
        if result["status"] != "unknown":
            assert seen[str(msg["Message-ID"])] == 1, result
    assert summary.unknown <= len(in_flight_at_kill)
    assert sorted(summary.unknown_keys) == sorted(r["key"] for r in held)
