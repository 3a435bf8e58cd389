"""Small forward proxies that record who went where: an account's proxy, stood up for a test.

`RecordingProxy` is an HTTP proxy (CONNECT, credentials checked in Proxy-Authorization)
or a SOCKS5 one (RFC 1928, user name and password by RFC 1929), on 127.0.0.1, in a thread
of its own with its own event loop, so that the synchronous e2e tests and the asyncio
unit tests alike can run one. It notes each tunnel it opened (`host:port`), each
handshake it refused, and the first bytes each client sent through a tunnel (what a
plain-HTTP page request carries, its cookies included: who the traffic belongs to).
With `tls`, clients reach it over TLS (an https:// proxy).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["http", "socks5"]
HEAD_LIMIT = 16 * 1024
STEP_TIMEOUT = 10.0
SNIFF_BYTES = 64 * 1024  # kept of what each client sends through a tunnel


@dataclass
class Record:
    connects: list[str] = field(default_factory=list)  # host:port of each tunnel opened
    refused: list[str] = field(default_factory=list)  # why each refused handshake was refused
    sent: list[bytes] = field(default_factory=list)  # the first bytes sent through each tunnel


class RecordingProxy:
    def __init__(
        self,
        kind: Kind,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.kind = kind
        self.tls = tls
        self.username, self.password = username, password
        self.record = Record()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{kind}-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, *, username: str | None = None, password: str | None = None) -> str:
        user, secret = username or self.username, password or self.password
        credentials = f"{user}:{secret}@" if user is not None else ""
        scheme = "https" if self.tls is not None else self.kind
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    @property
    def connects(self) -> list[str]:
        return list(self.record.connects)

    def sent(self) -> bytes:
        """All that clients sent through the tunnels (the first SNIFF_BYTES of each)."""
        return b"".join(self.record.sent)

    def start(self) -> RecordingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0, limit=HEAD_LIMIT, ssl=self.tls), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                target = await (
                    self._http(reader, writer) if self.kind == "http" else self._socks(reader, writer)
                )
            if target is None:
                return
            host, port = target
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    up_reader, up_writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                await self._failed(writer)
                return
            self.record.connects.append(f"{host}:{port}")
            sent = bytearray()
            self.record.sent.append(b"")
            index = len(self.record.sent) - 1

            def sniff(data: bytes) -> None:
                if len(sent) < SNIFF_BYTES:
                    sent.extend(data[: SNIFF_BYTES - len(sent)])
                    self.record.sent[index] = bytes(sent)

            await self._established(writer)
            await _relay(reader, writer, up_reader, up_writer, sniff)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    # -- HTTP CONNECT

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        if method != "CONNECT":
            self.record.refused.append(f"method {method}")
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return None
        if self.username is not None:
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            given = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in lines[1:]
                    if line.lower().startswith("proxy-authorization:")
                ),
                "",
            )
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() != "basic" or not hmac.compare_digest(credentials.strip(), expected):
                self.record.refused.append("credentials")
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                return None
        host, _, port = target.rpartition(":")
        return host.strip("[]"), int(port)

    # -- SOCKS5

    async def _socks(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 0x02 if self.username is not None else 0x00
        if version != 5 or wanted not in methods:
            self.record.refused.append("method")
            writer.write(bytes([5, 0xFF]))
            return None
        writer.write(bytes([5, wanted]))
        if wanted == 0x02:
            _, user_length = await reader.readexactly(2)
            user = (await reader.readexactly(user_length)).decode()
            (password_length,) = await reader.readexactly(1)
            password = (await reader.readexactly(password_length)).decode()
            if not (
                hmac.compare_digest(user, self.username or "")
                and hmac.compare_digest(password, self.password or "")
            ):
                self.record.refused.append("credentials")
                writer.write(bytes([1, 1]))
                return None
            writer.write(bytes([1, 0]))
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode("idna")
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:
            writer.write(bytes([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]))
            return None
        return host, port

    async def _established(self, writer: asyncio.StreamWriter) -> None:
        if self.kind == "http":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            writer.write(bytes([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]))
        await writer.drain()

    async def _failed(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 502 Bad Gateway\r\n\r\n"
            if self.kind == "http"
            else bytes([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
        )
        await writer.drain()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    sniff: Callable[[bytes], None],
) -> None:
    async def copy(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, tap: Callable[[bytes], None] | None
    ) -> None:
        while data := await source.read(64 * 1024):
            if tap is not None:
                tap(data)
            sink.write(data)
            await sink.drain()

    tasks = {
        asyncio.create_task(copy(reader, up_writer, sniff)),
        asyncio.create_task(copy(up_reader, writer, None)),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        up_writer.close()


@contextlib.contextmanager
def recording_proxy(
    kind: Kind, username: str | None = None, password: str | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(kind, username, password, tls).start()
    try:
        yield proxy
    finally:
        proxy.stop()
