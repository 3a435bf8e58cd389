"""The ledger's writer: a bounded queue that the request path fills, drained by a thread.

`record()` is all the request path pays: a length check and a deque append, which take
no lock and wake no thread. A full queue drops the entry and counts it (`dropped`), so a
slow disk never slows a request. The thread wakes every `flush_interval` seconds and
writes what has come, in one transaction: a killed process loses at most the entries of
the last interval (one batch, at most `max_queue` entries). Waking on a timer rather than
on each entry matters: a thread woken per request asks for the GIL per request, and the
event loop then waits up to the switch interval (5 ms) to give it up. A write that fails
(full disk, unwritable folder) is logged, its entries are counted in `failed`, and the
next batch tries again on a fresh connection.
Retention runs on the same thread, at start and then every `prune_interval` seconds.
The rows made are handed to `on_rows` (the quota tally's tokens) on the same thread,
whether or not their write succeeds. Quota hits (`record_hit`) go in the same batches.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from coordinator.ledger.entry import Entry, QuotaHit, row
from coordinator.ledger.store import FILE_NAME, Store

log = structlog.get_logger("coordinator.ledger")

# An error that goes on (a full disk) is logged again at most this often.
_ERROR_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    data_dir: Path
    # Off: `record` drops every entry uncounted and no thread or file is made.
    enabled: bool = True
    # Rows older than this many days are deleted; 0 keeps them all.
    days: float = 90.0
    flush_interval: float = 0.5
    max_queue: int = 10_000
    prune_interval: float = 3600.0

    @property
    def path(self) -> Path:
        return self.data_dir / FILE_NAME


class Ledger:
    """Takes finished requests on any thread; one thread of its own writes them."""

    def __init__(
        self, config: LedgerConfig, on_rows: Callable[[Sequence[tuple[object, ...]]], None] | None = None
    ) -> None:
        self.config = config
        self.on_rows = on_rows
        self._pending: deque[Entry | QuotaHit] = deque()
        self._stop = threading.Event()
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
        if len(self._pending) >= self.config.max_queue:
            self.dropped += 1  # one writer of this counter: the event loop's thread
        else:
            self._pending.append(entry)  # atomic under the GIL; the writer pops from the left

    def record_hit(self, hit: QuotaHit) -> None:
        """Queue a quota hit for the writer; never blocks, never raises (dropped uncounted when full)."""
        if self.config.enabled and len(self._pending) < self.config.max_queue:
            self._pending.append(hit)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread, within `timeout` seconds."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("ledger_close_timeout", timeout=timeout)

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic()
        while True:
            stopping = self._stop.wait(self.config.flush_interval)
            batch = self._take()
            if batch:
                self._write(batch)
            if stopping:
                break
            if time.monotonic() >= next_prune:
                self._prune()
                next_prune = time.monotonic() + self.config.prune_interval
        if self._store is not None:
            self._store.close()

    def _take(self) -> list[Entry | QuotaHit]:
        """What has come since the last batch."""
        pending = self._pending
        return [pending.popleft() for _ in range(len(pending))]

    def _write(self, batch: list[Entry | QuotaHit]) -> None:
        entries = [entry for entry in batch if isinstance(entry, Entry)]
        hits = [hit for hit in batch if isinstance(hit, QuotaHit)]
        try:
            rows = [row(entry) for entry in entries]
            if self.on_rows is not None:
                self._tell(rows)
            self._open().insert(rows, hits)
        except Exception as exc:  # the ledger must never take the run down with it
            self.failed += len(entries)
            self._drop_store()
            self._error("ledger_write_failed", exc, lost=len(entries))
        else:
            self.written += len(entries)

    def _tell(self, rows: list[tuple[object, ...]]) -> None:
        assert self.on_rows is not None
        try:
            self.on_rows(rows)
        except Exception as exc:  # a listener's bug loses no row
            self._error("ledger_listener_failed", exc)

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
