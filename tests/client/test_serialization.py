"""Our header fast path writes exactly what the stdlib's folding would, and a field the
stdlib cannot parse goes out whole instead of crashing or losing text."""

from __future__ import annotations

import email
import email.policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from io import BytesIO

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from smtpsubmit import MessageError
from smtpsubmit._message import _generate, _policy, message_envelope, prepare_message
from smtpsubmit.protocol import Extensions

POLICY = email.policy.default.clone(linesep="\r\n")
# Printable ASCII words, with spaces, commas, quotes, parentheses, angle brackets and @:
# enough to build subjects, display names and address lists of every shape.
TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=90
)
ADDRESS = st.from_regex(r"[a-z][a-z0-9.+-]{0,10}@[a-z]{1,10}\.(com|org|example)", fullmatch=True)
NAME = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


def stdlib(msg: EmailMessage, *, utf8: bool = False) -> bytes:
    out = BytesIO()
    policy = POLICY.clone(utf8=utf8)
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(msg, linesep="\r\n")
    return out.getvalue()


def build(subject: str, names: list[str], addresses: list[str]) -> EmailMessage | None:
    msg = EmailMessage()
    try:
        msg["Subject"] = subject
        msg["From"] = addresses[0]
        msg["To"] = (
            ", ".join(
                f'"{n}" <{a}>' if n else a
                for n, a in zip(names, addresses, strict=False)
                if '"' not in n and "\\" not in n
            )
            or addresses[0]
        )
        msg["X-Custom"] = subject[:40]
        msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    except (ValueError, IndexError):
        return None  # a value the email package itself refuses
    msg.set_content("body\n")
    return msg


@settings(max_examples=3 * settings.default.max_examples)
@given(
    subject=TEXT,
    names=st.lists(NAME, max_size=4),
    addresses=st.lists(ADDRESS, min_size=1, max_size=4),
)
def test_fast_header_path_matches_the_stdlib(
    subject: str, names: list[str], addresses: list[str]
) -> None:
    msg = build(subject, names, addresses)
    if msg is None:
        return
    assert _generate(msg, utf8=False, cte_7bit=False) == stdlib(msg)


def test_fast_header_path_matches_on_a_realistic_message() -> None:
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@example.com>"
    msg["To"] = 'bob@example.com, "Doe, John" <john@example.org>'
    msg["Cc"] = "undisclosed-recipients:;"
    msg["Subject"] = "A subject that is long enough to need folding because it goes on and on"
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<abc.123@example.com>"
    msg["X-Empty"] = ""
    msg["X-Tab"] = "a\tb"
    msg["X-Unicode"] = "Grüße"
    msg.set_content("Hello\n")
    msg.add_attachment(b"data", maintype="application", subtype="pdf", filename="r 2024.pdf")
    assert _generate(msg, utf8=False, cte_7bit=False) == stdlib(msg)


STRUCTURED = ("From", "To", "Cc", "Reply-To", "Message-ID", "In-Reply-To", "Content-Type")


def ours_by_the_stdlib(msg: EmailMessage, *, utf8: bool) -> bytes:
    """The stdlib's generator with the policy our serialiser uses (the same header factory,
    so fields it cannot parse are text there too): the slow path the fast one must match."""
    out = BytesIO()
    policy = _policy(msg.policy, utf8=utf8, cte_7bit=False)
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(msg, linesep="\r\n")
    return out.getvalue()


def parses_cleanly(msg: EmailMessage) -> bool:
    """Every field of ``msg`` parses under its policy without an exception or a defect."""
    try:
        return not any(getattr(value, "defects", ()) for _, value in msg.items())
    except Exception:  # the stdlib's parser crashes on some malformed values
        return False


