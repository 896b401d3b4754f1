"""Every bad argument, through every library entry point, is refused before any I/O.

One table of bad keywords; each row runs through ``SMTPClient``, ``send()``, ``SMTPPool``
and the blocking ``sync.SMTPClient``, ``sync.send`` and ``sync.SMTPPool``. Each must raise
the row's error class, name the row's arguments (in the library's keywords) and connect
nowhere (the ``no_connection`` guard of tests/conftest.py). The CLI's and Django's spelling
of the same errors is tested with them (tests/cli, tests/contrib).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from client_helpers import make_message

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit import ArgumentError, PasswordAuth, Timeouts, TLSPolicyError
from smtpsubmit._errors import ArgumentTypeError

SECRET = "s3cret-Pa55"  # must never appear in a message
TLS_VALUES = ("'implicit'", "'starttls'", "'insecure-cleartext'")


@dataclass(frozen=True)
class Bad:
    """A call's keywords (over a valid base) and what its refusal must say."""

    options: dict[str, Any]
    error: type[ArgumentError]
    arguments: tuple[str, ...]
    says: tuple[str, ...] = ()
    base: dict[str, Any] = field(default_factory=lambda: {"tls": "starttls"})


async def _async_transport() -> Any:  # pragma: no cover - never called
    raise AssertionError("the transport factory was called")


CLIENT_CASES = {
    "port-too-big": Bad({"port": 70000}, ArgumentError, ("port",), ("1 to 65535", "70000")),
    "port-negative": Bad({"port": -1}, ArgumentError, ("port",), ("-1",)),
    "port-zero": Bad({"port": 0}, ArgumentError, ("port",), ("from 1 to 65535",)),
    "port-bool": Bad({"port": True}, ArgumentTypeError, ("port",), ("an int",)),
    "port-str": Bad({"port": "587"}, ArgumentTypeError, ("port",), ("'587'",)),
    "tls-true": Bad({"tls": True}, ArgumentTypeError, ("tls",), TLS_VALUES),
    "tls-false": Bad({"tls": False}, ArgumentTypeError, ("tls",), TLS_VALUES),
    "tls-one": Bad({"tls": 1}, ArgumentTypeError, ("tls",), TLS_VALUES),
    "tls-unknown": Bad({"tls": "tls"}, TLSPolicyError, ("tls",), ("unknown TLS mode",)),
    "tls-missing": Bad({}, TLSPolicyError, ("port", "tls"), ("no standard TLS mode",), base={}),
    "tls-contradicts-587": Bad(
        {"port": 587, "tls": "implicit"}, TLSPolicyError, ("port", "tls"), ("port 587",)
    ),
    "tls-contradicts-465": Bad(
        {"port": 465, "tls": "starttls"}, TLSPolicyError, ("port", "tls"), ("port 465",)
    ),
    "password-without-username": Bad(
        {"password": SECRET}, ArgumentError, ("password", "username"), ("without",)
    ),
    "password-with-empty-username": Bad(
        {"username": "", "password": SECRET}, ArgumentError, ("password", "username")
    ),
    "username-without-password": Bad(
        {"username": "me"}, ArgumentError, ("username", "password"), ("without",)
    ),
    "username-with-empty-password": Bad(
        {"username": "me", "password": ""}, ArgumentError, ("username", "password")
    ),
    "auth-and-username": Bad(
        {"auth": PasswordAuth("me", SECRET), "username": "me", "password": SECRET},
        ArgumentError,
        ("auth", "username", "password"),
        ("not both",),
    ),
    "auth-not-an-authenticator": Bad({"auth": SECRET}, ArgumentTypeError, ("auth",)),
    "password-not-str": Bad(
        {"username": "me", "password": SECRET.encode()}, ArgumentTypeError, ("password",)
    ),
    "timeout-negative": Bad({"timeout": -1}, ArgumentError, ("timeout",), ("positive",)),
    "timeout-zero": Bad({"timeout": 0}, ArgumentError, ("timeout",), ("positive",)),
    "timeout-nan": Bad({"timeout": math.nan}, ArgumentError, ("timeout",), ("nan",)),
    "timeout-str": Bad({"timeout": "5"}, ArgumentTypeError, ("timeout",)),
    "timeout-bool": Bad({"timeout": True}, ArgumentTypeError, ("timeout",)),
    "local-hostname-space": Bad(
        {"local_hostname": "my host"}, ArgumentError, ("local_hostname",), ("EHLO",)
    ),
    "local-hostname-underscore": Bad(
        {"local_hostname": "a_b.example"}, ArgumentError, ("local_hostname",), ("EHLO",)
    ),
    "local-hostname-crlf": Bad(
        {"local_hostname": "a.example\r\nMAIL FROM:<x@y>"}, ArgumentError, ("local_hostname",)
    ),
    "local-hostname-empty": Bad({"local_hostname": ""}, ArgumentError, ("local_hostname",)),
    "local-hostname-bad-literal": Bad(
        {"local_hostname": "[300.1.1.1]"}, ArgumentError, ("local_hostname",)
    ),
    "local-hostname-not-str": Bad({"local_hostname": 5}, ArgumentTypeError, ("local_hostname",)),
    "server-hostname-empty": Bad({"server_hostname": ""}, ArgumentError, ("server_hostname",)),
    "server-hostname-space": Bad({"server_hostname": "a b"}, ArgumentError, ("server_hostname",)),
    "host-empty": Bad({"host": ""}, ArgumentError, ("host",), ("empty",)),
    "host-not-str": Bad({"host": 127}, ArgumentTypeError, ("host",)),
    "host-crlf": Bad({"host": "a\r\nb"}, ArgumentError, ("host",)),
    "allow-cleartext-auth-str": Bad(
        {"allow_cleartext_auth": "no"}, ArgumentTypeError, ("allow_cleartext_auth",)
    ),
    "allow-cleartext-auth-int": Bad(
        {"allow_cleartext_auth": 1}, ArgumentTypeError, ("allow_cleartext_auth",)
    ),
    "chunking-str": Bad({"chunking": "no"}, ArgumentTypeError, ("chunking",)),
    "ssl-context-path": Bad(
        {"ssl_context": "/etc/ssl/ca.pem"}, ArgumentTypeError, ("ssl_context",), ("SSLContext",)
    ),
    "transport-not-callable": Bad({"transport": "stream"}, ArgumentTypeError, ("transport",)),
    "transport-and-unix-socket": Bad(
        {"transport": _async_transport, "unix_socket": "/tmp/x.sock"},
        ArgumentError,
        ("transport", "unix_socket"),
    ),
    "unix-socket-empty": Bad({"unix_socket": ""}, ArgumentTypeError, ("unix_socket",)),
    "source-address-with-unix-socket": Bad(
        {"unix_socket": "/tmp/x.sock", "source_address": "127.0.0.1"},
        ArgumentError,
        ("source_address", "unix_socket"),
    ),
}

