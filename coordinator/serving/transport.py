"""The coordinator's HTTP/1.1 client for its private link to its children.

Both ends are ours: a child serves on 127.0.0.1 with `coordinator.http_server`, so this
client needs only keep-alive, Content-Length requests, and Content-Length or chunked
answers, parsed by httptools (the server's parser too). It does that at a fraction of a
general client's cost per request, which is most of what the coordinator adds to an
answer's latency.

A response's body is read chunk by chunk as it arrives; when the reader falls behind
(a slow client), reading from the child pauses, so memory stays bounded. Failures are
raised as `TransportError`s that say what happened in words, never with a body.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol, cast

import httptools

from coordinator.protocol.link import TOKEN_HEADER

# Pause reading from a child once this much of its answer waits for a slow client.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
# Idle connections are dropped well before the child's keep-alive timeout closes them.
_IDLE_SECONDS = 20.0
_MAX_IDLE_PER_PORT = 8


class TransportError(Exception):
    """The child could not be reached, or the connection broke; the message says which."""


class ConnectFailed(TransportError):
    pass


class ConnectionLost(TransportError):
    pass


class Stalled(TransportError):
    """The child sent nothing for longer than the answer's idle limit."""


class ChildAnswer(Protocol):
    """What the proxy reads of a child's answer: status and headers, then the body as it comes."""

    status: int
    headers: dict[str, str]

    async def next_chunk(self) -> bytes: ...
    def watch_idle(self, seconds: float) -> None: ...
    def take_buffered(self) -> bytes: ...
    async def read(self) -> bytes: ...
    def close(self) -> None: ...


class ChildLink(Protocol):
    """The seam between the proxy and its children: `Transport` here, a fake in the tests."""

    async def request(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> ChildAnswer: ...

    async def fetch(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]: ...


async def read_body(answer: ChildAnswer) -> bytes:
    """The rest of an answer's body, to its end."""
    parts = []
    while chunk := await answer.next_chunk():
        parts.append(chunk)
    return b"".join(parts)


async def cancel_request(link: ChildLink, port: int, token: str, request_id: str, timeout: float) -> bool:
    """`POST /v1/cancel/{request_id}` on the child on `port`; True if it was generating it.

    Unreachable or too slow counts as not cancelled: the caller decides what follows."""
    try:
        async with asyncio.timeout(timeout):
            status, _ = await link.fetch(port, "POST", f"/v1/cancel/{request_id}", {TOKEN_HEADER: token})
    except (TransportError, TimeoutError):
        return False
    return status == 200


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: ChildResponse | None = None
        self.alive = True
        self.reusable = False
        self.idle_since = 0.0
        self.paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(ConnectionLost("the child sent a malformed answer"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._fail(ConnectionLost("connection closed mid-answer"))

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.status = self.parser.get_status_code()
            self.response._headers_arrived()

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.response is not None:
            self.response._finish()

    # -- used by ChildResponse ----------------------------------------------------------

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and self.alive:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: TransportError) -> None:
        if self.response is not None:
            self.response._fail(error)


class ChildResponse:
    """An answer whose status and headers have arrived; the body follows as it comes."""

    def __init__(self, connection: _Connection, pool: Transport, port: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._connection = connection
        self._pool = pool
        self._port = port
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: TransportError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._headers = asyncio.get_running_loop().create_future()
        self._released = False
        self._idle_limit = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0

    async def next_chunk(self) -> bytes:
        """The next piece of the body as the child sent it; b"" at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                self._release()
                return b""
            loop = asyncio.get_running_loop()
            self._waiting_since = loop.time()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < _LOW_WATER:
            self._connection.resume()
        return chunk

    def watch_idle(self, seconds: float) -> None:
        """From now on, `next_chunk` raises Stalled after waiting `seconds` for data.

        One timer per answer, moved on when it fires, rather than a timeout per chunk:
        a stream has many chunks. Time spent waiting for a slow reader does not count.
        """
        self._idle_limit = seconds
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_at(loop.time() + seconds, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._released or self._complete or self._error is not None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._waiter is not None and now - self._waiting_since >= self._idle_limit:
            self._fail(Stalled(f"no data for {self._idle_limit:g}s"))
            return
        due = self._waiting_since + self._idle_limit if self._waiter is not None else now + self._idle_limit
        self._idle_timer = loop.call_at(due, self._check_idle)

    def take_buffered(self) -> bytes:
        """Whatever of the body has arrived and not been taken yet, without waiting."""
        if not self._chunks:
            return b""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._connection.resume()
        return data

    async def read(self) -> bytes:
        return await read_body(self)

    def close(self) -> None:
        """Done with this answer: the connection goes back to the pool only if it was read to its end."""
        if not self._released:
            if not (self._complete and not self._chunks):
                self._connection.close()
            self._release()

    # -- fed by the connection ----------------------------------------------------------

    def _headers_arrived(self) -> None:
        if not self._headers.done():
            self._headers.set_result(None)

    def _feed(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER:
            self._connection.pause()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: TransportError) -> None:
        if self._complete:
            return
        self._error = error
        if not self._headers.done():
            self._headers.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _release(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._released:
            return
        self._released = True
        connection = self._connection
        connection.response = None
        self._pool._give_back(self._port, connection)


class Transport:
    """Keep-alive connections to the children, by port."""

    def __init__(self, connect_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self._idle: dict[int, list[_Connection]] = {}

    async def request(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> ChildResponse:
        """Send a request and wait for the answer's status and headers."""
        connection = await self._connection(port)
        response = ChildResponse(connection, self, port)
        connection.response = response
        connection.reusable = False
        lines = [f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        lines.append("\r\n")
        assert connection.transport is not None
        try:
            connection.transport.write("".join(lines).encode("latin-1") + body)
            await response._headers
        except BaseException:
            # Cancelled or broken before the answer started: this connection cannot be reused.
            connection.close()
            response._released = True
            raise
        return response

    async def fetch(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """A small request whose whole answer is wanted: status and body."""
        response = await self.request(port, method, path, headers)
        try:
            return response.status, await response.read()
        finally:
            response.close()

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _connection(self, port: int) -> _Connection:
        idle = self._idle.get(port)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.alive and now - connection.idle_since < _IDLE_SECONDS:
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(f"connection refused ({exc.strerror or exc})") from None
        return protocol

    def _give_back(self, port: int, connection: _Connection) -> None:
        if not (connection.alive and connection.reusable):
            connection.close()
            return
        idle = self._idle.setdefault(port, [])
        if len(idle) >= _MAX_IDLE_PER_PORT:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
