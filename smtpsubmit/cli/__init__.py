"""Command-line tools: ``python -m smtpsubmit send`` and ``python -m smtpsubmit probe``.

``send`` submits one message (a swaks-like tester built on :class:`smtpsubmit.SMTPClient`);
``probe`` diagnoses a server's submission ports without ever sending AUTH or MAIL. Both
return their exit status instead of exiting, so they can be called in-process.
"""

from ._probe import probe_main
from ._send import send_main

__all__ = ["probe_main", "send_main"]
