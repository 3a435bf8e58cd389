"""The coordinator's HTTP/1.1 server: connections, request parsing, and writing answers.

The public surface is small and ours, so the server is too: httptools parses, one
`asyncio.Protocol` per connection, one task per request, and a single handler (the app)
that gets a parsed `Request` with its whole body and answers through it. It does what a
proxy of streamed answers needs: keep-alive, `Expect: 100-continue`, limits on the head
and the body, chunked answers whose writes wait while a slow reader catches up, a
handler cancelled when its client disconnects, and a graceful close. uvicorn and
Starlette did this before; their layers were about a third of the coordinator's CPU per
request, which on a busy machine is most of the latency it adds (docs/benchmarks.md).

Answers to requests that cannot be parsed are built by the caller's `error_body`, so
that even those are in the app's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from email.utils import formatdate
from typing import cast
from urllib.parse import unquote

import httptools
import structlog

from coordinator.protocol.openai import OpenAIError

log = structlog.get_logger("coordinator.serving.http")

Headers = Iterable[tuple[bytes, bytes]]
Handler = Callable[["Request"], Awaitable[None]]
ErrorBody = Callable[[int, str, str], bytes]

MAX_HEAD_BYTES = 64 * 1024  # request line and headers together
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in http.HTTPStatus
}


class _Refused(OpenAIError):
    """A request refused while it is parsed; the connection answers and closes."""


class Request:
    """One request, with its whole body, and the way to answer it.

    Answer with `respond` (a whole body), or `start`, `write`... `end` (a stream, sent
    chunked). A handler that returns without answering gets its connection closed.
    """

    __slots__ = (
        "_chunked",
        "_connection",
        "_head_only",
        "_unsent_head",
        "body",
        "finished",
        "first_byte_at",
        "headers",
        "http_10",
        "keep_alive",
        "method",
        "path",
        "started",
        "status",
    )  # fmt: skip

    def __init__(
        self, connection: _Connection, method: str, path: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # lower-case names; a repeated header keeps its last value
        self.body = b""
        self.keep_alive = keep_alive
        self.http_10 = False
        self.status = 0  # of the answer, once started
        self.started = False
        self.finished = False
        self.first_byte_at: float | None = None  # time.perf_counter() of the first body byte sent
        self._connection = connection
        self._chunked = False
        self._head_only = method == "HEAD"
        self._unsent_head = b""

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        head = self._head(status, headers, b"content-length: %d\r\n" % len(body))
        self.first_byte_at = time.perf_counter()
        self.finished = True
        await self._connection.write(head if self._head_only else head + body)

    def start(self, status: int, headers: Headers) -> None:
        """Begin a stream: the body follows with `write` and ends with `end`. The head
        leaves with the first piece of the body, in one write."""
        if self.http_10:
            self.keep_alive = False  # an HTTP/1.0 client reads to the close
            framing = b""
        else:
            self._chunked = True
            framing = b"transfer-encoding: chunked\r\n"
        self._unsent_head = self._head(status, headers, framing)

    async def write(self, data: bytes) -> None:
        if not data or self._head_only:
            return
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        framed = b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data
        head, self._unsent_head = self._unsent_head, b""
        await self._connection.write(head + framed if head else framed)

    async def end(self) -> None:
        self.finished = True
        tail = b"0\r\n\r\n" if self._chunked and not self._head_only else b""
        head, self._unsent_head = self._unsent_head, b""
        if head or tail:
            await self._connection.write(head + tail)

    def _head(self, status: int, headers: Headers, framing: bytes) -> bytes:
        if self.started:
            raise RuntimeError("the answer to this request has started already")
        self.started = True
        self.status = status
        server = self._connection.server
        self.keep_alive = self.keep_alive and not server.closing
        return _head(server, status, headers, framing, close=not self.keep_alive)


def _head(server: HttpServer, status: int, headers: Headers, framing: bytes, *, close: bool) -> bytes:
    """The status line and headers of an answer, up to its blank line."""
    status_line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()
    parts = [status_line, server.date_header(), framing]
    parts.extend(name + b": " + value + b"\r\n" for name, value in headers)
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One client connection: requests are parsed as bytes come, and handled one at a time."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pending: deque[Request] = deque()  # parsed, waiting for the one in hand to end
        self.active: asyncio.Task[None] | None = None
        self.handling: Request | None = None  # the request of `active`
        self.upgrade_ignored = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.last_active = 0.0
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        # The request being parsed:
        self.url = b""
        self.header_list: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.request: Request | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self._wait_idle()

    def data_received(self, data: bytes) -> None:
        if self.upgrade_ignored:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade (WebSocket, h2c) is offered: the request is answered as plain HTTP,
            # and the connection closes after it, since what follows it is not HTTP.
            last = self.pending[-1] if self.pending else self.handling
            if last is None:
                self._refuse(_Refused(400, "upgrade_not_supported", "Protocol upgrades are not supported."))
            else:
                last.keep_alive = False
                self.upgrade_ignored = True
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):  # raised in a parser callback
                self._refuse(cause)
            else:
                self._refuse(_Refused(400, "malformed_request", "The request is not valid HTTP/1.1."))

    def eof_received(self) -> bool | None:
        return None  # a client that stops sending has left: close, and cancel what it asked

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.active is not None:
            self.active.cancel()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.header_list = []
        self.head_bytes = 0
        self.body = []
        self.body_bytes = 0
        self.request = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url), 414, "uri_too_long", "The request's URL is too long.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))
        self._count_head(
            len(name) + len(value), 431, "headers_too_large", "The request's headers are too large."
        )

    def on_headers_complete(self) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.header_list
        }
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        request = Request(
            self,
            self.parser.get_method().decode("ascii", "replace"),
            unquote(path) if "%" in path else path,
            headers,
            self.parser.should_keep_alive(),
        )
        request.http_10 = self.parser.get_http_version() == "1.0"
        self.request = request
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.server.max_body_bytes:
            raise self._too_large()
        if headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.max_body_bytes:
            raise self._too_large()
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        request.body = b"".join(self.body)
        self.body = []
        self.request = None
        if self.active is None:
            self._run(request)
        else:  # pipelined: hold it, and read no further until it is answered
            self.pending.append(request)
            if self.transport is not None:
                self.transport.pause_reading()

    # -- handling and writing -----------------------------------------------------------

    def _run(self, request: Request) -> None:
        self.handling = request
        self.active = self.loop.create_task(self._handle(request))

    async def _handle(self, request: Request) -> None:
        try:
            await self.server.handler(request)
        except asyncio.CancelledError:
            pass  # the client left, or the server is closing; the app has logged it
        except Exception:
            log.exception("handler_failed", method=request.method, path=request.path)
            if not request.started and not self.closed:
                body = self.server.error_body(
                    500, "internal_error", "The coordinator failed on this request."
                )
                with contextlib.suppress(Exception):
                    await request.respond(500, [(b"content-type", b"application/json")], body)
        finally:
            self._after(request)

    def _after(self, request: Request) -> None:
        self.active = None
        self.handling = None
        if self.closed:
            return
        if not request.finished or not request.keep_alive or self.server.closing:
            self.close()
        elif self.pending:
            assert self.transport is not None
            self.transport.resume_reading()
            self._run(self.pending.popleft())
        else:
            self._wait_idle()

    async def write(self, data: bytes) -> None:
        """Write, then wait while the client is slower than the answer (backpressure)."""
        if self.closed or self.transport is None:
            return
        self.transport.write(data)
        if self.write_paused and not self.closed:
            self.drained = self.loop.create_future()
            await self.drained

    def _wake_writer(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    # -- refusals, idling, closing ------------------------------------------------------

    def _count_head(self, size: int, status: int, code: str, message: str) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _Refused(status, code, message)

    def _too_large(self) -> _Refused:
        limit = self.server.max_body_bytes
        return _Refused(
            413,
            "request_too_large",
            f"The request body is larger than {limit} bytes; send a shorter conversation or raise "
            "--max-body-bytes.",
        )

    def _refuse(self, refused: _Refused) -> None:
        """Answer a request that could not be taken, and close: the stream of bytes is lost."""
        if self.closed or self.transport is None:
            return
        if self.active is None:
            body = self.server.error_body(refused.status, refused.code, refused.message)
            framing = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
            self.transport.write(_head(self.server, refused.status, (), framing, close=True) + body)
        self.close()

    def _wait_idle(self) -> None:
        # One timer per connection, armed once and moved on when it fires: re-arming it for
        # every request would cost a timer per request.
        self.last_active = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_at(
                self.last_active + self.server.keep_alive_timeout, self._on_idle_timer
            )

    def _on_idle_timer(self) -> None:
        self.idle_timer = None
        due = self.last_active + self.server.keep_alive_timeout
        if self.idle and self.loop.time() >= due:
            self.close()
        elif not self.closed:
            self.idle_timer = self.loop.call_at(max(due, self.loop.time() + 1.0), self._on_idle_timer)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    @property
    def idle(self) -> bool:
        return self.active is None and not self.pending and self.request is None


class HttpServer:
    """Listens, hands every request to `handler`, and closes gracefully."""

    def __init__(
        self,
        handler: Handler,
        *,
        error_body: ErrorBody,
        max_body_bytes: int,
        keep_alive_timeout: float = 30.0,
    ) -> None:
        self.handler = handler
        self.error_body = error_body
        self.max_body_bytes = max_body_bytes
        self.keep_alive_timeout = keep_alive_timeout
        self.connections: set[_Connection] = set()
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._date_second = 0
        self._date = b""

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host or None, port, backlog=2048, reuse_address=True
        )

    async def shutdown(self, timeout: float) -> None:
        """Stop listening, close idle connections, give busy ones `timeout`, then cut them."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            for connection in list(self.connections):
                if connection.idle:
                    connection.close()
            await asyncio.sleep(0.01)
        handlers = [c.active for c in self.connections if c.active is not None]
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if handlers:  # cut off: they are cancelled now, and clean up (stop a child's page) first
            await asyncio.wait(handlers, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date
