"""Web images fetched before dispatch: the address check, and fetches from a local server
reached under made-up names (a fake resolver), with a policy widened to 127.0.0.1 alone."""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from child import certificates
from coordinator.protocol.errors import InvalidRequest
from coordinator.serving.image_urls import ImageFetcher, IPAddress, non_public

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PARAM = "messages[0].content[1].image_url.url"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata address
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not public"),  # shared address space (carrier NAT)
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 inside IPv6 is judged as the IPv4 host
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::ffff:8.8.8.8", None),
    ],
)
def test_only_public_unicast_addresses_pass(address: str, reason: str | None) -> None:
    assert non_public(ipaddress.ip_address(address)) == reason


class Server:
    """A local image server that records the Host header of every request."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.hosts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hosts.append(self.headers["Host"])
                port = outer.port
                routes: dict[str, tuple[int, dict[str, str], bytes]] = {
                    "/a.png": (200, {"Content-Type": "image/png"}, PNG),
                    "/page.html": (200, {"Content-Type": "text/html"}, b"<html></html>"),
                    "/big.png": (200, {"Content-Type": "image/png"}, PNG * 10),
                    "/to-evil": (302, {"Location": f"http://evil.test:{port}/a.png"}, b""),
                    "/to-good": (302, {"Location": "/a.png"}, b""),
                }
                status, headers, body = routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


class Resolver:
    """good.test is 127.0.0.1, evil.test 127.0.0.2, split.test both; counts lookups."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        names = {
            "good.test": ["127.0.0.1"],
            "evil.test": ["127.0.0.2"],
            "split.test": ["127.0.0.1", "127.0.0.2"],
        }
        if host not in names:
            raise OSError("no such host")
        return names[host]


def only_127_0_0_1(address: IPAddress) -> str | None:
    return None if str(address) == "127.0.0.1" else non_public(address)


def fetcher(resolver: Resolver | None = None, max_bytes: int = 1 << 20) -> ImageFetcher:
    return ImageFetcher(
        max_bytes=max_bytes, timeout=5, resolver=resolver or Resolver(), allowed=only_127_0_0_1
    )


def body(url: str) -> bytes:
    content = [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": url}}]
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode()


async def refusal(fetch: ImageFetcher, url: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        await fetch.inline(body(url))
    assert (refused.value.param, refused.value.code) == (PARAM, "invalid_image_url")
    return refused.value


async def test_a_body_without_web_images_is_left_as_it_came() -> None:
    raw = body("data:image/png;base64,AAAA")
    assert await ImageFetcher(max_bytes=10, timeout=1).inline(raw) is raw
    assert await ImageFetcher(max_bytes=10, timeout=1).inline(b"not json http") == b"not json http"


async def test_a_fetched_image_becomes_a_data_url_fetched_from_the_checked_address(server: Server) -> None:
    resolver = Resolver()
    inlined = json.loads(await fetcher(resolver).inline(body(f"http://good.test:{server.port}/a.png")))
    url = inlined["messages"][0]["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    # One lookup, the connection to its address, the name kept in Host.
    assert resolver.lookups == ["good.test"]
    assert server.hosts == [f"good.test:{server.port}"]


async def test_redirects_are_followed_and_checked_at_every_hop(server: Server) -> None:
    inlined = await fetcher().inline(body(f"http://good.test:{server.port}/to-good"))
    assert base64.b64encode(PNG).decode() in inlined.decode()
    refused = await refusal(fetcher(), f"http://good.test:{server.port}/to-evil")
    assert "evil.test is a loopback address" in refused.message
    assert server.hosts == [f"good.test:{server.port}"] * 3  # evil.test was never connected to


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.2:{port}/a.png", "127.0.0.2 is a loopback address"),
        ("http://[::1]:{port}/a.png", "::1 is a loopback address"),
        ("http://split.test:{port}/a.png", "split.test is a loopback address"),  # every address checked
        ("http://169.254.169.254/latest/meta-data", "is a link-local address"),
        ("http://nowhere.test/a.png", "nowhere.test does not resolve"),
        ("http://good.test:{port}/page.html", "it is text/html, not an image"),
        ("http://good.test:{port}/missing.png", "the server answered 404"),
        ("http://user:secret@good.test:{port}/a.png", "a URL with credentials"),
    ],
)
async def test_what_is_not_fetched_is_refused_naming_the_part(server: Server, url: str, said: str) -> None:
    refused = await refusal(fetcher(), url.format(port=server.port))
    assert said in refused.message


async def test_an_image_over_the_limit_is_refused(server: Server) -> None:
    refused = await refusal(fetcher(max_bytes=len(PNG) * 2), f"http://good.test:{server.port}/big.png")
    assert f"over {len(PNG) * 2} bytes" in refused.message


async def test_the_default_policy_refuses_loopback_by_name_too() -> None:
    fetch = ImageFetcher(max_bytes=1 << 20, timeout=5)
    refused = await refusal(fetch, "http://localhost:9/a.png")
    assert "localhost is a loopback address" in refused.message
    # A name the resolver cannot even encode is a refusal, not a crash.
    refused = await refusal(fetch, f"http://{'a' * 70}.example/a.png")
    assert "does not resolve" in refused.message


async def test_all_of_a_requests_images_share_the_body_cap(server: Server) -> None:
    url = f"http://good.test:{server.port}/a.png"
    content = [{"type": "image_url", "image_url": {"url": url}}] * 2
    raw = json.dumps({"messages": [{"role": "user", "content": content}]}).encode()
    with pytest.raises(InvalidRequest, match="over 384 bytes in all"):
        await fetcher(max_bytes=len(PNG) + 120).inline(raw)


def tls_server(tmp_path: Path, name: str) -> tuple[Server, ssl.SSLContext]:
    """An HTTPS image server whose certificate names `name`, and a context trusting its CA."""
    ca_key, ca = certificates.new_ca("test CA", 1)
    key, certificate = certificates.issue(ca_key, ca, [name], 1)
    (tmp_path / "cert.pem").write_bytes(certificates.pem_certificate(certificate))
    (tmp_path / "key.pem").write_bytes(certificates.pem_key(key))
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cadata=certificates.pem_certificate(ca).decode())
    return Server(served), trusting


@pytest.mark.parametrize(("certified", "fetched"), [("good.test", True), ("other.test", False)])
async def test_over_tls_the_name_is_checked_on_the_checked_address(
    tmp_path: Path, certified: str, fetched: bool
) -> None:
    server, trusting = tls_server(tmp_path, certified)
    try:
        fetch = ImageFetcher(
            max_bytes=1 << 20, timeout=5, resolver=Resolver(), allowed=only_127_0_0_1, verify=trusting
        )
        url = f"https://good.test:{server.port}/a.png"
        if fetched:
            assert base64.b64encode(PNG).decode() in (await fetch.inline(body(url))).decode()
            assert server.hosts == [f"good.test:{server.port}"]
        else:
            refused = await refusal(fetch, url)
            assert "ConnectError" in refused.message
    finally:
        server.close()
