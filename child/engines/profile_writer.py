"""Writing a session's refreshed cookies back to its profile file, so that the session lives on.

The site refreshes its session cookies as the page is used; a profile file left as it was
logged in goes stale, and a child restarted from it may find itself logged out. So the
engine hands the writer its browser context (anything with `storage_state()`), and the
writer saves that state over the profile file every `every_s` seconds and after every
`every_requests` requests (0 turns either off):

- atomically, mode 600: a temporary file in the same folder, fsync, rename (a crash leaves
  the old file or the new one, never half of one; a reader never sees a partial file);
- only when the state changed, and never a state without cookies (a logged-out page);
- never over a file someone else replaced meanwhile: the file on disk must still be the
  version the child read or last wrote (else the writer stops writing, and the
  coordinator restarts the child with the new file);
- after recording the new version's digest in the write-back record
  (`coordinator.protocol.writeback`), so that the coordinator knows the change for the
  child's own and does not restart it.

Nothing here logs a cookie: paths, counts and reasons only.
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from coordinator.protocol.writeback import add_to_record, digest, write_atomically

if TYPE_CHECKING:
    from child.settings import ChildSettings

log = structlog.get_logger("child.engines.profile_writer")


class StorageSource(Protocol):
    """What holds the live session: a Playwright `BrowserContext`, or the mock's stand-in."""

    async def storage_state(self) -> Mapping[str, Any]: ...


class WriterState(enum.StrEnum):
    OFF = "off"  # neither interval set: nothing is ever written
    ACTIVE = "active"
    YIELDED = "yielded"  # the file was replaced or removed by someone else: no more writes


class ProfileWriteError(Exception):
    """The profile file cannot be read as a storage state (a configuration error)."""


class ProfileWriter:
    """Writes a context's storage state back to `path`; one writer per child."""

    def __init__(
        self,
        path: Path,
        *,
        every_s: float,
        every_requests: int,
        record: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.every_s = every_s
        self.every_requests = every_requests
        self.record = record
        self.clock = clock
        self.state = WriterState.ACTIVE if every_s > 0 or every_requests > 0 else WriterState.OFF
        self.written = 0
        self._lock = asyncio.Lock()
        self._version: str | None = None  # the digest of the file as read or last written
        self._known: Mapping[str, Any] | None = None  # the storage state of that version
        self._last = clock()
        self._requests = 0
        self._failure: str | None = None

    @classmethod
    def from_settings(cls, settings: ChildSettings) -> ProfileWriter:
        """The writer the child's command line asks for (off when both intervals are 0)."""
        return cls(
            settings.profile_path,
            every_s=settings.write_back_interval,
            every_requests=settings.write_back_requests,
            record=settings.write_back_record,
        )

    def read(self) -> dict[str, Any]:
        """The profile's storage state, to make the context from; it becomes the version the
        writer may replace. Read once, so the context and the writer start from the same bytes."""
        try:
            data = self.path.read_bytes()
            state = json.loads(data)
        except (OSError, ValueError) as exc:
            raise ProfileWriteError(f"cannot read the profile {self.path}: {type(exc).__name__}") from None
        if not isinstance(state, dict):
            raise ProfileWriteError(f"the profile {self.path} is not a storage-state object")
        self._version, self._known = digest(data), state
        return state

    def due(self) -> bool:
        """Whether a write is due by time or by requests served since the last one."""
        if self.state is not WriterState.ACTIVE:
            return False
        by_requests = 0 < self.every_requests <= self._requests
        by_time = 0 < self.every_s <= self.clock() - self._last
        return by_requests or by_time

    async def maybe_write(self, source: StorageSource) -> bool:
        """Call after each request: counts it, and writes if a write is due. True if written."""
        self._requests += 1
        return await self.write(source, "due") if self.due() else False

    async def run(self, source: StorageSource) -> None:
        """Write every `every_s` seconds until cancelled (run it as a task beside the page)."""
        if self.every_s <= 0:
            return
        while self.state is WriterState.ACTIVE:
            await asyncio.sleep(max(0.0, self._last + self.every_s - self.clock()))
            if self.due():
                await self.write(source, "interval")

    async def write(self, source: StorageSource, reason: str = "asked") -> bool:
        """Write the source's storage state now, if it changed; True if the file was replaced."""
        async with self._lock:
            if self.state is not WriterState.ACTIVE:
                return False
            if self._version is None:
                raise RuntimeError("ProfileWriter.read() must come first: it names the version to replace")
            self._last, self._requests = self.clock(), 0
            try:
                state = dict(await source.storage_state())
            except Exception as exc:  # a page or browser on its way out: nothing to save
                self._failed(f"could not read the session: {type(exc).__name__}")
                return False
            cookies = state.get("cookies")
            if not isinstance(cookies, list) or not cookies:
                log.warning("profile_write_skipped", path=str(self.path), reason="the session has no cookies")
                return False
            if state == self._known:
                return False
            data = json.dumps(state, indent=2).encode() + b"\n"
            try:
                outcome = await asyncio.to_thread(self._replace, data, self._version)
            except OSError as exc:
                self._failed(f"{type(exc).__name__}: {exc.strerror or exc}")
                return False
            if outcome is not None:
                self._move(WriterState.YIELDED, outcome)
                return False
            self._version, self._known = digest(data), state
            self.written += 1
            self._failure = None
            log.info("profile_written", path=str(self.path), reason=reason, cookies=len(cookies))
            return True

    def _replace(self, data: bytes, expected: str) -> str | None:
        """In a worker thread: replace the file if it is still `expected`; else say why not."""
        try:
            current = self.path.read_bytes()
        except FileNotFoundError:
            return "the profile file was removed"
        if digest(current) != expected:
            return "the profile file was replaced by someone else; it is theirs now"
        if self.record is not None:
            add_to_record(self.record, digest(data))
        write_atomically(self.path, data)
        return None

    def _failed(self, problem: str) -> None:
        # Once per distinct problem: a read-only folder would otherwise warn at every request.
        if problem != self._failure:
            log.warning("profile_write_failed", path=str(self.path), error=problem)
        self._failure = problem

    def _move(self, new: WriterState, reason: str) -> None:
        log.info(
            "profile_writer_state", path=str(self.path), old=self.state.value, new=new.value, reason=reason
        )
        self.state = new