@settings(max_examples=4 * settings.default.max_examples)
@given(
    fields=st.lists(st.tuples(st.sampled_from(STRUCTURED), TEXT), min_size=1, max_size=5),
    utf8=st.booleans(),
)
@example(fields=[("Content-Type", "0;0*")], utf8=False)  # the stdlib's parser: IndexError
def test_fast_header_path_matches_the_stdlib_on_any_structured_field_text(
    fields: list[tuple[str, str]], utf8: bool
) -> None:
    """Any printable text in address, id and MIME fields, as given by the caller or as
    parsed from a message: quoted or bare display names, comments, groups, parameters
    with and without quotes, and the malformed values the parser tolerates. Where every
    field parses cleanly the output is the plain stdlib's; otherwise the stdlib's with our
    policy (see test_unparsable_fields_*). A message the stdlib cannot even build (its
    parser raises on some values) is no example."""
    raw = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\nbody\r\n"
    parsed: EmailMessage | None
    try:
        parsed = email.message_from_bytes(raw.encode("ascii"), policy=email.policy.default)  # type: ignore[assignment]
    except Exception:  # the stdlib's parser crashes on it: nothing to compare with
        parsed = None
    given_msg: EmailMessage | None = EmailMessage()
    try:
        for name, value in fields:
            given_msg[name] = value  # type: ignore[index]
    except Exception:  # a value the email package itself refuses (or trips over)
        given_msg = None
    assume(parsed is not None or given_msg is not None)
    for msg in (parsed, given_msg):
        if msg is None:
            continue
        try:
            expected = ours_by_the_stdlib(msg, utf8=utf8)
        except Exception:  # the stdlib cannot serialise it either: nothing to compare
            continue
        assert _generate(msg, utf8=utf8, cte_7bit=False) == expected
        if parses_cleanly(msg):
            assert expected == stdlib(msg, utf8=utf8)


ENVELOPE = b"From: a@example.com\r\nTo: b@example.com\r\n"

#: Field text the stdlib's parsers raise on (CPython 3.11: IndexError, AttributeError,
#: TypeError) or parse with a defect and lose part of when they refold it.
UNPARSABLE = [
    ("Content-Type", "0;0*"),  # IndexError (a compat32 part's type is read to write it)
    ("Content-Type", "text/plain; charset=us-ascii; 0*"),
    ("Content-Type", ".;aa*" + " y" * 40),
    ("Content-Disposition", "=;0*" + " d" * 40),  # refolded as "=;"
    ("Message-ID", '<:a;"=' + " m" * 40),  # IndexError when refolded
    ("Cc", "c" * 80 + " *<"),  # IndexError when refolded
    ("Reply-To", ",=:>;)" + " r" * 40),  # AttributeError when refolded
    ("Reply-To", "a@b.example, (x" + " z" * 40),  # refolded as "a@b.example, (x z z ...)"
    ("Date", "not a date" + " at all" * 12),  # refolded as nothing
]


def unfolded_head(data: bytes) -> bytes:
    """The header section with every folding line break removed (RFC 5322 2.2.3)."""
    head = b"\r\n" + data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")


def sent(msg: Message) -> bytes:
    """The octets prepared for ``msg`` with an explicit envelope (no field is read)."""
    envelope = message_envelope(msg, "a@example.com", ["b@example.com"])
    return prepare_message(msg, envelope, Extensions()).data


@pytest.mark.parametrize(("name", "value"), UNPARSABLE)
@pytest.mark.parametrize("policy", [email.policy.compat32, email.policy.default])
def test_unparsable_fields_are_sent_whole(
    name: str, value: str, policy: email.policy.Policy
) -> None:
    """A field from parsed bytes, or in a compat32 message (which goes out through a modern
    policy), that the stdlib cannot parse is written as it is: no exception, and unfolding
    the output gives back the exact text (lines are only ever broken before white space)."""
    raw = ENVELOPE + f"{name}: {value}\r\n\r\nbody\r\n".encode()
    try:
        msg = email.message_from_bytes(raw, policy=policy)
    except IndexError:  # the parser itself crashes (Content-Type, modern policy)
        assert policy is email.policy.default
        assert name == "Content-Type"
        return
    for data in (sent(msg), _generate(msg, utf8=True, cte_7bit=False)):
        assert f"\r\n{name}: {value}\r\n".encode() in unfolded_head(data)
        assert data.endswith(b"\r\n\r\nbody\r\n")


LONG_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=40, max_size=120
)


