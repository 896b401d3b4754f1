"""Server-side SMTP codecs for the fake server: parsing command lines, rendering replies.

Theory of operation: everything here is pure (no I/O) and works on ``bytes``/``str``.

Rule 1: a command line is split into a verb and the rest once, here (RFC 5321 4.1.1).
Rule 2: MAIL/RCPT paths and ESMTP parameters are parsed here (RFC 5321 4.1.2); the session
decides whether a parameter is acceptable, because that depends on what was advertised.
Rule 3: a reply is rendered here and nowhere else (RFC 5321 4.2.1), so the enhanced status
code (RFC 2034) is either on every line of a reply or on none.
Rule 4: the grammars are ASCII (RFC 5234 B.1), so client text is read with ``parse_number``
and ``ascii_upper``, never with ``str.isdigit()``, ``int()`` or ``str.upper()`` alone: those
know Unicode (SUPERSCRIPT TWO is a digit to ``isdigit()`` but not to ``int()``, ``int()``
reads FULLWIDTH DIGIT ONE as 1, LONG S upper-cases to ``S``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CommandSyntaxError",
    "MailboxArgs",
    "ascii_upper",
    "decode_xtext",
    "parse_mailbox_args",
    "parse_number",
    "render_reply",
    "split_command",
    "split_words",
]

#: RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
#: RFC 4954 4: AUTH command lines and SASL responses may be up to 12288 octets.
MAX_AUTH_LINE = 12288


_DIGITS = re.compile("[0-9]+")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_number(text: str, *, max_digits: int | None = None) -> int | None:
    """Read ``1*DIGIT`` (ASCII ``0``-``9`` only, RFC 5234 B.1), or return ``None``.

    No sign, no spaces, no other notation; at most ``max_digits`` digits when given.
    """
    if _DIGITS.fullmatch(text) is None or (max_digits is not None and len(text) > max_digits):
        return None
    return int(text)


def ascii_upper(text: str) -> str:
    """Upper-case the ASCII letters only (RFC 5321 2.4 case-insensitivity is ASCII's).

    Other characters stay as they are, so a non-ASCII lookalike never equals a keyword.
    """
    return text.translate(_UPPER)


class CommandSyntaxError(ValueError):
    """A command's arguments do not parse; the message is the reply text (501 5.5.4)."""


@dataclass(frozen=True)
class MailboxArgs:
    """The arguments of MAIL FROM / RCPT TO: the path and its ESMTP parameters."""

    address: str
    #: Keywords upper-cased; ``None`` for a keyword without ``=value`` (RFC 5321 4.1.2).
    params: dict[str, str | None]


def split_command(line: str) -> tuple[str, str]:
    """Split a command line (without CRLF) into an upper-case verb and its argument text.

    RFC 5321 2.4: verbs are case-insensitive.
    """
    verb, _, rest = line.strip(" ").partition(" ")
    return ascii_upper(verb), rest.strip(" ")


def split_words(text: str) -> list[str]:
    """Split at SP only (RFC 5321 4.1.2), tolerating several; ``str.split()`` would also
    split at Unicode spaces such as U+00A0 or U+001C."""
    return [word for word in text.split(" ") if word]


def parse_mailbox_args(text: str, prefix: str) -> MailboxArgs:
    """Parse ``FROM:<path> params`` / ``TO:<path> params`` (RFC 5321 4.1.1.2, 4.1.1.3).

    ``prefix`` is ``"FROM:"`` or ``"TO:"``. A space after the colon is tolerated, like most
    servers do. The angle brackets are required; a quoted local part may contain ``>``.
    """
    if ascii_upper(text[: len(prefix)]) != prefix:
        verb = "MAIL FROM" if prefix == "FROM:" else "RCPT TO"
        raise CommandSyntaxError(f"Syntax: {verb}:<address>")
    rest = text[len(prefix) :].lstrip(" ")
    if not rest.startswith("<"):
        raise CommandSyntaxError("Bad address syntax: missing <")
    end = _find_path_end(rest)
    if end < 0:
        raise CommandSyntaxError("Bad address syntax: missing >")
    address = rest[1:end]
    if " " in address and '"' not in address:
        raise CommandSyntaxError("Bad address syntax")
    params: dict[str, str | None] = {}
    for word in split_words(rest[end + 1 :]):
        key, eq, value = word.partition("=")
        if not key or not _is_esmtp_keyword(key):
            raise CommandSyntaxError(f"Bad parameter syntax: {word}")
        params[ascii_upper(key)] = value if eq else None
    return MailboxArgs(address=address, params=params)


def _find_path_end(text: str) -> int:
    quoted = False
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    return -1


def _is_esmtp_keyword(key: str) -> bool:
    # RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    return key.isascii() and key[0].isalnum() and all(c.isalnum() or c == "-" for c in key)


def decode_xtext(text: str) -> str:
    """Decode RFC 3461 4 xtext (``+HH`` escapes) as used by ENVID, ORCPT and AUTH=.

    Raises CommandSyntaxError for a malformed escape or a character outside xtext.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "+":
            hexpair = text[i + 1 : i + 3]
            if len(hexpair) != 2 or not all(c in "0123456789ABCDEF" for c in hexpair):
                raise CommandSyntaxError("Bad xtext encoding")
            out.append(int(hexpair, 16))
            i += 3
            continue
        if not ("!" <= ch <= "~") or ch == "=":
            raise CommandSyntaxError("Bad xtext encoding")
        out.append(ord(ch))
        i += 1
    return out.decode("utf-8", errors="surrogateescape")


def render_reply(code: int, lines: str | list[str], enhanced: str | None = None) -> bytes:
    """Render a (possibly multi-line) reply, ``code-text`` then ``code text`` (RFC 5321 4.2.1).

    ``enhanced`` (RFC 2034 / RFC 3463 class.subject.detail) prefixes every line's text when
    given; the caller passes ``None`` when ENHANCEDSTATUSCODES was not advertised.
    """
    texts = [lines] if isinstance(lines, str) else list(lines) or [""]
    out = bytearray()
    for i, text in enumerate(texts):
        sep = " " if i == len(texts) - 1 else "-"
        body = f"{enhanced} {text}" if enhanced else text
        out += f"{code}{sep}{body}".rstrip(" ").encode("utf-8") + b"\r\n"
    return bytes(out)