POOL_CASES = {
    "max-connections-zero": Bad({"max_connections": 0}, ArgumentError, ("max_connections",)),
    "max-connections-bool": Bad({"max_connections": True}, ArgumentTypeError, ("max_connections",)),
    "window-zero": Bad({"window": 0}, ArgumentError, ("window",), ("at least 1",)),
    "window-str": Bad({"window": "16"}, ArgumentTypeError, ("window",)),
    "max-messages-zero": Bad(
        {"max_messages_per_connection": 0}, ArgumentError, ("max_messages_per_connection",)
    ),
    "max-age-negative": Bad({"max_connection_age": -1.0}, ArgumentError, ("max_connection_age",)),
    "idle-timeout-nan": Bad({"idle_timeout": math.nan}, ArgumentError, ("idle_timeout",)),
    "health-check-str": Bad(
        {"health_check_after": "5"}, ArgumentTypeError, ("health_check_after",)
    ),
}


def _call(entry: str, bad: Bad, port: int) -> None:
    """Run ``entry`` with the row's keywords over a valid base (the guard's port)."""
    options = {**bad.base, **bad.options}
    host = options.pop("host", "127.0.0.1")
    port = options.pop("port", port)
    msg = make_message()
    if entry == "SMTPClient":
        smtpsubmit.SMTPClient(host, port, **options)
    elif entry == "send":

        async def run() -> None:
            await smtpsubmit.send(msg, host=host, port=port, **options)

        anyio.run(run)
    elif entry == "SMTPPool":
        smtpsubmit.SMTPPool(host, port, **options)
    elif entry == "sync.SMTPClient":
        smtpsubmit.sync.SMTPClient(host, port, **options)
    elif entry == "sync.send":
        smtpsubmit.sync.send(msg, host=host, port=port, **options)
    elif entry == "sync.SMTPPool":
        smtpsubmit.sync.SMTPPool(host, port, **options)
    else:  # pragma: no cover
        raise AssertionError(entry)


