"""The ledger's writer: a bounded queue that the request path fills, drained by a thread.

`record()` is all the request path pays: one `put_nowait`. A full queue drops the entry
and counts it (`dropped`), so a slow disk never slows a request. The thread writes what
it has every `flush_interval` seconds, or as soon as `batch_size` entries are waiting, in
one transaction: a killed process loses at most the entries not yet committed, which is
at most one batch. A write that fails (full disk, unwritable folder) is logged, its
entries are counted in `failed`, and the next batch tries again on a fresh connection.
Retention runs on the same thread, at start and then every `prune_interval` seconds.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from coordinator.ledger.entry import Entry, row
from coordinator.ledger.store import FILE_NAME, Store

log = structlog.get_logger("coordinator.ledger")

# An error that goes on (a full disk) is logged again at most this often.
_ERROR_LOG_INTERVAL = 60.0
_STOP = None


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    data_dir: Path
    # Off: `record` drops every entry uncounted and no thread or file is made.
    enabled: bool = True
    # Rows older than this many days are deleted; 0 keeps them all.
    days: float = 90.0
    batch_size: int = 256
    flush_interval: float = 0.5
    max_queue: int = 10_000
    prune_interval: float = 3600.0

    @property
    def path(self) -> Path:
        return self.data_dir / FILE_NAME


class Ledger:
    """Takes finished requests on any thread; one thread of its own writes them."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._queue: queue.Queue[Entry | None] = queue.Queue(maxsize=config.max_queue)
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self.dropped = 0  # entries refused by a full queue
        self.failed = 0  # entries lost to a failed write
        self.written = 0
        self._last_error_log: dict[str, float] = {}  # by event: a failed prune hides no failed write
        self._store: Store | None = None

    @property
    def path(self) -> Path:
        return self.config.path

    def start(self) -> None:
        if self.config.enabled:
            self._thread.start()

    def record(self, entry: Entry) -> None:
        """Queue `entry` for the writer; never blocks, never raises."""
        if not self.config.enabled:
            return
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1  # one writer of this counter: the event loop's thread

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread, within `timeout` seconds."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("ledger_close_queue_full", dropped_at_close=self._queue.qsize())
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("ledger_close_timeout", timeout=timeout)

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic()
        stopping = False
        while not stopping:
            batch, stopping = self._take()
            if batch:
                self._write(batch)
            if time.monotonic() >= next_prune:
                self._prune()
                next_prune = time.monotonic() + self.config.prune_interval
        if self._store is not None:
            self._store.close()

    def _take(self) -> tuple[list[Entry], bool]:
        """The next batch: what arrives within `flush_interval`, up to `batch_size` entries."""
        batch: list[Entry] = []
        deadline = time.monotonic() + self.config.flush_interval
        while len(batch) < self.config.batch_size:
            left = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    def _write(self, batch: list[Entry]) -> None:
        try:
            rows = [row(entry) for entry in batch]
            self._open().insert(rows)
        except Exception as exc:  # the ledger must never take the run down with it
            self.failed += len(batch)
            self._drop_store()
            self._error("ledger_write_failed", exc, lost=len(batch))
        else:
            self.written += len(batch)

    def _prune(self) -> None:
        if self.config.days <= 0:
            return
        try:
            deleted = self._open().prune(time.time() - self.config.days * 86400)
        except Exception as exc:
            self._drop_store()
            self._error("ledger_prune_failed", exc)
        else:
            if deleted:
                log.info("ledger_pruned", deleted=deleted, days=self.config.days)

    def _open(self) -> Store:
        if self._store is None:
            self.config.data_dir.mkdir(parents=True, exist_ok=True)
            self._store = Store(self.path)
        return self._store

    def _drop_store(self) -> None:
        if self._store is not None:
            # A broken connection may fail to close; it is dropped anyway.
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

    def _error(self, event: str, exc: Exception, **fields: object) -> None:
        now = time.monotonic()
        if now - self._last_error_log.get(event, float("-inf")) < _ERROR_LOG_INTERVAL:
            return
        self._last_error_log[event] = now
        log.error(
            event,
            path=str(self.path),
            error=f"{type(exc).__name__}: {exc}",
            failed_total=self.failed,
            hint="requests are still served; free space or fix --data-dir's permissions",
            **fields,
        )
