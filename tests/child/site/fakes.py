"""A capture that plays back a scripted answer: the driver's side tested without a browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from coordinator.protocol.link import AnswerEvent


class ScriptedWatch:
    """Seen (or not) as scripted, then the events, optionally with a stall before them."""

    def __init__(self, events: Sequence[AnswerEvent], seen: bool = True, stall: float = 0.0) -> None:
        self._events = list(events)
        self._seen = seen
        self._stall = stall
        self.closed = False

    @property
    def seen(self) -> bool:
        return self._seen

    async def wait_seen(self, timeout: float) -> bool:
        if not self._seen:
            await asyncio.sleep(0)  # a real watch would wait `timeout`; the answer is the same
        return self._seen

    async def events(self) -> AsyncIterator[AnswerEvent]:
        if self._stall:
            await asyncio.sleep(self._stall)
        for event in self._events:
            yield event

    def close(self) -> None:
        self.closed = True


class ScriptedCapture:
    def __init__(self, watch: ScriptedWatch) -> None:
        self._watch = watch
        self.watches = 0

    def watch(self) -> ScriptedWatch:
        self.watches += 1
        return self._watch
