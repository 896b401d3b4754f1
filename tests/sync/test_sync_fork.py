"""smtpsubmit.sync after os.fork: the child gets a portal of its own, the parent keeps its.

The facade's event loop runs in a thread, and threads do not survive a fork: a child that
used the parent's portal would wait forever for a loop that is not running. The child here
really forks, sends through the facade and reports with its exit status; a hang ends with
SIGALRM in the child and a bounded wait in the parent, never a stuck test run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

import pytest
from sync_helpers import BOUND, message

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit.testing import ThreadedSMTPServer

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns that forking a threaded process may deadlock the child: that is
    # exactly the situation under test, and the child is bounded by an alarm.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]


def send_to(server: ThreadedSMTPServer, recipient: str) -> smtpsubmit.SendResult:
    return smtpsubmit.sync.send(
        message(to=recipient),
        host=server.host,
        port=server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
    )


def run_in_child(body: Callable[[], None]) -> int:
    """Fork; the child runs ``body`` and exits 0 (or 1 on any exception, traceback on
    stderr). Returns the child's exit code (negative: killed by that signal)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            signal.alarm(int(BOUND))  # a hang kills the child (exit code -SIGALRM)
            body()
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(status)
    waited: list[int] = []
    waiter = threading.Thread(target=lambda: waited.append(os.waitpid(pid, 0)[1]))
    waiter.start()
    waiter.join(BOUND + 5)
    if waiter.is_alive():  # the alarm did not end it: make sure the test run goes on
        os.kill(pid, signal.SIGKILL)
        waiter.join()
    return os.waitstatus_to_exitcode(waited[0])


def test_a_forked_child_sends_through_a_portal_of_its_own(
    smtps_server: ThreadedSMTPServer,
) -> None:
    # The parent has a running portal before the fork.
    before = send_to(smtps_server, "parent@example.org")
    assert before.accepted == ("parent@example.org",)

    def child() -> None:
        result = send_to(smtps_server, "child@example.org")
        assert result.accepted == ("child@example.org",)
        with smtpsubmit.sync.SMTPClient(
            smtps_server.host,
            smtps_server.port,
            tls="implicit",
            ssl_context=smtps_server.client_ssl_context(),
        ) as client:
            raw = client.sendmail("a@example.com", ["child-raw@example.org"], b"x\r\n")
        assert raw.accepted == ("child-raw@example.org",)

    assert run_in_child(child) == 0
    # The parent's portal still serves the parent after the fork.
    after = send_to(smtps_server, "parent-again@example.org")
    assert after.accepted == ("parent-again@example.org",)
    captured = smtps_server.wait_for_messages(4)
    assert [m.rcpt_to for m in captured] == [
        ["parent@example.org"],
        ["child@example.org"],
        ["child-raw@example.org"],
        ["parent-again@example.org"],
    ]


def test_a_fork_while_another_thread_is_in_the_facade_leaves_the_child_working(
    smtps_server: ThreadedSMTPServer,
) -> None:
    # Every facade call holds the module's lock for a moment. A fork at that moment (say,
    # a worker thread sending mail while the main thread forks) copies the lock held, with
    # no thread left in the child to release it.
    assert send_to(smtps_server, "parent@example.org").accepted == ("parent@example.org",)

    def child() -> None:
        assert send_to(smtps_server, "child@example.org").accepted == ("child@example.org",)

    with smtpsubmit.sync._lock:  # what the other thread would hold
        status = run_in_child(child)
    assert status == 0
    assert [m.rcpt_to for m in smtps_server.wait_for_messages(2)] == [
        ["parent@example.org"],
        ["child@example.org"],
    ]
