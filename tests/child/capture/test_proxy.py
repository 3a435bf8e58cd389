"""The capture proxy on real sockets: the answer's host decrypted and read, the rest untouched."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from child.capture.ca import CAError, CertificateAuthority
from child.capture.exchange import NetworkCapture
from child.capture.proxy import CaptureProxy, Target
from coordinator.protocol.link import AnswerError, AnswerEvent, Finish, FinishReason, TextDelta, Usage

PATH = "/$rpc/google.internal.alkali.applications.makersuite.v1.MakerSuiteService/GenerateContent"
FRAMES = [
    [[[[[[None, "# Hi\n\n"]], "model"]]]],
    [[[[[[None, "```py\n  x = 1\n```\n"]], "model"], 1]], None, [3, 4, 7]],
]


class Upstream:
    """An HTTPS server standing in for the answer's host: frames gzip-streamed one by one."""

    def __init__(self, ca: CertificateAuthority, *, status: int = 200, body: bytes | None = None) -> None:
        self.ca, self.status, self.body = ca, status, body
        self.requests: list[bytes] = []
        self.release = asyncio.Event()
        self.close_body = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(
            self.serve, "127.0.0.1", 0, ssl=self.ca.server_context("localhost")
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        (
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        b"0",
                    )
                )
                self.requests.append(head + await reader.readexactly(length))
                if self.body is not None:
                    writer.write(
                        b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (self.status, len(self.body))
                        + self.body
                    )
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                compressor = zlib.compressobj(wbits=31)
                pieces = [b"[[", json.dumps(FRAMES[0]).encode(), b",", json.dumps(FRAMES[1]).encode(), b"]]"]
                for index, piece in enumerate(pieces):
                    data = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                    if index == 1:
                        await self.release.wait()  # the first frame is out; the rest waits
                await self.close_body.wait()  # the finish is out; the body ends later
                tail = compressor.flush()
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def setup(
    tmp_path: Path,
) -> AsyncIterator[tuple[CaptureProxy, Upstream, httpx.AsyncClient, NetworkCapture]]:
    site_ca = CertificateAuthority.load_or_create(tmp_path / "site-ca.pem")
    capture_ca = CertificateAuthority.load_or_create(tmp_path / "capture" / "ca.pem")
    upstream = Upstream(site_ca)
    port = await upstream.start()
    trust_site = ssl.create_default_context(cadata=site_ca.certificate_pem.decode())
    capture = NetworkCapture()
    proxy = CaptureProxy(
        capture, capture_ca, Target.parse(f"localhost:{port}", "/GenerateContent"), trust_site, password="pw"
    )
    await proxy.start(0)
    assert proxy._server is not None
    proxy_port = proxy._server.sockets[0].getsockname()[1]
    browser_trust = ssl.create_default_context(cadata=capture_ca.certificate_pem.decode())
    client = httpx.AsyncClient(
        proxy=f"http://browser:pw@127.0.0.1:{proxy_port}", verify=browser_trust, timeout=5
    )
    upstream.url = f"https://localhost:{port}"  # type: ignore[attr-defined]
    yield proxy, upstream, client, capture
    upstream.release.set()
    upstream.close_body.set()
    await client.aclose()
    await proxy.close()
    assert upstream.server is not None
    upstream.server.close()


async def test_the_answer_is_read_as_it_streams_and_reaches_the_page_unchanged(setup) -> None:  # type: ignore[no-untyped-def]
    _, upstream, client, capture = setup
    watch = capture.watch()
    async with client.stream(
        "POST", upstream.url + PATH, content=b"[1]", headers={"accept-encoding": "gzip, br, zstd"}
    ) as response:
        events = watch.events()
        first = await asyncio.wait_for(anext(events), 5)
        assert first == TextDelta("# Hi\n\n")  # before the site has sent the rest
        upstream.release.set()
        # The frame with the finish ends the answer, though the site has not closed the body.
        rest = await asyncio.wait_for(_all(events), 5)
        upstream.close_body.set()
        page_body = await response.aread()
    assert rest == [TextDelta("```py\n  x = 1\n```\n"), Finish(FinishReason.STOP, Usage(3, 4, 0))]
    assert json.loads(page_body) == [FRAMES]  # httpx decoded gzip: the page saw the site's bytes
    assert b"accept-encoding: gzip, deflate" in upstream.requests[0].lower()
    assert upstream.requests[0].endswith(b"\r\n\r\n[1]")
    assert watch.stats.frames == 2 and watch.stats.encoding == "gzip"


async def test_a_request_nobody_watches_for_passes_unread(setup) -> None:  # type: ignore[no-untyped-def]
    _, upstream, client, capture = setup
    upstream.release.set()
    upstream.close_body.set()
    response = await client.post(upstream.url + PATH, content=b"[]")
    assert json.loads(response.content) == [FRAMES]
    watch = capture.watch()
    assert not watch.seen


@pytest.mark.parametrize(("status", "code"), [(429, "quota_exhausted"), (403, "permission_denied")])
async def test_the_sites_refusal_is_an_error_event(tmp_path: Path, setup, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream, client, capture = setup
    upstream.status = status
    upstream.body = json.dumps([None, [8 if status == 429 else 7, "no"]]).encode()
    watch = capture.watch()
    response = await client.post(upstream.url + PATH, content=b"[]")
    assert response.status_code == status
    events = [event async for event in watch.events()]
    assert isinstance(events[0], AnswerError) and (events[0].status, events[0].code) == (status, code)


async def test_other_hosts_are_tunnelled_not_decrypted(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    proxy, upstream, client, capture = setup
    # Same upstream under another name: the client must see the site's own certificate.
    other = f"https://127.0.0.1:{upstream.url.rsplit(':', 1)[1]}"
    with pytest.raises(httpx.ConnectError):  # our client trusts only the capture CA
        await client.post(other + PATH, content=b"[]")
    site_trust = ssl.create_default_context(cadata=upstream.ca.certificate_pem.decode())
    site_trust.check_hostname = False
    assert proxy._server is not None
    proxy_url = f"http://browser:pw@127.0.0.1:{proxy._server.sockets[0].getsockname()[1]}"
    upstream.release.set()
    upstream.close_body.set()
    async with httpx.AsyncClient(proxy=proxy_url, verify=site_trust, timeout=5) as direct:
        response = await direct.post(other + PATH, content=b"[]")
    assert json.loads(response.content) == [FRAMES] and not capture.watch().seen


def test_the_ca_is_made_once_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "ca" / "capture-ca.pem"
    first = CertificateAuthority.load_or_create(path)
    again = CertificateAuthority.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.spki_sha256 == again.spki_sha256
    path.chmod(0o644)
    with pytest.raises(CAError, match="chmod 600"):
        CertificateAuthority.load_or_create(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".ca-")]


async def test_only_the_browser_may_use_the_proxy(setup) -> None:  # type: ignore[no-untyped-def]
    proxy, _, _, _ = setup
    port = proxy._server.sockets[0].getsockname()[1]
    for credentials in ("", "browser:wrong@", "browser:PW@"):
        async with httpx.AsyncClient(proxy=f"http://{credentials}127.0.0.1:{port}", timeout=5) as stranger:
            response = await stranger.get("http://127.0.0.1:9/")
        assert response.status_code == 407, credentials


async def _all(events: AsyncIterator[AnswerEvent]) -> list[AnswerEvent]:
    return [event async for event in events]
