"""What crosses the broker for the Celery integration: task payloads and results, as JSON.

Theory of operation:

- A payload is plain JSON (no pickle, ever): the message as base64 octets, an explicit
  envelope, the DSN request, the idempotency key, the attempt number and, from the second
  attempt on, what the earlier attempts achieved. :func:`decode_payload` checks every field
  of what comes off the broker before anything is used.
- An ``EmailMessage`` is written as a send writes it (UTF-8 header fields only when an
  envelope address needs SMTPUTF8) and parsed again on the worker, which sends it as
  :meth:`smtpsubmit.SMTPPool.send_message` does in one process (8BITMIME or 7-bit
  re-encoding, Bcc stripped): the server gets the same octets.
- The idempotency key is the caller's ``key``, else the message's Message-ID, else a
  random one made at enqueue time (which still tells a redelivered task from a new one).
- :func:`conclude` is the one rule that turns one attempt's outcome into the task's
  result and the recipients to try again, the same rule as the library's in-process
  retries: only recipients refused with 4xx (or all of them, after a retryable failure of
  the whole transaction) go into the next attempt; an accepted recipient never does; an
  unknown outcome is never retried unless the policy says ``retry_unknown``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any, Literal, TypedDict

from .._errors import (
    OutcomeUnknownError,
    RecipientsRefusedError,
    SMTPError,
    reply_error,
)
from .._message import DSN, _generate, check_envelope, message_envelope
from .._results import SendResult
from ..policy import RetryPolicy
from ..policy._rate import is_throttling
from ..protocol import Reply

__all__ = [
    "AttemptJSON",
    "ErrorJSON",
    "OutcomeJSON",
    "Payload",
    "ReplyJSON",
    "Status",
    "conclude",
    "decode_message",
    "decode_payload",
    "encode_message",
    "encode_raw",
    "error_json",
    "lost_outcome",
    "reply_json",
    "throttled",
]

#: Version of the payload format; a worker refuses payloads of another version.
PAYLOAD_VERSION = 1
#: Longest idempotency key accepted (it is hashed for the Redis key anyway).
MAX_KEY = 998

#: ``sent``: at least one recipient accepted (see ``refused``/``failed`` for the others);
#: ``failed``: not accepted by the server, for certain; ``unknown``: the server may have
#: queued it; ``duplicate``: another task already owns this key (``duplicate_of``).
Status = Literal["sent", "failed", "unknown", "duplicate"]


class ReplyJSON(TypedDict):
    """A server reply: ``{"code": 550, "enhanced": "5.1.1", "text": "No such user"}``."""

    code: int
    enhanced: str | None
    text: str


class ErrorJSON(TypedDict):
    """An error as its class name and text (and its reply, for a reply error)."""

    type: str
    message: str
    code: int | None
    enhanced: str | None
    verb: str | None


class AttemptJSON(TypedDict):
    """One attempt of a message: to whom it went and what came of it."""

    attempt: int
    recipients: list[str]
    accepted: list[str]
    refused: dict[str, ReplyJSON]
    queue_id: str | None
    error: ErrorJSON | None


class OutcomeJSON(TypedDict):
    """The result of a sending task (what ``AsyncResult.get()`` returns).

    ``accepted``, ``refused`` (recipient -> reply), ``failed`` (recipients not accepted,
    without a reply of their own: see ``error``) and ``unknown`` (recipients the server may
    or may not have queued it for) cover every recipient of every attempt. ``reply`` and
    ``queue_id`` are those of the last final reply; ``attempts`` counts the tries;
    ``history`` has one entry per try; ``error`` is the last try's error, if it met one.
    """

    status: Status
    key: str
    sender: str
    accepted: list[str]
    refused: dict[str, ReplyJSON]
    failed: list[str]
    unknown: list[str]
    queue_id: str | None
    reply: ReplyJSON | None
    attempts: int
    error: ErrorJSON | None
    history: list[AttemptJSON]
    duplicate_of: str | None


class Payload(TypedDict):
    """The argument of a sending task: one message and one attempt of it."""

    v: int
    kind: Literal["message", "raw"]
    data: str
    sender: str
    recipients: list[str]
    dsn: dict[str, Any] | None
    key: str
    attempt: int
    earlier: OutcomeJSON | None


# -- encoding ------------------------------------------------------------------------


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise ValueError(f"an idempotency key is a non-empty string of at most {MAX_KEY} chars")
    return key.strip()


def _dsn_json(dsn: DSN | None) -> dict[str, Any] | None:
    if dsn is None:
        return None
    fields = asdict(dsn)
    fields["notify"] = list(dsn.notify)
    return fields


def encode_message(
    message: Message,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    dsn: DSN | None = None,
    key: str | None = None,
) -> Payload:
    """The payload for an ``EmailMessage`` (envelope from its headers unless given).

    The envelope is read and checked now, so a bad address fails in the caller, not in a
    worker. Raises :class:`~smtpsubmit.MessageError` for a message that cannot be sent.
    """
    envelope = message_envelope(message, sender, recipients)
    data = _octets(message, [envelope.sender, *envelope.recipients])
    message_id = message.get("Message-ID")
    return _payload(
        "message", data, envelope.sender, list(envelope.recipients), dsn, key, message_id
    )


def _octets(message: Message, addresses: Sequence[str]) -> bytes:
    """The message as a send in one process writes it: header fields in ASCII (RFC 2047
    encoded-words), or in UTF-8 when an envelope address is not ASCII (SMTPUTF8, RFC 6532).
    The worker writes a field it parsed back as it was read, so the octets are the same."""
    utf8 = not all(address.isascii() for address in addresses)
    return _generate(message, utf8=utf8, cte_7bit=False)


def encode_raw(
    sender: str,
    recipients: Sequence[str] | str,
    data: bytes,
    *,
    dsn: DSN | None = None,
    key: str | None = None,
) -> Payload:
    """The payload for raw RFC 5322 octets and an envelope (checked now)."""
    check_envelope(sender, recipients)
    rcpts = [recipients] if isinstance(recipients, str) else list(recipients)
    data = bytes(data)
    headers = BytesParser(policy=email_policy.compat32).parsebytes(data, headersonly=True)
    return _payload("raw", data, sender, rcpts, dsn, key, headers.get("Message-ID"))


def _payload(
    kind: Literal["message", "raw"],
    data: bytes,
    sender: str,
    recipients: list[str],
    dsn: DSN | None,
    key: str | None,
    message_id: object,
) -> Payload:
    if key is None:
        text = str(message_id).strip() if message_id is not None else ""
        key = text if text and len(text) <= MAX_KEY else f"<{uuid.uuid4()}@smtpsubmit.key>"
    return {
        "v": PAYLOAD_VERSION,
        "kind": kind,
        "data": base64.b64encode(data).decode("ascii"),
        "sender": sender,
        "recipients": list(dict.fromkeys(recipients)),
        "dsn": _dsn_json(dsn),
        "key": _check_key(key),
        "attempt": 1,
        "earlier": None,
    }


# -- decoding ------------------------------------------------------------------------


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"invalid smtpsubmit task payload: {what}")


def decode_payload(value: object) -> Payload:
    """Check a payload that came off the broker; ``ValueError`` when anything is off."""
    _expect(isinstance(value, dict), "not a JSON object")
    assert isinstance(value, dict)
    _expect(value.get("v") == PAYLOAD_VERSION, f"version {value.get('v')!r}")
    _expect(value.get("kind") in ("message", "raw"), "kind")
    _expect(isinstance(value.get("data"), str), "data")
    try:
        base64.b64decode(value["data"], validate=True)
    except binascii.Error:
        _expect(False, "data is not base64")
    _expect(isinstance(value.get("sender"), str), "sender")
    recipients = value.get("recipients")
    _expect(
        isinstance(recipients, list)
        and bool(recipients)
        and all(isinstance(r, str) for r in recipients),
        "recipients",
    )
    dsn = value.get("dsn")
    _expect(dsn is None or isinstance(dsn, dict), "dsn")
    if isinstance(dsn, dict):
        dsn_from_json(dsn)
    _check_key(value.get("key"))  # type: ignore[arg-type]
    attempt = value.get("attempt")
    _expect(isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1, "attempt")
    earlier = value.get("earlier")
    _expect(earlier is None or isinstance(earlier, dict), "earlier")
    return value  # type: ignore[return-value]


def dsn_from_json(value: Mapping[str, Any] | None) -> DSN | None:
    """The :class:`~smtpsubmit.DSN` of a payload."""
    if value is None:
        return None
    try:
        return DSN(
            notify=tuple(value.get("notify") or ()),
            ret=value.get("ret"),
            envid=value.get("envid"),
            orcpt=bool(value.get("orcpt", False)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid smtpsubmit task payload: dsn ({exc})") from None


def decode_message(payload: Payload) -> EmailMessage | bytes:
    """The message of a payload: an ``EmailMessage`` again, or the raw octets."""
    data = base64.b64decode(payload["data"], validate=True)
    if payload["kind"] == "raw":
        return data
    # The email package works with "\n" line ends: parsed as CRLF, every line of every
    # text part would keep a "\r".
    message = BytesParser(policy=email_policy.default).parsebytes(data.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)
    return message


# -- results -------------------------------------------------------------------------


def reply_json(reply: Reply) -> ReplyJSON:
    """A reply as JSON (text with control characters already escaped by the parser)."""
    enhanced = str(reply.enhanced) if reply.enhanced else None
    return {"code": reply.code, "enhanced": enhanced, "text": reply.text}


def error_json(error: BaseException) -> ErrorJSON:
    """An error as JSON: class name, message, and the reply's code when it has one.

    smtpsubmit's error messages never carry a password, token or AUTH payload.
    """
    code = getattr(error, "code", None)
    enhanced = getattr(error, "enhanced", None)
    verb = getattr(error, "verb", None)
    return {
        "type": type(error).__name__,
        "message": str(error),
        "code": code if isinstance(code, int) else None,
        "enhanced": str(enhanced) if enhanced is not None else None,
        "verb": verb if isinstance(verb, str) else None,
    }


def _empty(payload: Payload) -> OutcomeJSON:
    earlier = payload["earlier"]
    if earlier is not None:
        return {
            **earlier,
            "accepted": list(earlier["accepted"]),
            "refused": dict(earlier["refused"]),
            "history": list(earlier["history"]),
            "failed": [],
            "unknown": [],
            "error": None,
        }
    return {
        "status": "failed",
        "key": payload["key"],
        "sender": payload["sender"],
        "accepted": [],
        "refused": {},
        "failed": [],
        "unknown": [],
        "queue_id": None,
        "reply": None,
        "attempts": 0,
        "error": None,
        "history": [],
        "duplicate_of": None,
    }


def _status(outcome: OutcomeJSON) -> Status:
    if outcome["unknown"]:
        return "unknown"
    return "sent" if outcome["accepted"] else "failed"


def conclude(
    payload: Payload, outcome: SendResult | SMTPError, policy: RetryPolicy | None
) -> tuple[OutcomeJSON, list[str]]:
    """Merge one attempt's ``outcome`` into the task's result; the recipients to try again.

    An empty list means it is over and the result is final. Otherwise the result is what
    the next attempt carries in ``earlier`` (the recipients to try again are in none of
    its lists yet).
    """
    result = _empty(payload)
    pending = payload["recipients"]
    attempt = payload["attempt"]
    again: list[str] = []
    entry: AttemptJSON = {
        "attempt": attempt,
        "recipients": list(pending),
        "accepted": [],
        "refused": {},
        "queue_id": None,
        "error": None,
    }
    refused: Mapping[str, Reply] = {}
    if isinstance(outcome, SendResult):
        entry["accepted"] = list(outcome.accepted)
        entry["queue_id"] = outcome.queue_id
        result["reply"] = reply_json(outcome.reply)
        result["queue_id"] = outcome.queue_id
        refused = outcome.refused
    else:
        entry["error"] = error_json(outcome)
        if isinstance(outcome, RecipientsRefusedError):
            refused = outcome.refused
    for rcpt, reply in refused.items():
        entry["refused"][rcpt] = reply_json(reply)
        if 400 <= reply.code < 500:
            again.append(rcpt)
    if isinstance(outcome, SMTPError) and not isinstance(outcome, RecipientsRefusedError):
        if isinstance(outcome, OutcomeUnknownError) and not (policy and policy.retry_unknown):
            result["unknown"] = list(pending)
        elif policy is not None and policy.retryable(outcome):
            again = list(pending)
    last_try = policy is None or attempt >= policy.attempts
    if last_try:
        again_now: list[str] = []
    else:
        again_now = again
    result["accepted"].extend(r for r in entry["accepted"] if r not in result["accepted"])
    for rcpt, reply_value in entry["refused"].items():
        if rcpt not in again_now:
            result["refused"][rcpt] = reply_value
    if isinstance(outcome, SMTPError) and not isinstance(outcome, RecipientsRefusedError):
        if not result["unknown"] and not again_now:
            result["failed"] = list(pending)
        result["error"] = entry["error"]
    elif isinstance(outcome, RecipientsRefusedError):
        result["error"] = entry["error"]
    result["attempts"] = attempt
    result["history"].append(entry)
    result["status"] = _status(result)
    return result, again_now


def lost_outcome(payload: Payload, reason: str) -> OutcomeJSON:
    """The result for an attempt whose worker was lost after it may have sent the message:
    every recipient of this attempt is ``unknown``."""
    result = _empty(payload)
    error: ErrorJSON = {
        "type": OutcomeUnknownError.__name__,
        "message": reason,
        "code": None,
        "enhanced": None,
        "verb": None,
    }
    result["unknown"] = list(payload["recipients"])
    result["error"] = error
    result["attempts"] = payload["attempt"]
    result["history"].append(
        {
            "attempt": payload["attempt"],
            "recipients": list(payload["recipients"]),
            "accepted": [],
            "refused": {},
            "queue_id": None,
            "error": error,
        }
    )
    result["status"] = "unknown"
    return result


def duplicate_outcome(payload: Payload, original_task: str) -> OutcomeJSON:
    """The result of a task whose key another task already sends (nothing was sent)."""
    result = _empty(payload)
    result["status"] = "duplicate"
    result["duplicate_of"] = original_task
    return result


def throttled(outcome: SendResult | SMTPError) -> bool:
    """Whether the server asked to slow down (a throttling reply, even per recipient)."""
    if isinstance(outcome, SMTPError) and is_throttling(outcome):
        return True
    refused = getattr(outcome, "refused", None) or {}
    return any(is_throttling(reply_error(reply)) for reply in refused.values())
