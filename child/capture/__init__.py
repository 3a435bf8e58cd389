"""The answer as the page's own network delivered it.

The page posts each prompt to `GenerateContent` itself (the request carries a proof only
the page can make); the capture reads the answer that streams back, on the browser's
path, and turns it into answer events. The driver asks for a `watch` before it submits a
prompt and reads the events of the next answer from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from coordinator.protocol.link import AnswerEvent


class AnswerWatch(Protocol):
    """The next `GenerateContent` exchange after `Capture.watch()` was called.

    `seen` is set as soon as the page's request has gone out through the capture;
    `events()` yields the answer's events as they arrive (text, reasoning, tool calls)
    and ends after a `Finish` or an `AnswerError` (quota, permission, a cut stream).
    `close()` lets go of the exchange; the page's own answer is never disturbed.
    """

    @property
    def seen(self) -> bool: ...

    async def wait_seen(self, timeout: float) -> bool: ...

    def events(self) -> AsyncIterator[AnswerEvent]: ...

    def close(self) -> None: ...


class Capture(Protocol):
    """What the site driver needs of the capture: a watch on the next answer."""

    def watch(self) -> AnswerWatch: ...
