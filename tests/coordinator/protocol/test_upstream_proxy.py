"""An account's proxy URL: parsed the same on both sides, its credentials in no message or repr."""

from __future__ import annotations

import pytest

from coordinator.protocol.upstream_proxy import ProxyURL, ProxyURLError

SECRET = "S3CRET-pass"


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port", "username", "password", "masked"),
    [
        ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, None, None, "http://127.0.0.1:8080"),
        (
            f"socks5://alice:{SECRET}@Proxy.Example.net:1080",
            "socks5",
            "proxy.example.net",
            1080,
            "alice",
            SECRET,
            "socks5://***@proxy.example.net:1080",
        ),
        ("HTTPS://u:p%40ss%3A@[::1]:3128/", "https", "::1", 3128, "u", "p@ss:", "https://***@[::1]:3128"),
        ("socks5h://10.0.0.1:9050", "socks5h", "10.0.0.1", 9050, None, None, "socks5h://10.0.0.1:9050"),
        ("http://user@host:1", "http", "host", 1, "user", None, "http://***@host:1"),
    ],
)
def test_parse(
    text: str, scheme: str, host: str, port: int, username: str | None, password: str | None, masked: str
) -> None:
    proxy = ProxyURL.parse(text)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username, proxy.password) == (
        scheme,
        host,
        port,
        username,
        password,
    )
    assert proxy.masked() == masked
    assert ProxyURL.parse(proxy.url()) == proxy  # what the child reads is what the coordinator meant
    if password:
        assert password not in repr(proxy) and password not in proxy.masked()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"ftp://u:{SECRET}@host:21", "must start with http://"),
        (f"http://u:{SECRET}@host", "needs a port"),
        (f"http://u:{SECRET}@host:99999", "is not a URL"),
        (f"http://u:{SECRET}@host:80/path", "must end after host:port"),
        (f"http://u:{SECRET}@host:80?x=1", "must end after host:port"),
        (f"http://:{SECRET}@host:80", "a password but no user name"),
        ("socks5://alice@host:1080", "need a user name and a password"),
        (f"http://u:{SECRET}@ho st:80", "spaces or control characters"),
        (f"http://u:{SECRET}@:80", "has no host"),
        (f"http://u:{SECRET}@bad!host:80", "neither a name nor an IP"),
        (f"http://{'u' * 256}:{SECRET}@host:80", "user name longer than 255 bytes"),
        ("", "must be a URL"),
    ],
)
def test_bad_urls_say_why_without_the_credentials(text: str, reason: str) -> None:
    with pytest.raises(ProxyURLError) as caught:
        ProxyURL.parse(text)
    assert reason in str(caught.value)
    assert SECRET not in str(caught.value)
