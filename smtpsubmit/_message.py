"""From an ``EmailMessage`` (or raw bytes) to an envelope and the exact octets to send.

Rules, each checked before any I/O:

- Envelope from Sender/From and To/Cc/Bcc, or from the most recent Resent-* block when
  the message has one (RFC 5322 3.6.6), as smtplib does; Bcc and Resent-Bcc header
  fields are never transmitted.
- Addresses are validated by the protocol core's RFC 5321 grammar, never by
  ``email.utils.parseaddr`` alone. A non-ASCII address needs SMTPUTF8 (RFC 6531); without
  it a non-ASCII domain is converted with IDNA 2008/UTS 46 (``idna``) and a non-ASCII
  local part is an error.
- 8-bit content uses BODY=8BITMIME when offered (RFC 6152); otherwise an EmailMessage is
  re-encoded to 7 bit and raw bytes are refused.
- A header value that would start a new header field (CR/LF injection) is refused; so
  are raw lines over 998 octets (RFC 5321 4.5.3.1.6).
- A field whose text the email package's parser cannot read (it raises on some malformed
  values, e.g. ``Content-Type: 0;0*``, or drops what it could not parse) is written as it
  was given, folded only at white space: never an exception, never a character lost. An
  address field the envelope needs and cannot be read is a :class:`MessageError` naming
  the field; given an explicit envelope, no field is read.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import headerregistry
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import Policy
from io import BytesIO
from typing import Any, Literal

import idna

from ._errors import MessageError
from .protocol import Extensions, LocalProtocolError
from .protocol._data import MAX_TEXT_LINE, LineLimit, normalize_newlines
from .protocol._syntax import validate_address

__all__ = [
    "Envelope",
    "PreparedMessage",
    "BodyChecker",
    "check_envelope",
    "envelope_from",
    "message_envelope",
    "prepare_message",
    "prepare_raw",
    "serialize",
]

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_STRIPPED = (b"bcc", b"resent-bcc")


@dataclass(frozen=True)
class DSN:
    """Delivery status notification requests (RFC 3461), used when the server offers DSN.

    ``notify``: any of ``"SUCCESS"``, ``"FAILURE"``, ``"DELAY"``, or ``("NEVER",)``;
    ``ret``: ``"FULL"`` or ``"HDRS"``; ``envid``: an envelope id echoed in reports;
    ``orcpt``: send each recipient as its own original recipient (``ORCPT=rfc822;...``,
    RFC 3461 4.2), so reports name the address you used even after forwarding.
    """

    notify: tuple[Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"], ...] = ()
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    orcpt: bool = False


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope: reverse-path and forward-paths (RFC 5321 2.3.1)."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class PreparedMessage:
    """What a transaction sends: addresses as they go on the wire, and the content."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool
    eightbit: bool
    #: Sent as it is with BODY=BINARYMIME over BDAT (RFC 3030 3): not valid as text.
    binary: bool = False


def _fields(msg: Message, name: str) -> list[Any]:
    """``msg.get_all(name)``, where a value the email package cannot parse (its parsers
    raise IndexError and the like on some malformed text) is a :class:`MessageError`."""
    try:
        return msg.get_all(name) or []
    except Exception:  # any failure inside the stdlib's header parser
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        shown = repr(str(raw[0]))[:80] if raw else "?"
        raise MessageError(
            f"the message's {name} header field cannot be parsed: {shown}; fix it, or pass "
            "sender= and recipients= to send the message with the field as it is"
        ) from None


def _addresses(msg: Message, name: str) -> list[str]:
    found: list[str] = []
    for value in _fields(msg, name):
        addresses = getattr(value, "addresses", None)
        if addresses is not None:  # EmailMessage with a modern policy: parsed headers
            found.extend(
                _unescaped(a.addr_spec) for a in addresses if a.addr_spec and a.addr_spec != "<>"
            )
        else:
            found.extend(addr for _, addr in email.utils.getaddresses([str(value)]) if addr)
    return found


