"""Children's screenshots for the dashboard, fetched from each child's `GET /screenshot` and
kept for a few seconds, so that many viewers of one child cost one picture.

A picture is cached per child and process (a restarted child is never shown with its
predecessor's page), and while one is being taken every viewer awaits the same fetch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.lifecycle.child import Child
from coordinator.lifecycle.states import ALIVE
from coordinator.protocol.link import TOKEN_HEADER
from coordinator.serving.transport import ChildLink, TransportError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A browser's page is shot in at most 5 s (child.engines.browser); the link gets a margin.
FETCH_SECONDS = 10.0
CACHE_SECONDS = 3.0


class ScreenshotUnavailable(Exception):
    """No picture of this child now (not running, starting, or its page failed); says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class _Shot:
    pid: int | None
    taken_at: float
    png: bytes


class Screenshots:
    """One cached PNG per child, at most `ttl` seconds old."""

    def __init__(
        self,
        link: ChildLink,
        token: str,
        *,
        ttl: float = CACHE_SECONDS,
        timeout: float = FETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.token = token
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0  # pictures asked of children, for the tests of the cache
        self._shots: dict[str, _Shot] = {}
        self._pending: dict[tuple[str, int | None], asyncio.Task[bytes]] = {}

    async def get(self, child: Child) -> bytes:
        """The child's page as a PNG, from the cache when fresh; or ScreenshotUnavailable."""
        if not child.running or child.state not in ALIVE:
            raise ScreenshotUnavailable(f"Child {child.id!r} is {child.state.value}: it has no page to show.")
        now = self.clock()
        for name in [name for name, shot in self._shots.items() if now - shot.taken_at >= self.ttl]:
            del self._shots[name]  # also the pictures of children that are gone
        pid = child.pid
        shot = self._shots.get(child.id)
        if shot is not None and shot.pid == pid:
            return shot.png
        key = (child.id, pid)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(child.id, child.spec.ports.api, pid))
            self._pending[key] = task
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: a viewer who leaves does not cancel the picture the others wait for.
        return await asyncio.shield(task)

    async def _fetch(self, child_id: str, port: int, pid: int | None) -> bytes:
        self.fetches += 1
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await self.link.fetch(port, "GET", "/screenshot", {TOKEN_HEADER: self.token})
        except TimeoutError:
            raise ScreenshotUnavailable(
                f"Child {child_id!r} took longer than {self.timeout:g}s to take its screenshot."
            ) from None
        except TransportError as exc:
            raise ScreenshotUnavailable(f"Child {child_id!r} could not be reached: {exc}.") from None
        if status != 200:
            raise ScreenshotUnavailable(f"Child {child_id!r} has no screenshot now: {_said(body)}")
        if not body.startswith(PNG_SIGNATURE):
            raise ScreenshotUnavailable(f"Child {child_id!r} answered something that is not a PNG.")
        self._shots[child_id] = _Shot(pid, self.clock(), body)
        return body


def _said(body: bytes) -> str:
    """The message of a child's error body, or a word for its absence."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return "its answer was not an error body."
    return str(message)[:300]
