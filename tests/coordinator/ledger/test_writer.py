"""The writer thread: batches, a full queue, a failing folder, retention, and close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from coordinator.ledger.entry import Entry
from coordinator.ledger.store import Store, report
from coordinator.ledger.writer import Ledger, LedgerConfig
from tests.support.processes import wait_for


def entry(index: int, at: float | None = None) -> Entry:
    return Entry(at or time.time(), f"r{index}", "/v1/chat/completions", "alpha", "mock", 200, None, False,
                 0.1, 0.2, None)  # fmt: skip


def total(path: Path) -> int:
    return sum(row["requests"] for row in report(path, "profile").rows)


def test_entries_are_written_within_the_flush_interval(tmp_path: Path) -> None:
    ledger = Ledger(LedgerConfig(tmp_path / "data", flush_interval=0.05))
    ledger.start()
    try:
        for index in range(10):
            ledger.record(entry(index))
        wait_for(lambda: ledger.written == 10, 30, "ten rows written")
        assert total(ledger.path) == 10
    finally:
        ledger.close()


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    ledger = Ledger(LedgerConfig(tmp_path, flush_interval=30.0))
    ledger.start()
    for index in range(5):
        ledger.record(entry(index))
    ledger.close()
    assert total(ledger.path) == 5 and ledger.written == 5


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    ledger = Ledger(LedgerConfig(tmp_path, max_queue=3))  # not started: nothing drains
    started = time.perf_counter()
    for index in range(10):
        ledger.record(entry(index))
    assert time.perf_counter() - started < 0.5
    assert ledger.dropped == 7


def test_a_failing_folder_counts_failures_and_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    ledger = Ledger(LedgerConfig(blocker, flush_interval=0.05))
    ledger.start()
    try:
        ledger.record(entry(1))
        wait_for(lambda: ledger.failed == 1, 30, "the failed write counted")
        blocker.unlink()  # the disk is fixed: the next batch opens a fresh connection
        ledger.record(entry(2))
        wait_for(lambda: ledger.written == 1, 30, "the next row written")
    finally:
        ledger.close()


def test_retention_at_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "ledger.sqlite3")
    old = time.time() - 5 * 86400
    store.insert(
        [(old, "old", "/v1/chat/completions", None, None, 200, None, 0, None, None, None, None, 1.0, None)]
    )
    store.close()
    ledger = Ledger(LedgerConfig(tmp_path, days=1, flush_interval=0.05))
    ledger.start()
    try:
        wait_for(lambda: total(ledger.path) == 0, 30, "the old row pruned")
    finally:
        ledger.close()


def test_record_from_many_threads(tmp_path: Path) -> None:
    ledger = Ledger(LedgerConfig(tmp_path, flush_interval=0.05))
    ledger.start()
    try:

        def fill(base: int) -> None:
            for index in range(base, base + 50):
                ledger.record(entry(index))

        threads = [threading.Thread(target=fill, args=(base,)) for base in range(0, 200, 50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        wait_for(lambda: ledger.written == 200, 30, "every row written")
    finally:
        ledger.close()


def test_a_disabled_ledger_keeps_nothing(tmp_path: Path) -> None:
    ledger = Ledger(LedgerConfig(tmp_path / "data", enabled=False))
    ledger.start()
    ledger.record(entry(1))
    ledger.close()
    assert not (tmp_path / "data").exists() and (ledger.written, ledger.dropped) == (0, 0)