def _unescaped(address: str) -> str:
    """An address from a field parsed from bytes keeps its 8-bit octets as surrogate
    escapes; UTF-8 ones (RFC 6532) are the text they spell, as smtplib reads them. Other
    octets stay escaped, and the address check refuses them naming the octet."""
    if address.isascii():
        return address
    try:
        return address.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return address


def _resent_prefix(msg: Message) -> str:
    """``"Resent-"`` when the message has a Resent- block (RFC 5322 3.6.6), else ``""``."""
    resent = _fields(msg, "Resent-Date")
    if len(resent) > 1:
        # Which Resent-To belongs to which block is not knowable from the fields alone.
        raise MessageError(
            "the message has more than one Resent- block; pass the envelope explicitly"
        )
    return "Resent-" if resent else ""


def _sender(msg: Message, prefix: str) -> str:
    senders = _addresses(msg, prefix + "Sender") or _addresses(msg, prefix + "From")
    if not senders:
        raise MessageError(f"the message has no {prefix}From or {prefix}Sender address")
    return senders[0]


def _recipients(msg: Message, prefix: str) -> tuple[str, ...]:
    recipients: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        for address in _addresses(msg, prefix + name):
            if address not in recipients:
                recipients.append(address)
    if not recipients:
        raise MessageError(f"the message has no {prefix}To, {prefix}Cc or {prefix}Bcc address")
    return tuple(recipients)


def envelope_from(msg: Message) -> Envelope:
    """The envelope smtplib's ``send_message`` would build (RFC 5322 3.6.6 for Resent-*)."""
    prefix = _resent_prefix(msg)
    return Envelope(_sender(msg, prefix), _recipients(msg, prefix))


def check_envelope(sender: str, recipients: Sequence[str] | str) -> None:
    """Syntax-check an envelope before any I/O (the server's extensions come later)."""
    if isinstance(recipients, str):
        recipients = [recipients]
    if not recipients:
        raise MessageError("no recipients")
    try:
        if sender:
            validate_address(sender, what="sender")
        for rcpt in recipients:
            validate_address(rcpt, what="recipient")
    except LocalProtocolError as exc:
        raise MessageError(str(exc)) from None


def prepare_address(address: str, extensions: Extensions, *, what: str) -> tuple[str, bool]:
    """An address as it goes on the wire for this server, and whether it needs SMTPUTF8.

    Its syntax was checked by :func:`check_envelope` before any I/O (and the protocol core
    checks it again when the command is built); this only handles non-ASCII addresses.
    """
    if what == "sender" and address == "":
        return address, False
    if address.isascii():
        return address, False
    if extensions.smtputf8:
        return address, True
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise MessageError(
            f"{what} {address!r} has a non-ASCII local part and the server does not "
            "offer SMTPUTF8 (RFC 6531)"
        )
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise MessageError(f"{what} domain {domain!r} is not a valid IDN: {exc}") from None
    return f"{local}@{ascii_domain}", False


def _strip_and_check_headers(data: bytes, expected_fields: int | None) -> bytes:
    # The header section ends at the first empty line, which is the first line when the
    # message has no field at all.
    match = _HEADER_END.search(data)
    head_end = 0 if data.startswith(b"\r\n") else match.start() if match else len(data)
    head, rest = data[:head_end], data[head_end:]
    kept: list[bytes] = []
    fields = 0
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:  # a fold continues the field before it
            if not skipping:
                kept.append(line)
            continue
        if not _FIELD_NAME.match(line):
            raise MessageError(f"malformed header line: {line[:60]!r}")
        fields += 1
        skipping = line.split(b":", 1)[0].strip().lower() in _STRIPPED
        if not skipping:
            kept.append(line)
    if expected_fields is not None and fields > expected_fields:
        raise MessageError(
            "a header value contains a line break that would start a new header field "
            "(header injection); refusing to send"
        )
    return b"".join(kept) + rest


