"""The Celery integration's rules without workers: payloads, the retry rule, what a task
does when it finds a record, the token bucket, secrets. Sends go to the fake server; the
store is the in-memory one, except for the Lua bucket checked against a real redis-server.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit import DSN, RetryPolicy
from smtpsubmit.protocol import EnhancedStatus, Reply
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode, ThreadedSMTPServer

pytest.importorskip("celery", reason="Celery is not installed (pip install smtpsubmit[celery])")

from celery import Celery

from smtpsubmit.contrib._celery_codec import (
    conclude,
    decode_message,
    decode_payload,
    encode_message,
    encode_raw,
)
from smtpsubmit.contrib._celery_store import Bucket, MemoryStore, bucket_step
from smtpsubmit.contrib.celery import register_smtp_task


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "a@example.org, b@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "Grüße"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Bonjour à tous\n")
    return msg


class FakeTask:
    """Stands for a bound Celery task: its request id, and retries that are recorded."""

    def __init__(self, task_id: str) -> None:
        self.request = SimpleNamespace(id=task_id, is_eager=False)
        self.retries: list[tuple[Any, float]] = []

    def retry(
        self, *, args: Any, countdown: float, throw: bool = True, argsrepr: str = ""
    ) -> Exception:
        self.retries.append((args[0], countdown))
        error = RuntimeError("retry queued")
        if throw:
            raise error
        return error


@pytest.fixture
def server() -> Any:
    with FakeSMTPServer(mode=Mode.PLAIN).run_in_thread() as server:
        yield server


@pytest.fixture
def mail(server: ThreadedSMTPServer) -> Any:
    app = Celery("rules", broker="memory://", backend="cache+memory://")
    handle = register_smtp_task(
        app,
        server.host,
        server.port,
        name="rules.send",
        tls="insecure-cleartext",
        store=MemoryStore(),
        retry=RetryPolicy(attempts=2, backoff=5.0),
        in_flight_wait=0.3,
    )
    yield handle
    handle.close()


# -- payloads ------------------------------------------------------------------------


def test_payload_is_json_and_gives_the_message_back_with_its_envelope() -> None:
    msg = message(Message_ID="<m1@example.com>")
    payload = encode_message(msg, dsn=DSN(notify=("FAILURE",), ret="HDRS"))
    assert json.loads(json.dumps(payload)) == payload
    assert payload["key"] == "<m1@example.com>"
    assert payload["recipients"] == ["a@example.org", "b@example.org", "hidden@example.org"]
    assert payload["dsn"] == {"notify": ["FAILURE"], "ret": "HDRS", "envid": None, "orcpt": False}
    again = decode_message(decode_payload(payload))
    assert isinstance(again, EmailMessage)
    assert again["Subject"] == "Grüße"
    assert again.get_content() == "Bonjour à tous\n"


def test_raw_payload_keeps_octets_and_reads_the_message_id() -> None:
    data = b"Message-ID: <raw1@example.com>\r\nSubject: x\r\n\r\nbody\r\n"
    payload = encode_raw("a@example.com", "b@example.org", data)
    assert payload["key"] == "<raw1@example.com>"
    assert payload["recipients"] == ["b@example.org"]
    assert decode_message(payload) == data
    assert encode_raw("a@example.com", ["b@example.org"], data, key="order-7")["key"] == "order-7"
    unnamed = encode_raw("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\n")
    assert unnamed["key"] != encode_raw("a@example.com", ["b@example.org"], b"\r\n")["key"]


def test_bad_envelopes_fail_in_the_caller() -> None:
    with pytest.raises(smtpsubmit.MessageError):
        encode_raw("a@example.com", ["bad\r\nRCPT TO:<x@y>"], b"\r\n")


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"v": 2}, "version"),
        ({"kind": "pickle"}, "kind"),
        ({"data": "not base64!"}, "base64"),
        ({"recipients": []}, "recipients"),
        ({"attempt": 0}, "attempt"),
        ({"key": ""}, "key"),
        ({"dsn": {"notify": ["SOMETIMES"], "ret": "ALL"}}, None),
    ],
)
def test_decode_refuses_malformed_payloads(change: dict[str, Any], what: str | None) -> None:
    payload = {**encode_raw("a@example.com", ["b@example.org"], b"\r\n"), **change}
    if what is None:  # a DSN is checked when the message is sent, by the client
        decode_payload(payload)
        return
    with pytest.raises(ValueError, match=what):
        decode_payload(payload)


# -- the retry rule ------------------------------------------------------------------


def reply(code: int, text: str = "x") -> Reply:
    status = EnhancedStatus(code // 100, 1, 1)
    return Reply(code, (text,), status)


def test_conclude_retries_only_4xx_recipients_and_keeps_the_rest() -> None:
    payload = encode_raw("a@example.com", ["ok@x.org", "busy@x.org", "gone@x.org"], b"\r\n")
    result = smtpsubmit.SendResult(
        "a@example.com",
        ("ok@x.org",),
        {"busy@x.org": reply(450), "gone@x.org": reply(550)},
        Reply(250, ("Ok: queued as ABC",)),
    )
    state, again = conclude(payload, result, RetryPolicy(attempts=2))
    assert again == ["busy@x.org"]
    assert state["accepted"] == ["ok@x.org"]
    assert list(state["refused"]) == ["gone@x.org"]
    assert state["queue_id"] == "ABC"
    # The last attempt: the 4xx refusal stays a refusal.
    following = {**payload, "recipients": again, "attempt": 2, "earlier": state}
    final, again = conclude(following, result, RetryPolicy(attempts=2))  # type: ignore[arg-type]
    assert again == []
    assert final["refused"]["busy@x.org"]["code"] == 450
    assert final["attempts"] == 2
    assert len(final["history"]) == 2


R = ["r@x.org"]


@pytest.mark.parametrize(
    ("error", "policy", "again", "status", "lists"),
    [
        (smtpsubmit.NotSentError("x"), RetryPolicy(attempts=2), R, "failed", {}),
        (smtpsubmit.NotSentError("x"), None, [], "failed", {"failed": R}),
        (smtpsubmit.OutcomeUnknownError("x"), RetryPolicy(), [], "unknown", {"unknown": R}),
        (smtpsubmit.OutcomeUnknownError("x"), RetryPolicy(retry_unknown=True), R, "failed", {}),
        (smtpsubmit.PermanentReplyError(reply(554)), RetryPolicy(), [], "failed", {"failed": R}),
        (smtpsubmit.TransientReplyError(reply(421)), RetryPolicy(), R, "failed", {}),
        (smtpsubmit.CertificateError("x"), RetryPolicy(), [], "failed", {"failed": R}),
    ],
)
def test_conclude_for_whole_transaction_failures(
    error: smtpsubmit.SMTPError,
    policy: RetryPolicy | None,
    again: list[str],
    status: str,
    lists: dict[str, list[str]],
) -> None:
    payload = encode_raw("a@example.com", ["r@x.org"], b"\r\n")
    state, retried = conclude(payload, error, policy)
    assert retried == again
    assert state["status"] == status
    assert state["error"]["type"] == type(error).__name__
    for name in ("failed", "unknown"):
        assert state[name] == lists.get(name, [])  # type: ignore[literal-required]


# -- what a task does when it finds a record -----------------------------------------


def test_a_record_of_a_dead_owner_means_unknown_and_nothing_is_sent(
    mail: Any, server: ThreadedSMTPServer
) -> None:
    payload = encode_message(message(Message_ID="<dead@example.com>"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, check=True, text=True)  # fmt: skip
    record = mail._record("inflight", payload, "task-1")
    mail.store.claim({**record, "pid": int(dead.stdout)}, 60)

    result = mail.run(FakeTask("task-1"), payload)

    assert result["status"] == "unknown"
    assert result["unknown"] == payload["recipients"]
    assert "was lost" in result["error"]["message"]
    assert server.messages == []
    assert mail.records("<dead@example.com>")[0]["state"] == "done"  # for good


def test_a_live_owner_is_waited_for_then_reported_unknown(
    mail: Any, server: ThreadedSMTPServer
) -> None:
    payload = encode_message(message(Message_ID="<alive@example.com>"))
    record = mail._record("inflight", payload, "task-2")
    mail.store.claim({**record, "host": "another-machine"}, 60)  # cannot be checked

    result = mail.run(FakeTask("task-2"), payload)

    assert result["status"] == "unknown"
    assert "not sent again" in result["error"]["message"]
    assert server.messages == []
    assert mail.records("<alive@example.com>")[0]["state"] == "inflight"  # the owner's


def test_a_done_record_returns_the_stored_result_and_another_task_is_a_duplicate(
    mail: Any, server: ThreadedSMTPServer
) -> None:
    payload = encode_message(message(Message_ID="<once@example.com>"))
    first = mail.run(FakeTask("task-3"), payload)
    assert first["status"] == "sent"
    assert len(server.messages) == 1
    assert mail.run(FakeTask("task-3"), payload) == first  # a redelivery
    duplicate = mail.run(FakeTask("task-4"), payload)  # a second enqueue
    assert duplicate["status"] == "duplicate"
    assert duplicate["duplicate_of"] == "task-3"
    assert len(server.messages) == 1


def test_resend_in_flight_is_an_explicit_opt_in(server: ThreadedSMTPServer) -> None:
    app = Celery("rules2", broker="memory://", backend="cache+memory://")
    mail = register_smtp_task(
        app, server.host, server.port, name="rules.resend", tls="insecure-cleartext",
        store=MemoryStore(), resend_in_flight=True,
    )  # fmt: skip
    payload = encode_message(message(Message_ID="<again@example.com>"))
    mail.store.claim({**mail._record("inflight", payload, "task-5"), "host": "elsewhere"}, 60)
    try:
        assert mail.run(FakeTask("task-5"), payload)["status"] == "sent"
    finally:
        mail.close()
    assert len(server.messages) == 1


def test_a_4xx_retry_is_queued_with_the_policys_countdown(
    mail: Any, server: ThreadedSMTPServer
) -> None:
    server.add_faults(Fault.reply("RCPT", nth=2, code=451, enhanced="4.3.0", text="later"))
    payload = encode_message(message(Message_ID="<retry@example.com>"))
    task = FakeTask("task-6")
    with pytest.raises(RuntimeError, match="retry queued"):
        mail.run(task, payload)
    [(following, countdown)] = task.retries
    assert following["attempt"] == 2
    assert following["recipients"] == ["b@example.org"]
    assert 2.5 <= countdown <= 5.0  # RetryPolicy(backoff=5): half to all of it
    states = [r["state"] for r in mail.records("<retry@example.com>")]
    assert states == ["retry_published"]
    # A redelivery of attempt 1 leaves the queued attempt alone (Celery's Ignore).
    from celery.exceptions import Ignore

    with pytest.raises(Ignore):
        mail.run(FakeTask("task-6"), payload)
    assert len(server.messages) == 1


def test_a_retry_lost_before_it_was_queued_is_queued_by_the_redelivery(
    mail: Any, server: ThreadedSMTPServer
) -> None:
    payload = encode_message(message(Message_ID="<requeue@example.com>"))
    following = {**payload, "recipients": ["b@example.org"], "attempt": 2}
    record = mail._record("retried", payload, "task-8", None, following)
    mail.store.put(record, 60)
    task = FakeTask("task-8")
    with pytest.raises(RuntimeError, match="retry queued"):
        mail.run(task, payload)
    assert task.retries == [(following, 0.0)]
    assert mail.records("<requeue@example.com>")[0]["state"] == "retry_published"
    assert server.messages == []


def test_a_long_shared_rate_wait_requeues_instead_of_sleeping(server: ThreadedSMTPServer) -> None:
    app = Celery("rules3", broker="memory://", backend="cache+memory://")
    mail = register_smtp_task(
        app, server.host, server.port, name="rules.paced", tls="insecure-cleartext",
        store=MemoryStore(), shared_rate_limit=smtpsubmit.RateLimit(per_second=0.5),
        max_rate_wait=0.5,
    )  # fmt: skip
    try:
        first = encode_message(message(Message_ID="<paced1@example.com>"))
        assert mail.run(FakeTask("task-9"), first)["status"] == "sent"
        second = encode_message(message(Message_ID="<paced2@example.com>"))
        task = FakeTask("task-10")
        with pytest.raises(RuntimeError, match="retry queued"):
            mail.run(task, second)
    finally:
        mail.close()
    [(again, countdown)] = task.retries
    assert again == second  # the same attempt, later: no record was claimed
    assert 1.5 < countdown <= 2.0
    assert mail.records("<paced2@example.com>") == []
    assert len(server.messages) == 1


@pytest.mark.parametrize("to", ["a@example.org, b@example.org", "jörg@exämple.org"])
def test_eager_mode_sends_the_octets_of_a_send_in_one_process(
    mail: Any, server: ThreadedSMTPServer, to: str
) -> None:
    mail.app.conf.task_always_eager = True
    msg = message(Message_ID="<eager@example.com>")
    msg.replace_header("To", to)
    result = mail.send_message(msg).get()
    assert result["status"] == "sent"
    assert result["accepted"] == [*(a.strip() for a in to.split(",")), "hidden@example.org"]
    smtpsubmit.sync.send(msg, host=server.host, port=server.port, tls="insecure-cleartext")
    via_celery, direct = server.messages
    assert "Bcc" not in via_celery.message
    assert via_celery.data == direct.data
    assert via_celery.mail_from_params == direct.mail_from_params  # SMTPUTF8, BODY=8BITMIME


# -- secrets -------------------------------------------------------------------------


def test_no_secret_in_payloads_results_or_reprs() -> None:
    secret = "s3cret-Passw0rd"
    config = {"users": {"me@example.com": "another-password"}, "allow_cleartext_auth": True}
    with FakeSMTPServer(mode=Mode.PLAIN, **config).run_in_thread() as server:  # type: ignore[arg-type]
        app = Celery("secrets", broker=f"redis://:{secret}@127.0.0.1:1/0")
        mail = register_smtp_task(
            app, server.host, server.port, tls="insecure-cleartext", username="me@example.com",
            password=secret, allow_cleartext_auth=True, store=MemoryStore(),
        )  # fmt: skip
        try:
            payload = encode_message(message(Message_ID="<s@example.com>"))
            result = mail.run(FakeTask("task-7"), payload)
        finally:
            mail.close()
    assert result["status"] == "failed"
    assert result["error"]["type"] == "AuthenticationError"
    for text in (json.dumps(payload), json.dumps(result), repr(mail)):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    from smtpsubmit.contrib.celery import RedisStore

    assert secret not in repr(RedisStore(f"redis://:{secret}@localhost:6379/0"))


# -- the token bucket ----------------------------------------------------------------


def test_bucket_reference_paces_and_slows_down() -> None:
    bucket = Bucket("b", rate=10.0, burst=2)
    state: dict[str, float] = {}
    waits = [bucket_step(state, bucket, 0.0, "take", 60) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2])
    # At t=0.2 the level is back to 0; one more token takes 0.1 s at 10 a second, and
    # twice that at the halved rate.
    assert bucket_step(dict(state), bucket, 0.2, "take", 1.0) == pytest.approx(0.1)
    bucket_step(state, bucket, 0.2, "slow", 1.0)  # 5 a second until t=1.2
    assert bucket_step(state, bucket, 0.2, "take", 1.0) == pytest.approx(0.2)
    # After the slow-down, the full rate again (and the level refilled at the slow rate).
    assert bucket_step(state, bucket, 10.0, "take", 1.0) == 0.0


def test_memory_store_defers_instead_of_a_long_wait() -> None:
    store = MemoryStore()
    buckets = [Bucket("m", rate=1.0, burst=1)]
    assert store.take(buckets, max_wait=0.5, cooldown=60) == (True, 0.0)
    taken, wait = store.take(buckets, max_wait=0.5, cooldown=60)
    assert not taken
    assert 0.9 < wait <= 1.0
    assert store.take(buckets, max_wait=2.0, cooldown=60)[0]  # nothing was taken before


def test_lua_bucket_matches_the_reference(redis_server: Any) -> None:
    from smtpsubmit.contrib._celery_store import RedisStore

    store = RedisStore(f"{redis_server.url}/3", prefix=f"t{os.getpid()}")
    buckets = [Bucket("m", rate=20.0, burst=3), Bucket("r", rate=50.0, burst=5, tokens=4)]
    started = time.monotonic()
    waits = [store.take(buckets, 10.0, 60)[1] for _ in range(6)]
    elapsed = time.monotonic() - started
    # Reference: with no time passing, the recipients bucket (4 tokens each) leads.
    state_m: dict[str, float] = {}
    state_r: dict[str, float] = {}
    expected = [
        max(bucket_step(state_m, buckets[0], 0, "take", 60),
            bucket_step(state_r, buckets[1], 0, "take", 60))
        for _ in range(6)
    ]  # fmt: skip
    # Redis's clock moves between calls (more on a loaded machine): a wait can only be
    # shorter than the reference's, and by no more than the time the calls took.
    for got, want in zip(waits, expected, strict=True):
        assert want - elapsed - 0.005 <= got <= want + 0.005
    taken, wait = store.take(buckets, 0.1, 60)
    assert not taken
    assert wait > 0.1
    store.slow_down(buckets, 60)
    assert store.take(buckets, 10.0, 60)[1] > waits[-1]