@settings(max_examples=3 * settings.default.max_examples)
@given(
    fields=st.lists(st.tuples(st.sampled_from(STRUCTURED), LONG_TEXT), min_size=1, max_size=4),
    compat32=st.booleans(),
)
def test_any_structured_field_text_is_sent_or_refused_never_crashes(
    fields: list[tuple[str, str]], compat32: bool
) -> None:
    """Long enough to be refolded: the output, or a MessageError, never another exception;
    and a field the stdlib cannot parse cleanly goes out exactly as it was read."""
    raw = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\nbody\r\n"
    policy = email.policy.compat32 if compat32 else email.policy.default
    try:
        msg = email.message_from_bytes(raw.encode("ascii"), policy=policy)
    except Exception:  # the stdlib's own parser crashed (a modern Content-Type)
        assume(False)
    try:
        data = sent(msg)
    except MessageError:
        return
    factory = email.policy.default.header_factory
    for name, value in fields:
        text = value.lstrip(" ")  # as the parser stores it
        try:
            clean = not factory(name, text).defects
        except Exception:  # the stdlib's parser crashes on it
            clean = False
        if not clean:
            assert f"\r\n{name}: {text}\r\n".encode() in unfolded_head(data)


def test_a_compat32_content_type_the_stdlib_cannot_parse_is_sent_verbatim() -> None:
    """The seed of this rule: ``Content-Type: 0;0*`` made the stdlib raise IndexError from
    inside our serialiser (compat32 messages go out through a modern policy)."""
    msg = email.message_from_bytes(ENVELOPE + b"Content-Type: 0;0*\r\n\r\nbody\r\n")
    envelope = message_envelope(msg)
    prepared = prepare_message(msg, envelope, Extensions())
    assert prepared.data == ENVELOPE + b"Content-Type: 0;0*\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    ("name", "value"), [("Cc", "*<"), ("To", "b@example.com, <"), ("From", "'@")]
)
def test_an_unparsable_address_field_the_envelope_needs_is_a_message_error(
    name: str, value: str
) -> None:
    fields = {"From": "a@example.com", "To": "b@example.com", name: value}
    raw = "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\nbody\r\n"
    msg = email.message_from_bytes(raw.encode(), policy=email.policy.default)
    with pytest.raises(MessageError, match=rf"{name} header field cannot be parsed") as info:
        message_envelope(msg)
    assert "sender= and recipients=" in str(info.value)
    # With the envelope given, the field is not read: the message goes out as it is.
    envelope = message_envelope(msg, "a@example.com", ["b@example.com"])
    data = prepare_message(msg, envelope, Extensions()).data
    assert f"{name}: {value}\r\n".encode() in data


def test_only_the_part_of_the_envelope_not_given_is_read_from_the_message() -> None:
    msg = EmailMessage()
    msg["To"] = "b@example.com"
    msg.set_content("body\n")
    with pytest.raises(MessageError, match="no From or Sender"):
        message_envelope(msg)
    envelope = message_envelope(msg, sender="a@example.com")
    assert (envelope.sender, envelope.recipients) == ("a@example.com", ("b@example.com",))


def test_fast_header_path_matches_on_message_ids_and_mime_parameters() -> None:
    msg = EmailMessage()
    msg["From"] = '"0" <a@example.com>, Bare Name <b@example.com>, (comment) c@example.com'
    msg["To"] = "Friends: d@example.com, e@example.com;"
    msg["Message-ID"] = "<id.1@example.com> (comment)"
    msg["In-Reply-To"] = "<a@b> <c@d>"
    msg.set_content("Hello\n", charset="us-ascii")
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="a;b.bin")
    for utf8 in (False, True):
        assert _generate(msg, utf8=utf8, cte_7bit=False) == stdlib(msg, utf8=utf8)


# -- the envelope read from the fields: what each refusal says, what counts as an address ---


def parsed(*fields: str, policy: email.policy.Policy = email.policy.default) -> Message:
    raw = "".join(f"{field}\r\n" for field in fields) + "\r\nbody\r\n"
    return email.message_from_bytes(raw.encode(), policy=policy)


@pytest.mark.parametrize("head", ["", "c@example.com, " * 6], ids=["short", "long"])
def test_an_unparsable_field_is_quoted_as_read_cut_to_80_characters(head: str) -> None:
    value = head + "b@example.com, <"
    with pytest.raises(MessageError) as info:
        message_envelope(parsed("From: a@example.com", "Cc: c@example.com", f"To: {value}"))
    assert str(info.value) == (
        f"the message's To header field cannot be parsed: {repr(value)[:80]}; fix it, or pass "
        "sender= and recipients= to send the message with the field as it is"
    )