class _Generator(BytesGenerator):
    """A BytesGenerator that writes short, plain ASCII fields without refolding them.

    The stdlib refolds every header object through its parse tree even when it fits on one
    line, which makes header folding the most expensive part of serialising a small message.
    When the field's text (see :func:`_plain_text`) is printable ASCII with no surrounding
    blanks and ``name: text`` fits within the policy's line length, that line is exactly
    what the stdlib would write (a property test compares the two on generated messages).
    Anything else takes the stdlib's path.
    """

    def _write_headers(self, msg: Message) -> None:
        policy = self.policy
        assert policy is not None  # always set by _generate
        limit = policy.max_line_length or sys.maxsize
        linesep = policy.linesep
        for name, value in msg.raw_items():
            text = _plain_text(value)
            if text is not None and len(name) + 2 + len(text) <= limit:
                self._fp.write(f"{name}: {text}{linesep}".encode("ascii"))  # type: ignore[attr-defined]
            else:
                self._fp.write(policy.fold_binary(name, value))  # type: ignore[attr-defined]
        self.write(self._NL)  # type: ignore[attr-defined]


def _plain_text(value: object) -> str | None:
    """The one-line form of a header field's value, when folding cannot change it.

    Text, date and version fields fold to their own text. Structured fields (addresses,
    Message-ID, Content-Type...) fold to the text of their parse tree, which is the value
    as it was given: on one line, in ASCII, the stdlib's folder only concatenates the
    tree's tokens (it rewrites nothing unless it must wrap or encode). ``None`` for a
    value that needs the real folder (non-ASCII, control characters, folding white space,
    or an object that is not one of the registry's header objects).
    """
    if isinstance(value, _VERBATIM):
        text = str(value)
    else:
        tree = getattr(value, "_parse_tree", None)  # headerregistry.BaseHeader's
        if tree is None:
            return None
        text = str(tree)
    if text and text.isascii() and text.isprintable() and text == text.strip():
        return text
    return None


#: Field types whose text is their folded form when short and plain. Not addresses: their
#: text can differ from the rendering (``"0" <a@b>`` reads back as ``0 <a@b>``), so those
#: are written from their parse tree instead.
_VERBATIM = (
    headerregistry.UnstructuredHeader,
    headerregistry.DateHeader,
    headerregistry.MIMEVersionHeader,
    headerregistry.ContentTransferEncodingHeader,
)

_WORDS = re.compile(r"[ \t]+[^ \t]*")


class _FieldText(headerregistry.UnstructuredHeader, headerregistry.BaseHeader):
    """A field whose text the stdlib could not parse (see :class:`_TolerantHeaderFactory`).

    It is written as it was given, folded only before white space where a line would
    exceed the policy's length (RFC 5322 2.2.3): unfolding gives back the exact text. Only
    text that cannot go out as it is (non-ASCII without a UTF-8 policy, or undecodable
    octets) takes the stdlib's unstructured folder, which encodes it (RFC 2047).
    """

    _text: str

    def __new__(cls, name: str, value: str) -> _FieldText:
        self = super().__new__(cls, name, value)
        self._text = value
        return self

    def fold(self, *, policy: Policy) -> str:
        """``name: text`` folded at white space, ending with the policy's line separator."""
        text = self._text
        sendable = text.isascii() or getattr(policy, "utf8", False)
        if not sendable or not text.replace("\t", " ").isprintable():  # also: surrogates
            return super().fold(policy=policy)
        limit = policy.max_line_length or sys.maxsize
        first = f"{self.name}:"
        lines = [first]
        for word in _WORDS.findall(" " + text):  # each starts with white space
            if len(lines[-1]) + len(word) > limit and lines[-1] != first and word.strip():
                lines.append(word)
            else:
                lines[-1] += word
        return policy.linesep.join(lines) + policy.linesep


#: Fields already parsed as text: their defects (an undecodable encoded word) lose nothing.
_UNSTRUCTURED_TYPES = (headerregistry.UnstructuredHeader,)