CLIENT_ENTRIES = ["SMTPClient", "send", "SMTPPool", "sync.SMTPClient", "sync.send", "sync.SMTPPool"]
POOL_ENTRIES = ["SMTPPool", "sync.SMTPPool"]


def _check(exc: ArgumentError, bad: Bad) -> None:
    assert type(exc) is bad.error or (bad.error is ArgumentError and type(exc) is ArgumentError)
    assert isinstance(exc, smtpsubmit.SMTPError)
    assert isinstance(exc, ValueError)
    assert exc.arguments[: len(bad.arguments)] == bad.arguments, exc.arguments
    assert exc.argument == bad.arguments[0]
    message = str(exc)
    assert "\n" not in message
    for argument in bad.arguments:
        assert argument in message, (argument, message)
    for needle in bad.says:
        assert needle in message, (needle, message)
    assert SECRET not in message


@pytest.mark.parametrize("entry", CLIENT_ENTRIES)
@pytest.mark.parametrize("bad", CLIENT_CASES.values(), ids=CLIENT_CASES.keys())
def test_bad_client_argument_is_refused_before_any_io(
    entry: str, bad: Bad, no_connection: Any
) -> None:
    with pytest.raises(ArgumentError) as info:
        _call(entry, bad, no_connection.port)
    _check(info.value, bad)


@pytest.mark.parametrize("entry", POOL_ENTRIES)
@pytest.mark.parametrize("bad", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_bad_pool_argument_is_refused_before_any_io(
    entry: str, bad: Bad, no_connection: Any
) -> None:
    with pytest.raises(ArgumentError) as info:
        _call(entry, bad, no_connection.port)
    _check(info.value, bad)


def test_wrong_types_are_type_errors_too() -> None:
    with pytest.raises(TypeError, match="tls must be a TLSMode"):
        smtpsubmit.SMTPClient("mail.example", 2525, tls=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port must be an int"):
        smtpsubmit.SMTPClient("mail.example", "587", tls="starttls")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field_", "value"), [("connect", -1), ("total", 0), ("data", math.nan), ("tls", "5")]
)
def test_a_timeouts_checks_its_limits_when_built(field_: str, value: object) -> None:
    with pytest.raises(ArgumentError, match=f"{field_}=") as info:
        Timeouts(**{field_: value})  # type: ignore[arg-type]
    assert info.value.arguments == ("timeout",)
    with pytest.raises(ArgumentError):
        Timeouts.uniform(-5)


@pytest.mark.parametrize(
    "options",
    [
        {"port": 587},
        {"port": 465},
        {"port": 2525, "tls": "insecure-cleartext", "timeout": 0.5},
        {"port": 25, "tls": smtpsubmit.TLSMode.STARTTLS, "timeout": smtpsubmit.Timeouts()},
        {"port": 587, "username": "", "password": ""},  # empty credentials: no AUTH
        {"port": 587, "username": "me", "password": SECRET, "local_hostname": "[10.0.0.1]"},
        {"port": 587, "auth": PasswordAuth("me", SECRET), "server_hostname": "mx.example"},
        {"port": 587, "local_hostname": "[IPv6:::1]", "source_address": "127.0.0.1"},
        {"port": 0, "tls": "starttls", "unix_socket": "/tmp/smtp.sock"},  # no TCP port
        {"port": 587, "ssl_context": ssl.create_default_context(), "chunking": False},
    ],
)
def test_valid_arguments_pass(options: dict[str, Any]) -> None:
    port = options.pop("port")
    smtpsubmit.SMTPClient("mail.example", port, **options)
    smtpsubmit.SMTPPool(
        "mail.example",
        port,
        max_messages_per_connection=None,
        max_connection_age=0,
        idle_timeout=None,
        health_check_after=0,
        **options,
    )


def test_the_error_can_be_respelled_in_a_front_ends_words() -> None:
    with pytest.raises(TLSPolicyError) as info:
        smtpsubmit.SMTPClient("mail.example", 587, tls="implicit")
    spell: Callable[[str, str | None], str | None] = lambda argument, value: (  # noqa: E731
        f"--{argument}" if value is None else f"--{argument} {value}"
    )
    again = info.value.spelled(spell)
    assert type(again) is TLSPolicyError
    assert again.arguments == info.value.arguments
    assert str(again).startswith("--port 587 is the STARTTLS submission port")
    assert "--tls starttls on 587" in str(again)
    assert "TLSMode" not in str(again)
    assert str(info.value).startswith("port 587 is the STARTTLS submission port")
