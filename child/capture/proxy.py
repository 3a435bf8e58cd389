"""The proxy on the child's stream port, on the browser's path to the site.

The browser's context sends all its traffic here. Every host but the answer's is passed
through untouched: HTTPS as an opaque tunnel (never decrypted), plain HTTP forwarded
as it came. For the answer's host the proxy ends TLS itself, with a certificate from the
capture's CA, opens its own TLS connection to the real host, and relays both ways:
the page's requests go out as the page made them (only `Accept-Encoding` is narrowed to
what the capture can read), the answers come back byte for byte, and a copy of each
answer body is decoded on the side into answer events. Its own connections to the
site go through the account's proxy when the profile's settings name one (`upstream`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import re
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
import structlog

from child.capture.ca import CertificateAuthority
from child.capture.exchange import NetworkCapture, Watch
from child.capture.upstream import UpstreamError, open_upstream
from child.capture.wire import AnswerDecoder, FrameScanner, WireError, status_error
from coordinator.protocol.link import AnswerError
from coordinator.protocol.upstream_proxy import ProxyURL

log = structlog.get_logger("child.capture.proxy")

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 256
COPY_CHUNK = 64 * 1024
READABLE_ENCODINGS = b"gzip, deflate"
PROXY_USER = "browser"
_ACCEPT_ENCODING = re.compile(rb"^accept-encoding:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Target:
    """What the proxy decrypts: `host:port` of the answer, and the path suffix that is one."""

    host: str
    port: int
    path_suffix: str

    @classmethod
    def parse(cls, host_port: str, path_suffix: str) -> Target:
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"answer_host {host_port!r} is not host:port")
        return cls(host.strip("[]").lower(), int(port), path_suffix)

    def is_answer(self, target: bytes) -> bool:
        path = target.split(b"?", 1)[0].decode("latin-1")
        return path.endswith(self.path_suffix)


class CaptureProxy:
    """An HTTP proxy on 127.0.0.1:`port` that reads the answers for `capture`."""

    def __init__(
        self,
        capture: NetworkCapture,
        ca: CertificateAuthority,
        target: Target,
        upstream_tls: ssl.SSLContext,
        password: str,
        upstream_proxy: ProxyURL | None = None,
    ) -> None:
        self.capture = capture
        self.ca = ca
        self.target = target
        self.upstream_tls = upstream_tls
        # The account's proxy: every connection to the site goes through it (None: direct).
        self.upstream_proxy = upstream_proxy
        # Any local process could use an open proxy; the browser gets this password, no one else.
        self.password = password
        self._credentials = base64.b64encode(f"{PROXY_USER}:{password}".encode())
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_HEAD_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ssl.SSLError):
            pass  # a connection that broke costs only itself
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, headers = head.partition(b"\r\n")
        method, _, rest = request_line.partition(b" ")
        target, _, version = rest.partition(b" ")
        if not self._authorized(head):
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="capture"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
            )
            return
        if method == b"CONNECT":
            host, _, port = target.decode("latin-1").rpartition(":")
            host = host.strip("[]").lower()
            if not port.isdigit():
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            if (host, int(port)) == (self.target.host, self.target.port):
                await self._intercept(reader, writer, host, int(port))
            else:
                await self._tunnel(reader, writer, host, int(port))
        else:
            await self._forward(reader, writer, method, target, version, headers)

    def _authorized(self, head: bytes) -> bool:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, credentials = value.strip().partition(b" ")
                return scheme.lower() == b"basic" and hmac.compare_digest(
                    credentials.strip(), self._credentials
                )
        return False

    async def _tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        upstream = await self._open(writer, host, port, None)
        if upstream is None:
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await _relay(reader, writer, *upstream)

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: bytes,
        url: bytes,
        version: bytes,
        headers: bytes,
    ) -> None:
        """Plain HTTP in absolute form: sent on in origin form, one request per connection."""
        match = re.match(rb"http://([^/]+)(/.*)?$", url, re.IGNORECASE)
        if match is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        authority, path = match.group(1).decode("latin-1"), match.group(2) or b"/"
        host, _, port = (
            authority.rpartition(":") if authority.rsplit(":", 1)[-1].isdigit() else (authority, "", "80")
        )
        upstream = await self._open(writer, host.strip("[]"), int(port), None)
        if upstream is None:
            return
        kept = [
            line
            for line in headers.split(b"\r\n")
            if line
            and not line.lower().startswith(
                (b"proxy-connection:", b"proxy-authorization:", b"connection:", b"keep-alive:")
            )
        ]
        # One request per connection: the next one may be for another host.
        upstream[1].write(
            b"\r\n".join([method + b" " + path + b" " + version, *kept, b"Connection: close", b"", b""])
        )
        await _relay(reader, writer, *upstream)

    async def _open(
        self, writer: asyncio.StreamWriter, host: str, port: int, tls: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await open_upstream(host, port, self.upstream_proxy, tls=tls, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if isinstance(exc, UpstreamError):
                # The account's proxy refused: the operator must hear of it. Its reason names
                # the proxy masked, never its credentials.
                log.warning("capture_proxy_refused", host=host, port=port, reason=str(exc))
            else:
                # Debug: a browser's own background calls fail like this on a closed network.
                log.debug("capture_upstream_failed", host=host, port=port, error=type(exc).__name__)
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None

    async def _intercept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        upstream = await self._open(writer, host, port, self.upstream_tls)
        if upstream is None:
            return
        upstream_reader, upstream_writer = upstream
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        try:
            await writer.start_tls(self.ca.server_context(host))
            answers = _AnswerReader()
            requests = asyncio.create_task(self._requests(reader, upstream_writer, answers))
            responses = asyncio.create_task(_copy(upstream_reader, writer, answers.feed))
            try:
                await asyncio.wait({requests, responses}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (requests, responses):
                    task.cancel()
                await asyncio.gather(requests, responses, return_exceptions=True)
                answers.connection_lost()
        finally:
            upstream_writer.close()

    async def _requests(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, answers: _AnswerReader
    ) -> None:
        """The page's requests, one after the other, each noted before it goes out."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            lines = head[:-4].split(b"\r\n")
            method, _, rest = lines[0].partition(b" ")
            # The answer is a POST's; the CORS preflight before it goes to the same path.
            is_answer = method == b"POST" and self.target.is_answer(rest.partition(b" ")[0])
            watch = self.capture.claim() if is_answer else None
            answers.expect(watch)
            if watch is not None:
                # Only what the capture can decode: the page cannot see a request's headers.
                lines = [
                    b"Accept-Encoding: " + READABLE_ENCODINGS if _ACCEPT_ENCODING.match(line) else line
                    for line in lines
                ]
            upstream.write(b"\r\n".join(lines) + b"\r\n\r\n")
            await _copy_body(reader, upstream, lines[1:])
            await upstream.drain()


