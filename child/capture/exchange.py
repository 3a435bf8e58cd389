"""Between the proxy and the driver: which answer belongs to which request.

The driver asks for a `Watch` before it submits; the proxy hands the next answer request
it sees to that watch (`claim`) and feeds it the answer's events as they are decoded.
Requests nobody watches for (a page retry, a stray) pass through unread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from coordinator.protocol.link import AnswerError, AnswerEvent, Finish, TextDelta, Usage

log = structlog.get_logger("child.capture")


@dataclass(slots=True)
class ExchangeStats:
    """What the capture saw of one answer: for `check-site`, the log and the benchmarks."""

    status: int | None = None
    encoding: str = ""
    bytes: int = 0
    frames: int = 0
    finish: str | None = None
    usage: Usage | None = None
    error: str | None = None
    signatures: int = 0  # thought signatures read (see child.capture.wire)
    sent_at: float | None = None  # monotonic: the request went out
    first_text_at: float | None = None  # monotonic: the first text arrived from the site
    ended_at: float | None = None

    def to_log(self) -> dict[str, object]:
        """Counts and times only (monotonic, comparable across processes): never the text."""
        usage = self.usage
        return {
            "status": self.status,
            "encoding": self.encoding,
            "bytes": self.bytes,
            "frames": self.frames,
            "finish": self.finish,
            "error": self.error,
            "signatures": self.signatures,
            "prompt_tokens": usage.prompt if usage else None,
            "completion_tokens": usage.completion if usage else None,
            "sent_at": self.sent_at,
            "first_text_at": self.first_text_at,
            "ended_at": self.ended_at,
        }


class Watch:
    """One answer, from the request going out to its last event."""

    def __init__(self, owner: NetworkCapture) -> None:
        self._owner = owner
        self._seen = asyncio.Event()
        self._events: asyncio.Queue[AnswerEvent] = asyncio.Queue()
        self.stats = ExchangeStats()
        self.closed = False
        self.ended = False

    @property
    def seen(self) -> bool:
        return self._seen.is_set()

    async def wait_seen(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._seen.wait()
        except TimeoutError:
            return False
        return True

    async def events(self) -> AsyncIterator[AnswerEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Finish | AnswerError):
                return

    def close(self) -> None:
        self.closed = True
        self._owner.release(self)

    # -- the proxy's side ------------------------------------------------------------------

    def mark_seen(self) -> None:
        self.stats.sent_at = time.monotonic()
        self._seen.set()

    def put(self, event: AnswerEvent) -> None:
        if self.ended:
            return
        if isinstance(event, TextDelta) and self.stats.first_text_at is None:
            self.stats.first_text_at = time.monotonic()
        if isinstance(event, Finish | AnswerError):
            self.ended = True
            self.stats.ended_at = time.monotonic()
            if isinstance(event, Finish):
                self.stats.finish, self.stats.usage = event.reason.value, event.usage
            else:
                self.stats.error = event.code
            log.info("answer_captured", **self.stats.to_log())
        self._events.put_nowait(event)


class NetworkCapture:
    """The `Capture` the driver holds when the proxy runs: one watch at a time."""

    def __init__(self) -> None:
        self._waiting: Watch | None = None
        self.last: Watch | None = None

    def watch(self) -> Watch:
        watch = Watch(self)
        self._waiting = watch
        return watch

    def claim(self) -> Watch | None:
        """The watch for an answer request that just went out, if the driver waits for one."""
        watch, self._waiting = self._waiting, None
        if watch is None or watch.closed:
            return None
        watch.mark_seen()
        self.last = watch
        return watch

    def release(self, watch: Watch) -> None:
        if self._waiting is watch:
            self._waiting = None
