"""Password mechanisms without server authentication: PLAIN, LOGIN, CRAM-MD5.

PLAIN and LOGIN send the password itself, so they are only safe inside TLS; the client, not
these classes, enforces that (DESIGN 3: one place for each rule). CRAM-MD5 hides the
password from the wire but lets the server store it in clear and offers no server proof, so
`PasswordAuth` runs it only when a user names it.
"""

from __future__ import annotations

import hmac

from ._base import ClientFirstMechanism, Mechanism, SASLError, show_server_text


def _utf8(value: str, what: str, mechanism: str, forbidden: str = "\0") -> bytes:
    if any(ch in value for ch in forbidden):
        # Never echo the value: it may be the password.
        raise SASLError(f"{mechanism}: the {what} contains a character the mechanism cannot carry")
    return value.encode("utf-8")


class Plain(ClientFirstMechanism):
    """PLAIN (RFC 4616): one message ``[authzid] NUL authcid NUL passwd`` in UTF-8.

    The strings are sent as given; RFC 4616 2 leaves their preparation (SASLprep) to the
    server, which compares them against its own prepared copies.
    """

    name = "PLAIN"

    def __init__(self, username: str, password: str, *, authzid: str | None = None) -> None:
        # RFC 4616 2: NUL separates the fields, so no field may contain one; an empty
        # authcid or password is not a valid message.
        if not username or not password:
            raise SASLError("PLAIN: the user name and password must not be empty (RFC 4616 2)")
        self._message = b"\0".join(
            (
                _utf8(authzid or "", "authorization identity", self.name),
                _utf8(username, "user name", self.name),
                _utf8(password, "password", self.name),
            )
        )

    def _first_message(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        first = self._initial_for(challenge)
        if first is not None:
            return first
        raise SASLError(
            "PLAIN: unexpected challenge after the credentials (RFC 4616 2): "
            f"{show_server_text(challenge)}"
        )


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login; no RFC, but ubiquitous with RFC 4954 AUTH): the
    server prompts for the user name, then the password; each answer is sent as UTF-8.

    Prompts are answered by position, not by their text: servers word them differently
    ("Username:", "User Name", localised text), and the draft makes the text advisory.
    """

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        self._answers = (
            _utf8(username, "user name", self.name, "\0\r\n"),
            _utf8(password, "password", self.name, "\0\r\n"),
        )
        self._step = 0

    def initial_response(self) -> bytes | None:
        return None  # the server speaks first

    def respond(self, challenge: bytes) -> bytes:
        if self._step >= len(self._answers):
            raise SASLError(
                "LOGIN: unexpected third challenge after user name and password: "
                f"{show_server_text(challenge)}"
            )
        answer = self._answers[self._step]
        self._step += 1
        return answer


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): answer the server's challenge with
    ``user SP hex(HMAC-MD5(password, challenge))``.

    Legacy: the server must keep the password (or an equivalent) in clear, and nothing
    proves the server's identity. Use it only when nothing better is offered.
    """

    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        self._username = _utf8(username, "user name", self.name, "\0\r\n")
        self._password = _utf8(password, "password", self.name)
        self._answered = False

    def initial_response(self) -> bytes | None:
        return None  # the server speaks first

    def respond(self, challenge: bytes) -> bytes:
        if self._answered:
            raise SASLError(f"CRAM-MD5: unexpected second challenge: {show_server_text(challenge)}")
        if not challenge:
            raise SASLError("CRAM-MD5: the server sent an empty challenge (RFC 2195 2)")
        try:
            digest = hmac.new(self._password, challenge, "md5").hexdigest()
        except ValueError as exc:  # MD5 is disabled on FIPS-enforcing builds
            raise SASLError("CRAM-MD5: MD5 is not available in this Python build") from exc
        self._answered = True
        return self._username + b" " + digest.encode("ascii")
