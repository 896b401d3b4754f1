"""Our header fast path writes exactly what the stdlib's folding would."""

from __future__ import annotations

import email
import email.policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from io import BytesIO

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpsubmit._message import _generate

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


@settings(max_examples=300, deadline=None)
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


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(st.tuples(st.sampled_from(STRUCTURED), TEXT), min_size=1, max_size=5),
    utf8=st.booleans(),
)
def test_fast_header_path_matches_the_stdlib_on_any_structured_field_text(
    fields: list[tuple[str, str]], utf8: bool
) -> None:
    """Any printable text in address, id and MIME fields, as given by the caller or as
    parsed from a message: quoted or bare display names, comments, groups, parameters
    with and without quotes, and the malformed values the parser tolerates."""
    raw = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\nbody\r\n"
    parsed = email.message_from_bytes(raw.encode("ascii"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    given_msg = EmailMessage()
    try:
        for name, value in fields:
            given_msg[name] = value
    except Exception:  # a value the email package itself refuses (or trips over)
        given_msg = None
    for msg in (parsed, given_msg):
        if msg is None:
            continue
        try:
            expected = stdlib(msg, utf8=utf8)
        except Exception:  # the stdlib cannot serialise it either: nothing to compare
            continue
        assert _generate(msg, utf8=utf8, cte_7bit=False) == expected


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
