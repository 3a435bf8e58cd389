"""Our HTTP/1.1 server, for the coordinator's public port and each child's private one:
connections, request parsing, and writing answers.

The surface both need is small and ours, so the server is too: httptools parses, one
`asyncio.Protocol` per connection, one task per request, and an application that is
asked twice: `admit` when a request's head arrives (route, method, key, how much body it
may send), then `__call__` with the whole request, to answer through it. It does what a
proxy of streamed answers needs: keep-alive, `Expect: 100-continue`, chunked answers
whose writes wait while a slow reader catches up, a handler cancelled when its client
disconnects, and a graceful close. uvicorn and Starlette did this before; their layers
were about a third of the coordinator's CPU per request, and more of a mock child's
(each answer in two writes), which on a busy machine is most of the latency they add
(docs/benchmarks.md).

On the public port it is the first thing a hostile client meets, so everything a client
sends is bounded (`Limits`): connections, header count and bytes counted on the wire,
the time a head, a body or a write may take, and requests pipelined behind the one in
hand. A refused request's body is never buffered. One sweep task checks every deadline,
so a request costs no timer of its own.

Answers to requests that cannot be parsed are built by the caller's `error_body`, so
that even those are in the app's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import NamedTuple, NoReturn, Protocol, cast
from urllib.parse import unquote

import httptools
import structlog

from coordinator.protocol.openai import OpenAIError

log = structlog.get_logger("coordinator.http_server")

Headers = Iterable[tuple[bytes, bytes]]
# status, code, message, and the path asked (empty where none was read): the body of an error
ErrorBody = Callable[[int, str, str, str], bytes]
LimitMet = Callable[[str], None]

# A refused request's body up to this size is read and dropped, so that the connection
# stays usable; a larger one is not read at all, and the connection closes after the answer.
DISCARD_BYTES = 64 * 1024
# After an answer sent while the client was still sending a body the server will not read,
# the rest is read and dropped for this long or this much, so that the client reads the
# answer rather than a reset; then the connection is cut.
LINGER_SECONDS = 2.0
LINGER_BYTES = 8 * 1024 * 1024
# Each header costs its name, its value, and ": " and CRLF on the wire.
_HEADER_OVERHEAD = 4
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in http.HTTPStatus
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may cost: the defaults suit a public port; each has a flag."""

    max_connections: int = 1000
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024  # request line and headers, as sent
    header_timeout: float = 10.0  # from a request's first byte to the end of its head
    body_timeout: float = 60.0  # for the whole body, once the server reads it
    send_timeout: float = 30.0  # a write may wait this long for a client that does not read
    keep_alive_timeout: float = 30.0
    max_pipelined: int = 16  # requests parsed while another is answered; more closes


class Admission(NamedTuple):
    """What the application decides from a request's head, before any of its body is read.

    A named tuple rather than a frozen dataclass: one is made per request, and a tuple is
    built several times faster."""

    body_limit: int  # the most body bytes this request may send; beyond them: 413
    refused: bool = False  # answer without the body: it is dropped, or never read
    decision: object = None  # the application's own note, handed back as `Request.decision`


class Application(Protocol):
    def admit(self, request: Request) -> Admission:
        """Decide from the head alone (`request.body` is empty). Must not block."""
        ...

    async def __call__(self, request: Request) -> None: ...


class _Refused(OpenAIError):
    """A request refused while it is parsed; the connection answers and closes."""

    def __init__(self, status: int, code: str, message: str, limit: str | None = None) -> None:
        super().__init__(status, code, message)
        self.limit = limit  # the limit met, where the code does not say which


class _StopParsing(Exception):
    """Raised in a parser callback: what follows in this connection is not read."""


