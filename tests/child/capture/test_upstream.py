"""The capture's way out through an account's proxy: HTTP CONNECT, HTTPS, SOCKS5, with credentials."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from child.capture.ca import CertificateAuthority
from child.capture.exchange import NetworkCapture
from child.capture.proxy import CaptureProxy, Target
from child.capture.upstream import UpstreamError, open_upstream
from coordinator.protocol.upstream_proxy import ProxyURL
from tests.support.upstream_proxies import RecordingProxy, recording_proxy

SECRET = "PROXY-PASS-456"


class Site:
    """A server that answers each line with the line upper-cased; HTTP-ish enough for httpx too."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Site:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if line.startswith((b"GET ", b"POST ")):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            else:
                writer.write(line.upper())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def cas(tmp_path: Path) -> tuple[CertificateAuthority, CertificateAuthority]:
    return (
        CertificateAuthority.load_or_create(tmp_path / "site-ca.pem"),
        CertificateAuthority.load_or_create(tmp_path / "capture-ca.pem"),
    )


def trusting(ca: CertificateAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.certificate_pem.decode())


@pytest.fixture
def http_proxy() -> Iterator[RecordingProxy]:
    with recording_proxy("http", "alice", SECRET) as proxy:
        yield proxy


@pytest.fixture
def socks5_proxy() -> Iterator[RecordingProxy]:
    with recording_proxy("socks5", "alice", SECRET) as proxy:
        yield proxy


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    found = await Site().start()
    yield found
    found.close()


async def echo(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], text: bytes = b"ping\n") -> bytes:
    reader, writer = streams
    writer.write(text)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return answer


async def test_direct_when_there_is_no_proxy(site: Site) -> None:
    assert await echo(await open_upstream("127.0.0.1", site.port, None)) == b"PING\n"


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_through_the_proxy_with_credentials(
    kind: str, site: Site, request: pytest.FixtureRequest
) -> None:
    proxy: RecordingProxy = request.getfixturevalue(f"{kind}_proxy")
    streams = await open_upstream("127.0.0.1", site.port, ProxyURL.parse(proxy.url()))
    assert await echo(streams) == b"PING\n"
    assert proxy.connects == [f"127.0.0.1:{site.port}"]
    assert proxy.sent() == b"ping\n"


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_wrong_credentials_are_refused_without_saying_them(
    kind: str, site: Site, request: pytest.FixtureRequest
) -> None:
    proxy: RecordingProxy = request.getfixturevalue(f"{kind}_proxy")
    wrong = ProxyURL.parse(proxy.url(password="WRONG-PASS-789"))
    with pytest.raises(UpstreamError) as caught:
        await open_upstream("127.0.0.1", site.port, wrong)
    assert "refused the credentials" in str(caught.value)
    assert f"{kind}://***@127.0.0.1:{proxy.port}" in str(caught.value)
    assert "WRONG-PASS-789" not in str(caught.value) and "alice" not in str(caught.value)
    assert proxy.connects == [] and proxy.record.refused == ["credentials"]


async def test_socks5_without_credentials_where_they_are_needed(
    socks5_proxy: RecordingProxy, site: Site
) -> None:
    with pytest.raises(UpstreamError, match="wants credentials"):
        await open_upstream("127.0.0.1", site.port, ProxyURL("socks5", "127.0.0.1", socks5_proxy.port))


async def test_a_name_goes_to_the_socks5_proxy_unresolved(socks5_proxy: RecordingProxy, site: Site) -> None:
    assert (
        await echo(await open_upstream("localhost", site.port, ProxyURL.parse(socks5_proxy.url())))
        == b"PING\n"
    )
    assert socks5_proxy.connects == [f"localhost:{site.port}"]


async def test_tls_to_the_site_through_an_https_proxy(
    cas: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    site_ca, proxy_ca = cas
    site = await Site(site_ca.server_context("localhost")).start()
    try:
        with recording_proxy("http", "alice", SECRET, tls=proxy_ca.server_context("127.0.0.1")) as proxy:
            assert proxy.url().startswith("https://")
            streams = await open_upstream(
                "localhost",
                site.port,
                ProxyURL.parse(proxy.url()),
                tls=trusting(site_ca),
                proxy_tls=trusting(proxy_ca),
            )
            assert await echo(streams) == b"PING\n"  # TLS to the site inside TLS to the proxy
            assert proxy.connects == [f"localhost:{site.port}"]
            assert b"PING" not in proxy.sent() and b"ping" not in proxy.sent()  # it saw ciphertext only
    finally:
        site.close()


async def test_a_dead_proxy_is_an_os_error_within_the_timeout(site: Site) -> None:
    with recording_proxy("http") as proxy:
        port = proxy.port
    with pytest.raises(OSError):
        await open_upstream("127.0.0.1", site.port, ProxyURL("http", "127.0.0.1", port), timeout=5)


async def test_the_capture_proxy_sends_every_kind_of_traffic_through_the_account_proxy(
    cas: tuple[CertificateAuthority, CertificateAuthority], socks5_proxy: RecordingProxy, site: Site
) -> None:
    site_ca, capture_ca = cas
    answers = await Site(site_ca.server_context("localhost")).start()
    capture = CaptureProxy(
        NetworkCapture(),
        capture_ca,
        Target.parse(f"localhost:{answers.port}", "/GenerateContent"),
        trusting(site_ca),
        password="pw",
        upstream_proxy=ProxyURL.parse(socks5_proxy.url()),
    )
    await capture.start(0)
    assert capture._server is not None
    capture_url = f"http://browser:pw@127.0.0.1:{capture._server.sockets[0].getsockname()[1]}"
    try:
        async with httpx.AsyncClient(proxy=capture_url, verify=trusting(capture_ca), timeout=5) as browser:
            # The answer's host (decrypted by the capture, then TLS again to the site) ...
            assert (await browser.get(f"https://localhost:{answers.port}/x")).text == "hello"
            # ... and plain HTTP.
            page = await browser.get(f"http://127.0.0.1:{site.port}/", headers={"Cookie": "sid=alice"})
            assert page.text == "hello"
        site_trust = trusting(site_ca)
        site_trust.check_hostname = False  # the site's certificate is for localhost
        async with httpx.AsyncClient(proxy=capture_url, verify=site_trust, timeout=5) as browser:
            # ... and any other host, tunnelled end to end.
            assert (await browser.get(f"https://127.0.0.1:{answers.port}/x")).text == "hello"
    finally:
        await capture.close()
        answers.close()
    assert socks5_proxy.connects == [
        f"localhost:{answers.port}",
        f"127.0.0.1:{site.port}",
        f"127.0.0.1:{answers.port}",
    ]
    assert b"Cookie: sid=alice" in socks5_proxy.sent()