class _TolerantHeaderFactory:
    """A policy's ``header_factory`` that never lets the parser lose or stop on a field.

    The email package parses a field's text whenever it refolds it (a long field read
    from bytes, or any field of a ``compat32`` message, which goes out through a modern
    policy) or reads it (a part's Content-Type, during generation). Some malformed values
    make its structured parsers raise (``Content-Type: 0;0*`` is an IndexError in CPython
    3.11); others parse with a defect and lose the part they could not read
    (``Content-Disposition: =;0* x`` refolds to ``=;``). Either way the field is a
    :class:`_FieldText` here instead (text, as the stdlib treats any field it has no parser
    for; written as given), so what the caller wrote is what is sent. Fields that parse
    cleanly are untouched: their output is the stdlib's.
    """

    def __init__(self, factory: Any) -> None:
        self._factory = factory

    def __call__(self, name: str, value: str) -> Any:
        try:
            header = self._factory(name, value)
        except Exception:  # any failure inside the stdlib's structured parsers
            return _FieldText(name, value)
        if getattr(header, "defects", None) and not isinstance(header, _UNSTRUCTURED_TYPES):
            return _FieldText(name, value)
        return header

    def __getitem__(self, name: str) -> Any:  # EmailPolicy.header_max_count looks types up
        return self._factory[name]


_POLICIES: dict[tuple[int, bool, bool], tuple[Policy, Policy]] = {}


def _policy(base: Policy, *, utf8: bool, cte_7bit: bool) -> Policy:
    """The serialising policy derived from ``base`` (cached: cloning is not free)."""
    key = (id(base), utf8, cte_7bit)
    cached = _POLICIES.get(key)
    if cached is not None and cached[0] is base:
        return cached[1]
    policy = base.clone(linesep="\r\n")
    if isinstance(policy, email.policy.EmailPolicy):
        policy = policy.clone(
            utf8=utf8, header_factory=_TolerantHeaderFactory(policy.header_factory)
        )
    if cte_7bit:
        policy = policy.clone(cte_type="7bit")
    if len(_POLICIES) > 64:
        _POLICIES.clear()
    _POLICIES[key] = (base, policy)
    return policy


def _generate(msg: Message, *, utf8: bool, cte_7bit: bool) -> bytes:
    base = msg.policy if isinstance(msg, EmailMessage) else email.policy.SMTP
    out = BytesIO()
    policy = _policy(base, utf8=utf8, cte_7bit=cte_7bit)
    _Generator(out, mangle_from_=False, policy=policy).flatten(msg, linesep="\r\n")
    return out.getvalue()


def serialize(msg: Message, extensions: Extensions, *, smtputf8: bool) -> tuple[bytes, bool]:
    """Bytes to send for ``msg`` (Bcc stripped) and whether they are 8-bit.

    With SMTPUTF8 in use, headers may carry UTF-8 (RFC 6532); without 8BITMIME an 8-bit
    body is re-encoded to 7 bit, or refused when it cannot be.
    """
    data = _generate(msg, utf8=smtputf8, cte_7bit=False)
    eightbit = not data.isascii()
    if eightbit and not extensions.eightbitmime and not smtputf8:
        data = _generate(msg, utf8=False, cte_7bit=True)
        eightbit = not data.isascii()
        if eightbit:
            raise MessageError(
                "the message has 8-bit content that cannot be re-encoded to 7 bit and the "
                "server does not offer 8BITMIME"
            )
    data = _strip_and_check_headers(data, len(msg.keys()))
    check_line_lengths(data)
    return data, eightbit


_SLICE = 1 << 20


