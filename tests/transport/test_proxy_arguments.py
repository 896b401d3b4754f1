"""``proxy=`` is checked before any I/O, and its password never shows anywhere."""

from __future__ import annotations

import sys

import pytest

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit._handshake import Settings
from smtpsubmit.transport import ProxyURL

SECRET = "pr0xy-s3cret"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://proxy.example:3128", "has https://; use one of socks5://"),
        ("proxy.example:1080", "use one of"),
        ("socks5://proxy.example", r"needs the proxy's port, e.g. socks5://proxy.example:PORT"),
        ("http://proxy.example:0", "needs the proxy's port"),
        ("socks5://proxy.example:99999", "not a number from 1 to 65535"),
        ("socks5://proxy.example:port", "not a number from 1 to 65535"),
        ("socks5://:1080", "names no proxy host"),
        ("http://proxy.example:3128/path", "with nothing after"),
        ("http://proxy.example:3128?x=1", "with nothing after"),
        (f"socks5://:{SECRET}@proxy.example:1080", "password without a user name"),
        ("socks5://alice@proxy.example:1080", "user name without a password"),
        (f"socks4://alice:{SECRET}@proxy.example:1080", "SOCKS4 has only a user id"),
        (f"socks5://al%C3%AFce:{SECRET}@proxy.example:1080", "RFC 1929"),
        (f"http://a%3Ab:{SECRET}@proxy.example:3128", "HTTP Basic cannot carry"),
        ("socks5://pro%0axy.example:1080", "not a host name or address"),
        ("socks5://☃.example:1080", "IDNA 2008"),
        (f"socks5://alice:{SECRET}@[::1:1080", "is not a URL"),
    ],
)
def test_a_bad_proxy_url_is_refused_before_any_io_without_showing_it(
    url: str, words: str, no_connection: object
) -> None:
    with pytest.raises(smtpsubmit.ArgumentError, match=words) as raised:
        smtpsubmit.SMTPClient("smtp.example.com", 465, proxy=url)
    assert raised.value.arguments == ("proxy",)
    assert SECRET not in str(raised.value)
    with pytest.raises(smtpsubmit.ArgumentError, match=words):
        smtpsubmit.SMTPPool("smtp.example.com", 465, proxy=url)
    with pytest.raises(smtpsubmit.ArgumentError, match=words):
        smtpsubmit.sync.SMTPClient("smtp.example.com", 465, proxy=url)


def test_a_proxy_that_is_not_a_string_is_a_type_error(no_connection: object) -> None:
    with pytest.raises(smtpsubmit.ArgumentError, match="proxy URL") as raised:
        smtpsubmit.SMTPClient("smtp.example.com", 465, proxy=1080)  # type: ignore[arg-type]
    assert isinstance(raised.value, TypeError)


@pytest.mark.parametrize("other", ["transport", "unix_socket"])
def test_a_proxy_with_another_way_to_connect_is_refused(other: str, no_connection: object) -> None:
    async def factory() -> object:
        raise AssertionError("never called")

    value = factory if other == "transport" else "/run/smtp.sock"
    with pytest.raises(smtpsubmit.ArgumentError, match="give one way to connect") as raised:
        smtpsubmit.SMTPClient(
            "smtp.example.com",
            465,
            proxy="http://proxy.example:3128",
            **{other: value},  # type: ignore[arg-type]
        )
    assert raised.value.arguments == ("proxy", other)


def test_socks_without_the_extra_names_the_extra_before_any_io(
    monkeypatch: pytest.MonkeyPatch, no_connection: object
) -> None:
    for name in list(sys.modules):
        if name == "python_socks" or name.startswith("python_socks."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "python_socks", None)  # import fails as if absent
    with pytest.raises(smtpsubmit.ArgumentError, match=r"pip install 'smtpsubmit\[socks\]'"):
        smtpsubmit.SMTPClient("smtp.example.com", 465, proxy="socks5h://proxy.example:1080")
    # HTTP CONNECT needs nothing extra.
    smtpsubmit.SMTPClient("smtp.example.com", 465, proxy="http://proxy.example:3128")


def test_the_password_is_masked_in_reprs_and_kept_for_the_handshake() -> None:
    url = f"socks5h://alice:{SECRET}@Proxy.Example:1080"
    proxy = ProxyURL.parse(url)
    assert str(proxy) == "socks5h://alice:********@proxy.example:1080"
    assert repr(proxy) == "ProxyURL('socks5h://alice:********@proxy.example:1080')"
    assert proxy.password == SECRET
    settings = Settings.from_options("smtp.example.com", 465, proxy=url)
    assert SECRET not in repr(settings)
    assert settings.proxy == proxy
    client = smtpsubmit.SMTPClient("smtp.example.com", 465, proxy=url)
    assert SECRET not in repr(client)


def test_a_percent_encoded_password_is_decoded_and_a_non_ascii_proxy_host_encoded() -> None:
    settings = Settings.from_options(
        "smtp.example.com", 465, proxy="http://bob:p%40ss%3Aw0rd@proxy.straße.example:3128"
    )
    assert settings.proxy is not None
    assert settings.proxy.password == "p@ss:w0rd"
    assert settings.proxy.host == "proxy.xn--strae-oqa.example"
    assert str(settings.proxy) == "http://bob:********@proxy.xn--strae-oqa.example:3128"


def test_an_ipv6_proxy_is_shown_in_brackets() -> None:
    assert str(ProxyURL.parse("http://[::1]:3128")) == "http://[::1]:3128"


def test_proxy_failures_are_connect_errors_and_only_some_are_retried() -> None:
    policy = smtpsubmit.RetryPolicy()
    made = {
        kind: kind("x", proxy="http://proxy.example:3128", code=None)
        for kind in (
            smtpsubmit.ProxyError,
            smtpsubmit.ProxyConnectError,
            smtpsubmit.ProxyAuthenticationError,
            smtpsubmit.ProxyRefusedError,
            smtpsubmit.ProxyTargetError,
        )
    }
    assert all(isinstance(error, smtpsubmit.ConnectError) for error in made.values())
    retried = {kind.__name__ for kind, error in made.items() if policy.retryable(error)}
    assert retried == {"ProxyConnectError", "ProxyTargetError"}