def test_a_null_address_in_a_field_is_not_a_recipient() -> None:
    # The email package reads "<>" as the addr-spec "<>"; it names no mailbox.
    msg = parsed("From: a@example.com", "To: <>, b@example.com", "Cc: <>")
    assert message_envelope(msg).recipients == ("b@example.com",)


def test_utf8_addresses_of_a_message_parsed_from_bytes_are_read_as_text() -> None:
    """RFC 6532 fields read from bytes keep their octets as surrogate escapes; the envelope
    has the addresses they spell (as smtplib reads them), not the escapes."""
    raw = "From: Jörg <jörg@exämple.org>\r\nTo: b@exämple.org\r\n\r\nbody\r\n".encode()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    envelope = message_envelope(msg)
    assert (envelope.sender, envelope.recipients) == ("jörg@exämple.org", ("b@exämple.org",))


def test_an_address_field_that_is_not_utf8_is_refused_naming_the_octet() -> None:
    raw = b"From: a@example.com\r\nTo: j\xf6rg@example.org\r\n\r\nbody\r\n"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    with pytest.raises(MessageError, match="lone surrogate"):
        message_envelope(msg)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            ["From: a@example.com", "To: b@example.com", "Resent-Date: x", "Resent-To: c@x.org"],
            "the message has no Resent-From or Resent-Sender address",
        ),
        (
            ["From: a@example.com", "To: b@example.com", "Resent-Date: x", "Resent-From: c@x.org"],
            "the message has no Resent-To, Resent-Cc or Resent-Bcc address",
        ),
        (
            ["From: a@example.com", "Subject: s"],
            "the message has no To, Cc or Bcc address",
        ),
        (
            ["From: a@example.com", "Resent-Date: x", "Resent-Date: y", "To: b@example.com"],
            "the message has more than one Resent- block; pass the envelope explicitly",
        ),
    ],
    ids=["no-resent-from", "no-resent-to", "no-to", "two-resent-blocks"],
)
def test_a_missing_envelope_field_is_named_as_the_message_spells_it(
    fields: list[str], error: str
) -> None:
    with pytest.raises(MessageError) as info:
        message_envelope(parsed(*fields))
    assert str(info.value) == error


@pytest.mark.parametrize(
    ("from_field", "sender"),
    [("a@example.com", "a b@example.com"), ("a@-example.com", None)],
    ids=["given", "from-field"],
)
def test_the_sender_is_syntax_checked_before_any_io(from_field: str, sender: str | None) -> None:
    msg = parsed(f"From: {from_field}", "To: b@example.com")
    with pytest.raises(MessageError, match="sender"):
        message_envelope(msg, sender=sender)


# -- the header section as it goes out: injection, malformed lines, no fields at all --------


def test_a_header_injection_in_a_compat32_value_is_refused() -> None:
    legacy = Message()
    legacy["From"] = "a@example.com"
    legacy["Subject"] = "hi\r\nBcc: evil@example.com"
    legacy.set_payload("x")
    with pytest.raises(MessageError) as info:
        sent(legacy)
    assert str(info.value) == (
        "a header value contains a line break that would start a new header field "
        "(header injection); refusing to send"
    )


def test_a_field_name_that_is_not_a_field_name_is_refused_quoting_60_octets() -> None:
    name = "X Bad " + "y" * 70
    legacy = Message()
    legacy[name] = "v"
    legacy.set_payload("x")
    with pytest.raises(MessageError) as info:
        sent(legacy)
    line = f"{name}: v\r\n".encode()
    assert str(info.value) == f"malformed header line: {line[:60]!r}"


def test_a_field_name_starting_with_white_space_is_refused_not_sent_as_a_fold() -> None:
    # The generator writes " X: v" first: a continuation of no field (RFC 5322 2.2.3).
    legacy = Message()
    legacy[" X"] = "v"
    legacy["Subject"] = "s"
    legacy.set_payload("x")
    with pytest.raises(MessageError, match="malformed header line"):
        sent(legacy)


def test_a_message_without_header_fields_goes_out_as_its_body() -> None:
    msg = Message()
    msg.set_payload("body\r\n")
    assert sent(msg) == b"\r\nbody\r\n"