class BodyChecker:
    """Checks a body piece by piece: line lengths (RFC 5321 4.5.3.1.6) and, unless 8-bit
    transport is available, that every octet is 7-bit. Raises :class:`MessageError`."""

    def __init__(self, *, allow_8bit: bool = True) -> None:
        self.allow_8bit = allow_8bit
        self._limit = LineLimit(MAX_TEXT_LINE)

    @property
    def crlf_only(self) -> bool:
        """Every line end checked so far was CRLF: the body needs no normalising."""
        return self._limit.crlf_only

    def feed(self, piece: bytes) -> None:
        """Check the next piece of the body."""
        if not self.allow_8bit and not piece.isascii():
            raise MessageError(
                "the message has 8-bit content and the server does not offer 8BITMIME; "
                "encode it to 7 bit (e.g. quoted-printable) first"
            )
        # In slices: the fast line check splits its input, so it must stay small. Each slice
        # ends after a LF when it can, so no CRLF is cut in two (see crlf_only).
        line_no = start = 0
        size = len(piece)
        while start < size:
            end = min(start + _SLICE, size)
            if end < size:
                lf = piece.rfind(b"\n", start, end)
                end = lf + 1 if lf >= 0 else end
            line_no = self._limit.feed(piece[start:end])
            if line_no:
                break
            start = end
        if line_no:
            raise MessageError(
                f"line {line_no} is longer than {MAX_TEXT_LINE} octets (RFC 5321 4.5.3.1.6); "
                "encode the content (quoted-printable or base64) first"
            )


def check_line_lengths(data: bytes) -> None:
    """Refuse lines over 998 octets (RFC 5321 4.5.3.1.6) before any I/O."""
    BodyChecker().feed(data)


def prepare_raw(
    sender: str,
    recipients: Sequence[str] | str,
    data: bytes,
    extensions: Extensions,
    *,
    binary_ok: bool = False,
) -> PreparedMessage:
    """Check an envelope and raw RFC 5322 bytes for this server.

    Bare CR and bare LF become CRLF (RFC 5321 2.3.8), so DATA and BDAT carry the same
    octets. Content that is not valid as text (an over-long line, 8-bit octets without
    8BITMIME) is refused, unless ``binary_ok`` (the server offers BINARYMIME and CHUNKING):
    then it goes byte for byte as BODY=BINARYMIME (RFC 3030 3).
    """
    if isinstance(recipients, str):
        recipients = [recipients]
    if not recipients:
        raise MessageError("no recipients")
    sent_sender, utf8 = prepare_address(sender, extensions, what="sender")
    sent_rcpts = []
    for rcpt in recipients:
        sent, needs = prepare_address(rcpt, extensions, what="recipient")
        utf8 = utf8 or needs
        sent_rcpts.append(sent)
    binary = False
    checker = BodyChecker(allow_8bit=extensions.eightbitmime or utf8)
    try:
        checker.feed(data)
    except MessageError:
        if not binary_ok:
            raise
        binary = True
    if not binary and not checker.crlf_only:  # the check's scans proved it CRLF otherwise
        data = normalize_newlines(data)
    eightbit = not data.isascii()
    return PreparedMessage(sent_sender, tuple(_unique(sent_rcpts)), data, utf8, eightbit, binary)


def message_envelope(
    msg: Message, sender: str | None = None, recipients: Sequence[str] | None = None
) -> Envelope:
    """The envelope of ``msg`` with the caller's overrides, syntax-checked (no I/O).

    Only what the caller did not give is read from the header fields, as smtplib does.
    """
    if sender is None or recipients is None:
        prefix = _resent_prefix(msg)
        if sender is None:
            sender = _sender(msg, prefix)
        if recipients is None:
            recipients = _recipients(msg, prefix)
    checked = Envelope(sender, tuple(recipients))
    check_envelope(checked.sender, checked.recipients)
    return checked


def prepare_message(msg: Message, envelope: Envelope, extensions: Extensions) -> PreparedMessage:
    """The bytes of an ``EmailMessage`` and its envelope, ready for this server."""
    checked = prepare_raw(envelope.sender, envelope.recipients, b"", extensions)
    data, eightbit = serialize(msg, extensions, smtputf8=checked.smtputf8)
    return PreparedMessage(checked.sender, checked.recipients, data, checked.smtputf8, eightbit)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