class _Phase(enum.Enum):
    """What a connection waits for, which says which deadline applies."""

    IDLE = "idle"  # between requests: keep-alive
    HEAD = "head"
    BODY = "body"
    LINGER = "linger"  # answered; dropping what the client still sends before the close
    NONE = "none"  # a handler runs: its own timeouts apply


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
        "cancelled_by",
        "decision",
        "expects_continue",
        "finished",
        "first_byte_at",
        "headers",
        "http_10",
        "keep_alive",
        "method",
        "path",
        "query",
        "refused",
        "started",
        "status",
    )  # fmt: skip

    def __init__(
        self, connection: _Connection, method: str, path: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.query = ""  # the URL's part after '?', as sent (undecoded)
        self.headers = headers  # lower-case names; a repeated header keeps its last value
        self.body = b""
        self.keep_alive = keep_alive
        self.http_10 = False
        self.expects_continue = False
        self.refused = False
        self.decision: object = None
        # Why the answer was cut short, if it was: "disconnect", "shutdown", "send_timeout".
        self.cancelled_by: str | None = None
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

    async def end(self, last: bytes = b"") -> None:
        """End the stream, after `last` (the body's last piece, sent in the same write)."""
        self.finished = True
        if self._head_only:
            last = b""
        elif last and self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        if self._chunked and not self._head_only:
            last = (b"%x\r\n%b\r\n" % (len(last), last) if last else b"") + b"0\r\n\r\n"
        head, self._unsent_head = self._unsent_head, b""
        if head or last:
            await self._connection.write(head + last)

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


def _error_answer(server: HttpServer, refused: _Refused, path: str = "") -> bytes:
    body = server.error_body(refused.status, refused.code, refused.message, path)
    framing = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    return _head(server, refused.status, (), framing, close=True) + body


class _Connection(asyncio.Protocol):
    """One client connection: requests are parsed as bytes come, and handled one at a time.

    While a request is handled, the next one's head may be parsed, but reading then
    pauses until the first is answered: a client cannot make the server hold more than
    what one read brings.
    """

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pending: deque[Request] = deque()  # parsed, waiting for the one in hand to end
        self.active: asyncio.Task[None] | None = None
        self.handling: Request | None = None  # the request of `active`
        self.ignoring = False  # what the client sends from now on is dropped unread
        self.eof = False  # the client has sent all it will send (it may still read)
        self.refusal_after = b""  # an error answer that waits for the requests before it
        self.reading = True
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        # The one deadline of what the connection waits for, checked by the server's sweep.
        self.phase = _Phase.IDLE
        self.deadline: float | None = None
        self.send_deadline: float | None = None
        self.lingered = 0
        # The request being parsed:
        self.messages = 0  # begun on this connection
        self.in_head = False
        self.head_wire = 0  # bytes of a head that spans reads, as they came
        self.url = b""
        self.header_list: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.body_limit = 0
        self.request: Request | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        if not self.server.admit_connection():
            refused = _Refused(
                503, "too_many_connections", "The server has too many connections open; retry shortly."
            )
            self.transport.write(_error_answer(self.server, refused))
            self.closed = True
            self.transport.close()
            return
        self.server.connections.add(self)
        self._wait_idle()

    def data_received(self, data: bytes) -> None:
        if self.ignoring or self.closed:
            if self.phase is _Phase.LINGER:
                self.lingered += len(data)
                if self.lingered > LINGER_BYTES:
                    self.abort()
            return
        begun = self.messages
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
                self._stop_reading()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _StopParsing):
                return
            if isinstance(cause, _Refused):  # raised in a parser callback
                self._refuse(cause)
            else:
                self._refuse(_Refused(400, "malformed_request", "The request is not valid HTTP/1.1."))
            return
        if self.in_head:
            # httptools gathers a header line before it calls back: one sent across many
            # reads is counted here, as it arrives, not when it ends.
            self.head_wire = self.head_wire + len(data) if self.messages == begun else 0
            if self.head_wire > self.limits.max_header_bytes:
                self._refuse(_Refused(431, "headers_too_large", "The request's headers are too large."))

    def eof_received(self) -> bool | None:
        if (self.active is None and not self.pending) or not self.server.half_close:
            return None  # close (which cancels a request in hand)
        # A client may close its side once it has sent its request (a half-close): the
        # accepted requests are still answered, then the connection closes. One that has
        # left altogether looks the same until something is written to it; see `probe`.
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.server.idle.pop(self, None)
        if self.active is not None:
            if self.handling is not None and self.handling.cancelled_by is None:
                self.handling.cancelled_by = "shutdown" if self.server.closing else "disconnect"
            self.active.cancel()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.server.idle.pop(self, None)
        self.messages += 1
        self.in_head = True
        self.head_wire = 0
        self.url = b""
        self.header_list = []
        self.head_bytes = 0
        self.body = []
        self.body_bytes = 0
        self.request = None
        if self.busy:
            self._set_phase(_Phase.NONE)  # behind a request in hand: its head waits with it
        else:
            self._set_phase(_Phase.HEAD, self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url), 414, "uri_too_long", "The request's URL is too long.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))
        if len(self.header_list) > self.limits.max_headers:
            raise _Refused(
                431, "too_many_headers", f"The request has more than {self.limits.max_headers} headers."
            )
        self._count_head(
            len(name) + len(value) + _HEADER_OVERHEAD,
            431,
            "headers_too_large",
            "The request's headers are too large.",
        )

    def on_headers_complete(self) -> None:
        self.in_head = False
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
        request.query = self.url.partition(b"?")[2].decode("latin-1")
        request.http_10 = self.parser.get_http_version() == "1.0"
        request.expects_continue = headers.get("expect", "").lower() == "100-continue"
        self.request = request
        admission = self.server.app.admit(request)
        request.decision = admission.decision
        request.refused = admission.refused
        declared = headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else None
        has_body = size != 0 and (size is not None or "chunked" in headers.get("transfer-encoding", ""))
        if admission.refused:
            # Not a byte of the body is kept. A small one is read and dropped so that the
            # connection serves on; a large one, one of unknown size, or one the client
            # waits for leave to send, is not read at all: answer now and close.
            self.body_limit = DISCARD_BYTES
            if has_body and (size is None or size > DISCARD_BYTES or request.expects_continue):
                self._answer_unread(request)
        else:
            self.body_limit = admission.body_limit
            if size is not None and size > self.body_limit:
                raise self._too_large()
        if self.busy:
            self._pause_reading()  # read no further until the request in hand is answered
        elif has_body:
            self._start_body(request)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.body_limit:
            raise self._too_large()
        if self.request is not None and not self.request.refused:  # a refused one's is dropped
            self.body.append(body)

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        request.body = b"".join(self.body)
        self.body = []
        self.request = None
        if len(self.pending) >= self.limits.max_pipelined:
            # A flood of pipelined requests: the ones taken are answered, then the
            # connection closes; the client may send the rest again on a new one.
            self.pending[-1].keep_alive = False
            self.server.on_limit("max_pipelined")
            self._stop_reading()
            raise _StopParsing
        self._accept(request)

    def _answer_unread(self, request: Request) -> NoReturn:
        """Answer a refused request without reading the rest of its body, then close."""
        request.keep_alive = False
        self.request = None
        self._stop_reading()
        self._accept(request)
        raise _StopParsing

    # -- handling and writing -----------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.active is not None or bool(self.pending)

    def _accept(self, request: Request) -> None:
        if self.busy:
            self.pending.append(request)
            self._pause_reading()
        else:
            self._run(request)

    def _run(self, request: Request) -> None:
        self._set_phase(_Phase.NONE)
        self.handling = request
        self.active = self.loop.create_task(self._handle(request))

    async def _handle(self, request: Request) -> None:
        try:
            await self.server.app(request)
        except asyncio.CancelledError:
            pass  # the client left, or the server is closing; the app has logged it
        except Exception:
            log.exception("handler_failed", method=request.method, path=request.path)
            if not request.started and not self.closed:
                body = self.server.error_body(
                    500, "internal_error", "The server failed on this request; see its log.", request.path
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
        if not request.finished or self.server.closing:
            self.close()
        elif not request.keep_alive:
            self._close_after_answer()
        elif self.pending:
            self._run(self.pending.popleft())
        elif self.refusal_after:
            assert self.transport is not None
            self.transport.write(self.refusal_after)
            self.close()
        elif self.eof:
            self.close()
        elif self.request is not None:  # the next request's head is in; its body is not
            self._resume_reading()
            self._start_body(self.request)
        elif self.in_head:  # the next request's head is coming: it is timed from now
            self._resume_reading()
            self._set_phase(_Phase.HEAD, self.limits.header_timeout)
        else:
            self._resume_reading()
            self._wait_idle()

    async def write(self, data: bytes) -> None:
        """Write, then wait while the client is slower than the answer (backpressure).

        The wait is bounded: a client that reads nothing for `send_timeout` is cut off by
        the sweep, which cancels the request and so frees its child.
        """
        if self.closed or self.transport is None:
            return
        self.transport.write(data)
        if self.write_paused and not self.closed:
            self.drained = self.loop.create_future()
            self.send_deadline = self.loop.time() + self.limits.send_timeout
            try:
                await self.drained
            finally:
                self.send_deadline = None

    def _wake_writer(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    # -- limits, refusals, closing ------------------------------------------------------

    def _start_body(self, request: Request) -> None:
        """The request is in hand and its body is wanted: ask for it, and time it."""
        self._set_phase(_Phase.BODY, self.limits.body_timeout)
        if request.expects_continue and not request.refused and self.transport is not None:
            self.transport.write(_CONTINUE)

    def _count_head(self, size: int, status: int, code: str, message: str) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_header_bytes:
            raise _Refused(status, code, message)

    def _too_large(self) -> _Refused:
        return _Refused(
            413,
            "request_too_large",
            f"The request body is larger than {self.body_limit} bytes; send a shorter conversation "
            "or raise --max-body-bytes.",
        )

    def _refuse(self, refused: _Refused) -> None:
        """Answer a request that could not be taken, and close: the stream of bytes is lost.

        Requests accepted before it are answered first."""
        if self.closed or self.transport is None:
            return
        self.server.on_limit(refused.limit or refused.code)
        self._stop_reading()
        if self.busy:
            self.refusal_after = _error_answer(self.server, refused, self._path())
        else:
            self.transport.write(_error_answer(self.server, refused, self._path()))
            self._close_after_answer()

    def _close_after_answer(self) -> None:
        """Close; if the client may still be sending, first read and drop it for a moment
        so that it gets the answer rather than a reset."""
        if self.eof or not (self.ignoring or self.request is not None) or self.transport is None:
            self.close()
            return
        self.ignoring = True
        self._resume_reading()
        with contextlib.suppress(OSError, RuntimeError, NotImplementedError):
            if self.transport.can_write_eof():
                self.transport.write_eof()
        self._set_phase(_Phase.LINGER, LINGER_SECONDS)
        self._mark_idle()  # nothing more will be answered here: first to go if room is needed

    def _path(self) -> str:
        """The path of the request being read, as far as it has arrived."""
        return self.url.split(b"?", 1)[0].decode("latin-1")

    def _stop_reading(self) -> None:
        """Nothing more of what this client sends will be used: pause until the close."""
        self.ignoring = True
        self._pause_reading()

    def _pause_reading(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.reading and self.transport is not None and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    def _set_phase(self, phase: _Phase, seconds: float | None = None) -> None:
        self.phase = phase
        self.deadline = None if seconds is None else self.loop.time() + seconds

    def _wait_idle(self) -> None:
        self._set_phase(_Phase.IDLE, self.limits.keep_alive_timeout)
        self._mark_idle()

    def _mark_idle(self) -> None:
        """Last in the server's queue of idle connections: the first is closed first."""
        self.server.idle.pop(self, None)
        self.server.idle[self] = None

    def probe(self) -> None:
        """Tell a half-closed client from one that has gone, while its answer is not due yet.

        Only a write can: a client that has closed its socket answers one with a reset,
        which fails the next write and cancels its request, freeing its place in the
        queue or its child. An interim 102 is what HTTP/1.1 lets a server send before
        any answer, and clients skip it; HTTP/1.0 clients get none.
        """
        request = self.handling
        if self.eof and request is not None and not request.started and not request.http_10:
            assert self.transport is not None
            self.transport.write(_PROCESSING)

    def check_deadlines(self, now: float) -> None:
        """Called by the server's sweep: act on a deadline that has passed."""
        if self.eof:
            self.probe()
        if self.send_deadline is not None and now >= self.send_deadline:
            self._send_timed_out()
        elif self.deadline is not None and now >= self.deadline:
            phase, self.deadline = self.phase, None
            if phase is _Phase.HEAD:
                self._refuse(
                    _Refused(
                        408,
                        "request_timeout",
                        f"The request's head did not arrive within {self.limits.header_timeout:g}s.",
                        limit="header_timeout",
                    )
                )
            elif phase is _Phase.BODY:
                self._refuse(
                    _Refused(
                        408,
                        "request_timeout",
                        f"The request's body did not arrive within {self.limits.body_timeout:g}s.",
                        limit="body_timeout",
                    )
                )
            elif phase is _Phase.LINGER:
                self.abort()
            else:
                self.close()

    def _send_timed_out(self) -> None:
        self.send_deadline = None
        request = self.handling
        log.warning(
            "send_timeout",
            method=request.method if request else None,
            path=request.path if request else None,
            seconds=self.limits.send_timeout,
            reason="the client read nothing; its request is cancelled and its child freed",
        )
        if request is not None:
            request.cancelled_by = "send_timeout"
        self.server.on_limit("send_timeout")
        self.abort()  # connection_lost cancels the handler

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.server.idle.pop(self, None)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.server.idle.pop(self, None)
            self.transport.abort()


class HttpServer:
    """Listens, hands every request to `app`, and closes gracefully."""

    def __init__(
        self,
        app: Application,
        *,
        error_body: ErrorBody,
        limits: Limits | None = None,
        on_limit: LimitMet = lambda limit: None,
        half_close: bool = True,
    ) -> None:
        self.app = app
        # A client may close its side once its request is sent, and still read the answer.
        # Off where the one client never does that, so that its EOF means it has left.
        self.half_close = half_close
        self.error_body = error_body
        self.limits = limits or Limits()
        self.on_limit = on_limit  # told each limit a client meets, by name (for the metrics)
        self.connections: set[_Connection] = set()
        # Connections with no request under way, longest idle first (a dict keeps order).
        self.idle: dict[_Connection, None] = {}
        self.closing = False
        self.refused_connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._date_second = 0
        self._date = b""
        self._cap_logged_at = 0.0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host or None, port, backlog=2048, reuse_address=True
        )
        self._sweeper = loop.create_task(self._sweep(), name="http-deadlines")

    def admit_connection(self) -> bool:
        """Room for one more connection: under the cap, or by closing the longest idle one."""
        if len(self.connections) < self.limits.max_connections:
            return True
        # As nginx does when it runs out of connections: the least recently used idle one
        # goes. A busy client's connection is seldom that one; an idle hoarder's always is.
        oldest = next(iter(self.idle), None)
        if oldest is not None:
            oldest.close()
            self.connections.discard(oldest)
            self.on_limit("idle_closed")
            return True
        self.on_limit("too_many_connections")
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._cap_logged_at >= 10.0:  # one line per burst, not one per connection
            self._cap_logged_at = now
            log.warning(
                "connection_limit",
                max_connections=self.limits.max_connections,
                refused_so_far=self.refused_connections,
                hint="raise --max-connections, or look for a client that holds connections open",
            )
        return False

    async def _sweep(self) -> None:
        limits = self.limits
        shortest = min(
            limits.header_timeout, limits.body_timeout, limits.send_timeout, limits.keep_alive_timeout
        )
        interval = max(0.05, min(1.0, shortest / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for connection in list(self.connections):
                connection.check_deadlines(now)

    async def shutdown(self, timeout: float) -> None:
        """Stop listening, close idle connections, give busy ones `timeout`, then cut them."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            for connection in list(self.idle):
                connection.close()
            await asyncio.sleep(0.01)
        handlers = [c.active for c in self.connections if c.active is not None]
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if handlers:  # cut off: they are cancelled now, and clean up (stop a child's page) first
            await asyncio.wait(handlers, timeout=2.0)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            await self._server.wait_closed()

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._date
