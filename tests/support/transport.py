"""A fake of the coordinator's link to its children, for testing the proxy with no process.

Like httpx's `MockTransport`: it takes the place of `coordinator.serving.transport.Transport`
behind the `ChildLink` seam. Each child port answers from a script, one reply per chat
request, and every request sent is recorded. A reply's body can be fed while the proxy
relays it, so a test can see chunks go through one at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.serving.transport import TransportError, read_body

_END = object()


class FakeAnswer:
    """A child's answer: status and headers at once, then body chunks, an end or a failure."""

    def __init__(
        self,
        status: int = 200,
        *chunks: bytes | TransportError,
        headers: Mapping[str, str] | None = None,
        end: bool = True,
    ) -> None:
        self.status = status
        self.headers = {"content-type": "text/event-stream" if status == 200 else "application/json"}
        self.headers.update(headers or {})
        self.closed = False
        self.idle_limit: float | None = None
        self._items: deque[object] = deque(chunks)
        self._arrived = asyncio.Event()
        if end:
            self.finish()

    # -- what the test does while the proxy reads -----------------------------------------

    def feed(self, chunk: bytes) -> None:
        self._put(chunk)

    def finish(self) -> None:
        self._put(_END)

    def fail(self, error: TransportError) -> None:
        self._put(error)

    def _put(self, item: object) -> None:
        self._items.append(item)
        self._arrived.set()

    # -- the ChildAnswer surface ------------------------------------------------------------

    async def next_chunk(self) -> bytes:
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._items[0]
        if item is _END:
            return b""  # the end stays the end
        self._items.popleft()
        if isinstance(item, TransportError):
            raise item
        assert isinstance(item, bytes)
        return item

    def take_buffered(self) -> bytes:
        taken = b""
        # Only chunks already there; an end or a failure stays for next_chunk.
        while self._items and isinstance(chunk := self._items[0], bytes):
            self._items.popleft()
            taken += chunk
        return taken

    def watch_idle(self, seconds: float) -> None:
        self.idle_limit = seconds

    async def read(self) -> bytes:
        return await read_body(self)

    def close(self) -> None:
        self.closed = True


class Hang:
    """A reply that never comes: the child took the request and says nothing."""


Reply = FakeAnswer | TransportError | Hang


@dataclass(frozen=True)
class Sent:
    port: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeLink:
    """Answers chat requests per port from scripts; cancels answer `cancel_status`."""

    scripts: dict[int, list[Reply]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    cancel_status: int = 200

    def script(self, port: int, *replies: Reply) -> None:
        self.scripts.setdefault(port, []).extend(replies)

    def asked(self, path_start: str = "/v1/chat/completions") -> list[int]:
        """The ports asked, in order, for paths starting with `path_start`."""
        return [sent.port for sent in self.sent if sent.path.startswith(path_start)]

    async def request(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> FakeAnswer:
        self.sent.append(Sent(port, method, path, dict(headers or {}), body))
        if path.startswith("/v1/cancel/"):
            return FakeAnswer(self.cancel_status, b"{}")
        script = self.scripts.get(port)
        if not script:
            raise AssertionError(f"no reply scripted for port {port}")
        reply = script.pop(0)
        if isinstance(reply, Hang):
            await asyncio.Event().wait()
        if isinstance(reply, TransportError):
            raise reply
        assert isinstance(reply, FakeAnswer)
        return reply

    async def fetch(
        self, port: int, method: str, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        answer = await self.request(port, method, path, headers)
        return answer.status, await answer.read()
