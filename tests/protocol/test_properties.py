"""Property tests: fuzzed input never breaks the core; encodings round-trip.

Every parser in the core is fuzzed here with one contract: it parses, or raises the error
it documents (RemoteProtocolError for server bytes, LocalProtocolError for what the
caller builds, ValueError for EnhancedStatus.parse and xtext_decode), never anything
else. The parsers: ReplyParser and ClientConnection (1), EnhancedStatus.parse (2),
xtext_decode (3), Extensions.parse (5), address, domain and parameter checks (6).
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtpsubmit.protocol import (
    NEED_DATA,
    Auth,
    ClientConnection,
    Data,
    Ehlo,
    EnhancedStatus,
    Extensions,
    LocalProtocolError,
    Mail,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Sentinel,
    StartTLS,
    State,
)
from smtpsubmit.protocol._data import DataEncoder, LineLimit, encode_data, normalize_newlines
from smtpsubmit.protocol._replies import ReplyParser
from smtpsubmit.protocol._syntax import (
    ESMTP_KEYWORD,
    is_esmtp_value,
    validate_address,
    validate_domain,
    xtext_decode,
    xtext_encode,
)

from .helpers import ehlo_reply, greeted, ready, reply

FAST = settings(max_examples=200, deadline=None)

# Server bytes that are mostly almost valid, so parsing gets deep before it fails.
PIECES = st.sampled_from(
    [
        b"250 ",
        b"250-",
        b"220 ",
        b"221 ",
        b"235 ",
        b"334 ",
        b"354 ",
        b"421 ",
        b"550-",
        b"550 ",
        b"\r\n",
        b"\n",
        b"\r",
        b"2.0.0 ",
        b"5.1.1 ",
        b"PIPELINING",
        b"SIZE 99",
        b"AUTH PLAIN",
        b"AUTH=LOGIN",
        b"STARTTLS",
        b"ENHANCEDSTATUSCODES",
        b"dXNlcg==",
        b"\x00",
        b"\xff",
        b"\x1b",
        b" ",
    ]
)
SERVER_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(PIECES, st.binary(max_size=8)), max_size=40).map(b"".join),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for point in [*points, len(data)]:
        out.append(data[start:point])
        start = point
    return [piece for piece in out if piece]


CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)

# Every code point, lone surrogates included (st.text() leaves them out by default).
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=40)


# -- (1) fuzzing readers -------------------------------------------------------------------


@FAST
@given(
    data=SERVER_BYTES,
    cuts=CUTS,
    max_line=st.integers(min_value=1, max_value=64),
    enhanced=st.booleans(),
)
def test_reply_parser_gives_replies_or_remote_error_only(
    data: bytes, cuts: list[int], max_line: int, enhanced: bool
) -> None:
    parser = ReplyParser(max_line=max_line, max_reply=4 * max_line)
    parser.enhanced_status_codes = enhanced
    try:
        for piece in chunked(data, cuts):
            parser.feed(piece)
            while (got := parser.next_reply()) is not None:
                assert isinstance(got, Reply)
                assert 200 <= got.code <= 559
                assert all("\n" not in line and "\r" not in line for line in got.lines)
            assert parser.buffered <= len(data)
            assert len(parser._buffer) < max_line
    except RemoteProtocolError:
        pass


def _pipelined() -> ClientConnection:
    conn = ready("PIPELINING", "AUTH PLAIN", "STARTTLS", allow_cleartext_auth=True)
    conn.send(Mail("a@example.com"))
    conn.send(Rcpt("b@example.com"))
    conn.send(Data())
    return conn


def _auth() -> ClientConnection:
    conn = ready("AUTH PLAIN", allow_cleartext_auth=True)
    conn.send(Auth("PLAIN"))
    return conn


def _starttls() -> ClientConnection:
    conn = ready("STARTTLS")
    conn.send(StartTLS())
    return conn


def _ehlo_sent() -> ClientConnection:
    conn = greeted()
    conn.send(Ehlo("client.example"))
    return conn


SESSIONS = st.sampled_from([ClientConnection, _ehlo_sent, _pipelined, _auth, _starttls])


def _parse_all(parser: ReplyParser, data: bytes, cuts: list[int]) -> list[Reply] | None:
    got = []
    try:
        for piece in chunked(data, cuts):
            parser.feed(piece)
            while (reply := parser.next_reply()) is not None:
                got.append(reply)
    except RemoteProtocolError:
        return None
    return got


# Whole replies as servers send them, with and without enhanced status codes.
REPLIES = st.lists(
    st.sampled_from(
        [
            b"250 2.1.0 Ok\r\n",
            b"250 2.1.5 Ok\n",
            b"250 Ok\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
            b"550 5.1.1 <b@example.com>: Recipient address rejected\r\n",
            b"250-2.0.0 first\r\n250 2.0.0 second\r\n",
            b"451 4.3.0 try later\r\n",
            b"250 2.0.0\r\n",
        ]
    ),
    max_size=12,
).map(b"".join)


@FAST
@given(
    data=st.one_of(REPLIES, SERVER_BYTES),
    rounds=st.lists(st.tuples(st.booleans(), CUTS), min_size=2, max_size=5),
)
def test_a_warm_parser_parses_like_a_fresh_one(
    data: bytes, rounds: list[tuple[bool, list[int]]]
) -> None:
    """Remembered one-line replies never change what a parser returns: one long-lived
    parser, fed the same bytes round after round (the enhanced-codes switch flipping
    between rounds), gives exactly what a fresh parser gives each time."""
    warm = ReplyParser()
    for enhanced, cuts in rounds:
        fresh = ReplyParser()
        fresh.enhanced_status_codes = enhanced
        expected = _parse_all(fresh, data, cuts)
        if expected is None or fresh.in_reply:
            return  # an error or an unfinished reply: the next round is not comparable
        warm.enhanced_status_codes = enhanced
        assert warm.enhanced_status_codes is enhanced
        assert _parse_all(warm, data, cuts) == expected


@FAST
@given(session=SESSIONS, data=SERVER_BYTES, cuts=CUTS, eof=st.booleans())
def test_connection_gives_events_or_remote_error_only(
    session: type[ClientConnection], data: bytes, cuts: list[int], eof: bool
) -> None:
    conn = session()
    try:
        for piece in [*chunked(data, cuts), *([b""] if eof else [])]:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, Sentinel):  # CONNECTION_CLOSED
                    assert conn.next_event() is event
                    return
                assert isinstance(event, Reply)
                if event.code == 334 and conn.state is State.AUTH_CHALLENGE:
                    conn.auth_challenge(event)
    except RemoteProtocolError:
        assert conn.state.name == "ERROR"


# -- (2) render / parse round trip ---------------------------------------------------------

TEXT_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029")
LINES = st.lists(st.text(TEXT_CHARS, max_size=30), min_size=1, max_size=6).map(tuple)
CODES = st.builds(
    lambda a, b, c: 100 * a + 10 * b + c,
    st.integers(2, 5),
    st.integers(0, 5),
    st.integers(0, 9),
)


def render_reply(code: int, lines: tuple[str, ...], enhanced: EnhancedStatus | None) -> bytes:
    prefix = f"{enhanced} " if enhanced else ""
    out = b""
    for i, text in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out += f"{code}{sep}{prefix}{text}\r\n".encode()
    return out


@FAST
@given(
    code=CODES,
    lines=LINES,
    subject=st.integers(0, 999),
    detail=st.integers(0, 999),
    with_enhanced=st.booleans(),
    cuts=CUTS,
)
def test_rendered_reply_parses_back_equal(
    code: int,
    lines: tuple[str, ...],
    subject: int,
    detail: int,
    with_enhanced: bool,
    cuts: list[int],
) -> None:
    enhanced = None
    if with_enhanced and code // 100 != 3:
        enhanced = EnhancedStatus(code // 100, subject, detail)
    data = render_reply(code, lines, enhanced)
    parser = ReplyParser(max_line=10_000)
    parser.enhanced_status_codes = enhanced is not None
    replies = []
    for piece in chunked(data, cuts):
        parser.feed(piece)
        while (got := parser.next_reply()) is not None:
            replies.append(got)
    assert replies == [Reply(code, lines, enhanced)]
    assert parser.buffered == 0


@FAST
@given(
    code=CODES.filter(lambda code: code // 100 != 3),
    lines=LINES,
    subject=st.integers(0, 999),
    detail=st.integers(0, 999),
    widths=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    cuts=CUTS,
)
def test_enhanced_code_with_leading_zeros_parses_to_the_same_status(
    code: int,
    lines: tuple[str, ...],
    subject: int,
    detail: int,
    widths: tuple[int, int],
    cuts: list[int],
) -> None:
    """RFC 3463 2 subject and detail are 1*3digit: "5.07.001" is 5.7.1, leading zeros off."""
    written = f"{code // 100}.{subject:0{widths[0]}d}.{detail:0{widths[1]}d}"
    status = EnhancedStatus(code // 100, subject, detail)
    assert EnhancedStatus.parse(written) == status
    data = b"".join(
        f"{code}{'-' if i < len(lines) - 1 else ' '}{written} {text}\r\n".encode()
        for i, text in enumerate(lines)
    )
    parser = ReplyParser(max_line=10_000)
    parser.enhanced_status_codes = True
    assert _parse_all(parser, data, cuts) == [Reply(code, lines, status)]


DIGITS = st.text("0123456789", max_size=4)
# Mostly almost a code: "class.digits.digits" and a tail.
NEAR_CODES = st.tuples(
    st.sampled_from(["2", "3", "4", "5", "6", "x", ""]),
    DIGITS,
    DIGITS,
    st.sampled_from(["", " ", " text", "x", ".1", "\n"]),
).map(lambda t: f"{t[0]}.{t[1]}.{t[2]}{t[3]}")


@FAST
@given(text=st.one_of(NEAR_CODES, ANY_TEXT))
def test_enhanced_status_parse_gives_a_status_or_value_error(text: str) -> None:
    try:
        status = EnhancedStatus.parse(text)
    except ValueError:
        return
    assert status.klass in (2, 4, 5)
    assert 0 <= status.subject <= 999
    assert 0 <= status.detail <= 999
    assert EnhancedStatus.parse(str(status)) == status  # the canonical form reads back


# -- (3) xtext -----------------------------------------------------------------------------


@FAST
@given(text=st.text(st.characters(blacklist_categories=("Cs",))))
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all(33 <= ord(ch) <= 126 and ch != "=" for ch in encoded)
    assert xtext_decode(encoded) == text


XTEXT_PIECES = st.sampled_from(["+", "+2B", "+2b", "+3D", "+C3+A9", "+FF", "+G", "=", " ", "a"])


@FAST
@given(
    text=st.one_of(
        st.lists(st.one_of(XTEXT_PIECES, st.characters()), max_size=12).map("".join),
        ANY_TEXT,
    )
)
def test_xtext_decode_gives_text_or_value_error(text: str) -> None:
    try:
        decoded = xtext_decode(text)
    except ValueError:
        assert not is_xtext(text)
        return
    assert is_xtext(text)
    raw = decoded.encode("utf-8", "surrogateescape")  # the octets the xtext spelled
    assert len(raw) == len(text) - 2 * text.count("+")


def is_xtext(text: str) -> bool:
    """RFC 3461 4: xtext = *( xchar / hexchar ); xchar is "!".."~" but "+" and "=";
    hexchar is "+" and two upper-case hex digits."""
    i = 0
    while i < len(text):
        if text[i] == "+":
            if not (len(text[i + 1 : i + 3]) == 2 and set(text[i + 1 : i + 3]) <= set(HEX)):
                return False
            i += 3
        elif "!" <= text[i] <= "~" and text[i] != "=":
            i += 1
        else:
            return False
    return True


HEX = "0123456789ABCDEF"


# -- (4) DATA encoding ---------------------------------------------------------------------

BODIES = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"bc"]), max_size=60).map(
        b"".join
    ),
)


# Bodies with one kind of line end each: the line check has a fast path for each.
ONE_KIND = st.sampled_from([b"\n", b"\r\n"]).flatmap(
    lambda end: st.lists(st.sampled_from([end, b"a", b"bc", b"defg"]), max_size=40).map(b"".join)
)


@FAST
@given(body=st.one_of(BODIES, ONE_KIND), cuts=CUTS, max_line=st.integers(1, 12))
@example(body=b"bc\ndefgdefgdefg\n", cuts=[], max_line=11)  # one octet over, bare LF
@example(body=b"bc\r\ndefgdefgdefg\r\n", cuts=[], max_line=11)  # the same with CRLF
def test_line_limit_agrees_with_the_lines_on_the_wire(
    body: bytes, cuts: list[int], max_line: int
) -> None:
    """A line is too long exactly when it is too long once CR and LF become CRLF; and a
    body said to have only CRLF line ends needs no normalising."""
    limit = LineLimit(max_line)
    found = 0
    for piece in chunked(body, cuts):
        found = limit.feed(piece)
        if found:
            break
    wire = normalize_newlines(body)
    assert bool(found) == any(len(line) > max_line for line in wire.split(b"\r\n"))
    if not found and limit.crlf_only:
        assert wire == body


def unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b".\r\n")
    content = wire[:-3]
    lines = content.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@FAST
@given(body=BODIES, cuts=CUTS, max_line=st.one_of(st.none(), st.integers(1, 12)))
def test_data_encoding_is_independent_of_chunking_and_reversible(
    body: bytes, cuts: list[int], max_line: int | None
) -> None:
    normalized = normalize_newlines(body)
    too_long = max_line is not None and any(
        len(line) > max_line for line in normalized.split(b"\r\n")
    )
    encoder = DataEncoder(max_line=max_line)
    try:
        wire = b"".join(encoder.feed(piece) for piece in chunked(body, cuts)) + encoder.end()
    except LocalProtocolError:
        assert too_long
        return
    assert not too_long
    assert wire == encode_data(body, max_line=max_line)
    assert b"\r" not in wire.replace(b"\r\n", b"")
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert b"\r\n.\r\n" not in wire[:-3]
    expected = normalized
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuff(wire) == expected


# -- (5) Extensions.parse ------------------------------------------------------------------


@FAST
@given(lines=st.lists(st.text(max_size=40), max_size=10))
def test_extensions_parse_never_raises(lines: list[str]) -> None:
    ext = Extensions.parse(lines)
    assert all(key == key.upper() for key in ext.keywords)
    assert (ext.size is None) == ("SIZE" not in ext.keywords)
    assert all(m == m.upper() for m in ext.auth)
    if ext.auth:
        assert "AUTH" in ext


@FAST
@given(keywords=st.lists(st.text(TEXT_CHARS, min_size=1, max_size=20), max_size=6))
def test_extensions_from_a_real_ehlo_reply_never_break_the_connection(
    keywords: list[str],
) -> None:
    conn = greeted()
    conn.send(Ehlo("client.example"))
    lines = [k.replace("\r", "").replace("\n", "") for k in keywords]
    try:
        got = reply(conn, ehlo_reply(*lines))
    except RemoteProtocolError:
        return
    assert conn.extensions == Extensions.parse(got.lines)


# -- (6) address, domain and parameter checks ---------------------------------------------

GRAMMAR_PIECES = ["user", "@", ".", "example.com", '"', "\\", " ", "[", "]", "IPv6:", "::1", "-"]
ODD_PIECES = ["127.0.0.1", "x-tag:", "\u00fc", "\u7528", "\r\n", "\x85", "\u2028", "\ud800"]
ADDRESS_PIECES = st.sampled_from([*GRAMMAR_PIECES, *ODD_PIECES, "l" * 64, "d" * 63])
LOCALS = st.sampled_from(["l" * 64, "l" * 65, "\u00fc" * 32, "\u00fc" * 33, '"q l"', "a..b", "a"])
LABELS = st.sampled_from(
    ["d" * 200, "d" * 63, "com", "\u00fc" * 10, "-a", "a-", "xn--bcher-kva", ""]
)
# Mostly almost an address: a local part, "@", labels; often across the octet limits.
NEAR_ADDRESSES = st.tuples(
    st.one_of(LOCALS, st.text('l."\\ +\u00fc', max_size=70)),
    st.lists(LABELS, min_size=1, max_size=4).map(".".join),
).map("@".join)
ADDRESSES = st.one_of(
    NEAR_ADDRESSES,
    st.lists(st.one_of(ADDRESS_PIECES, ANY_TEXT.map(lambda t: t[:3])), max_size=10).map("".join),
    ANY_TEXT,
)


@FAST
@given(address=ADDRESSES)
def test_validate_address_accepts_or_raises_local_error(address: str) -> None:
    outcomes = []
    for _ in range(2):  # the second time the cache may answer: it must answer the same
        try:
            validate_address(address)
            outcomes.append(True)
        except LocalProtocolError:
            outcomes.append(False)
    assert outcomes[0] == outcomes[1]
    if outcomes[0]:
        local = address.rpartition("@")[0]
        assert len(local.encode("utf-8")) <= 64
        assert len(address.encode("utf-8")) + 2 <= 256
        wire = Rcpt(address).render()
        assert wire.endswith(b"\r\n")
        assert not any(ch in wire[:-2] for ch in b"\r\n\x00")


@FAST
@given(domain=st.one_of(st.lists(LABELS, min_size=1, max_size=4).map(".".join), ADDRESSES))
def test_validate_domain_accepts_or_raises_local_error(domain: str) -> None:
    try:
        validate_domain(domain)
    except LocalProtocolError:
        return
    assert domain
    assert not any(ch in domain for ch in "\r\n\x00 @\x85\u2028\u2029")
    assert len(domain.encode("utf-8")) <= 255 or domain.startswith("[")  # no lone surrogate


@FAST
@given(text=st.one_of(ANY_TEXT, ADDRESSES))
def test_parameter_checks_give_a_bool_and_nothing_else(text: str) -> None:
    if is_esmtp_value(text):
        assert text
        assert not any(ch in text for ch in "= \r\n\x00\u2028")
    if ESMTP_KEYWORD.fullmatch(text):
        assert text.isascii()
        assert text[0] != "-"


# -- injection: whatever the arguments, a command is one line ------------------------------


@FAST
@given(
    sender=ANY_TEXT,
    recipient=ANY_TEXT,
    domain=ANY_TEXT,
    key=ANY_TEXT,
    value=st.one_of(st.none(), ANY_TEXT),
    envid=st.one_of(st.none(), ANY_TEXT),
)
def test_built_commands_are_exactly_one_line(
    sender: str, recipient: str, domain: str, key: str, value: str | None, envid: str | None
) -> None:
    builders = [
        lambda: Mail(sender, smtputf8=True, envid=envid, params={key: value}),
        lambda: Rcpt(recipient, orcpt=envid, params={key: value}),
        lambda: Ehlo(domain),
    ]
    for build in builders:
        try:
            wire = build().render()
        except LocalProtocolError:
            continue
        assert wire.endswith(b"\r\n")
        assert not any(ch in wire[:-2] for ch in b"\r\n\x00")
        assert len(wire) <= 512 + 500