class _AnswerReader:
    """Parses the responses on one decrypted connection and decodes the watched answers."""

    def __init__(self) -> None:
        self._expected: deque[Watch | None] = deque()
        self._parser = httptools.HttpResponseParser(self)
        self._current: Watch | None = None
        self._headers: dict[bytes, bytes] = {}
        self._decompress: Callable[[bytes], bytes] | None = None
        self._scanner = FrameScanner()
        self._decoder = AnswerDecoder()
        self._broken = False

    def expect(self, watch: Watch | None) -> None:
        """The next response on this connection answers a request that `watch` waits for (or none)."""
        self._expected.append(watch)

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            # The bytes still reach the page unchanged; only the reading stops.
            self._broken = True
            self._end(AnswerError("the capture could not parse the answer", 502, "capture_failed"))

    def connection_lost(self) -> None:
        if self._current is not None:
            self._end(self._decoder.close(complete=False))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._current = self._expected.popleft() if self._expected else None
        self._headers = {}
        self._decompress = None
        self._scanner = FrameScanner()
        self._decoder = AnswerDecoder()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._current is not None:
            self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        watch = self._current
        if watch is None:
            return
        status = self._parser.get_status_code()
        encoding = self._headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        watch.stats.status, watch.stats.encoding = status, encoding
        if encoding in ("gzip", "x-gzip"):
            self._decompress = zlib.decompressobj(wbits=31).decompress
        elif encoding == "deflate":
            self._decompress = zlib.decompressobj().decompress
        elif encoding not in ("identity", ""):
            self._end(AnswerError(f"the capture cannot read {encoding!r}", 502, "capture_failed"))

    def on_body(self, body: bytes) -> None:
        watch = self._current
        if watch is None or watch.ended:
            return
        watch.stats.bytes += len(body)
        try:
            data = self._decompress(body) if self._decompress is not None else body
            for kind, value in self._scanner.feed(data):
                if kind == "frame":
                    watch.stats.frames += 1
                    for event in self._decoder.frame(value):
                        watch.put(event)
                    watch.stats.signatures = len(self._decoder.signatures)
                    if self._decoder.finish_code is not None:
                        # The frame with the finish carries the usage: the answer is whole now,
                        # whenever the site gets round to closing the body.
                        self._end(self._decoder.close(complete=True))
                        return
                else:
                    self._decoder.rest(value)
        except (WireError, zlib.error) as exc:
            self._end(AnswerError(f"the capture could not read the answer: {exc}", 502, "capture_failed"))

    def on_message_complete(self) -> None:
        watch = self._current
        if watch is None:
            return
        status = watch.stats.status or 0
        if status >= 400 and self._decoder.error is None and not self._decoder.frames:
            self._end(status_error(status))
        else:
            self._end(self._decoder.close(complete=True))

    def _end(self, event: Any) -> None:
        if self._current is not None:
            self._current.put(event)
            self._current = None


async def _copy_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, header_lines: list[bytes]
) -> None:
    """A request body as framed by its headers, copied through unchanged."""
    length = 0
    chunked = False
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip() or b"0")
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                return
            writer.write(await reader.readexactly(size + 2))
    while length > 0:
        data = await reader.read(min(length, COPY_CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        writer.write(data)
        length -= len(data)


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tap: Callable[[bytes], None] | None = None
) -> None:
    while data := await reader.read(COPY_CHUNK):
        if tap is not None:
            tap(data)  # decoded first: the driver hears of the text as early as the page
        writer.write(data)
        await writer.drain()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until either side is done."""
    tasks = {
        asyncio.create_task(_copy(reader, upstream_writer)),
        asyncio.create_task(_copy(upstream_reader, writer)),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        upstream_writer.close()
        with contextlib.suppress(Exception):
            await writer.drain()
