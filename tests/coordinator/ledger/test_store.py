"""The ledger file: WAL, inserts in one transaction, retention, and the grouped report."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordinator.ledger.store import LedgerUnreadable, Store, report

DAY = 86400.0
T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z


def value(at: float, profile: str, model: str, status: int = 200, key: str | None = "client-0",
          ttft: float | None = 10.0) -> tuple[object, ...]:  # fmt: skip
    error = None if status < 400 else "child_failed"
    tokens = (3, 4, 1) if status < 400 else (None, None, None)
    return (at, f"r{at}", "/v1/chat/completions", profile, model, status, error, 0, *tokens, ttft, 20.0, key)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    store = Store(tmp_path / "ledger.sqlite3")
    store.insert([
        value(T0 + 1, "alpha", "m1", ttft=10.0),
        value(T0 + 2, "alpha", "m2", ttft=30.0),
        value(T0 + 3, "beta", "m1", status=502, key=None, ttft=None),
        value(T0 + DAY + 1, "beta", "m1", ttft=20.0, key="client-1"),
    ])  # fmt: skip
    store.close()
    return tmp_path / "ledger.sqlite3"


def test_the_file_is_in_wal_mode(path: Path) -> None:
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_report_by_profile_sums_and_counts_errors(path: Path) -> None:
    found = {row["group"]: row for row in report(path, "profile").rows}
    assert found["alpha"]["requests"] == 2 and found["alpha"]["errors"] == 0
    assert found["alpha"]["prompt_tokens"] == 6 and found["alpha"]["reasoning_tokens"] == 2
    assert found["alpha"]["ttft_p50_ms"] == 20.0
    assert found["beta"]["requests"] == 2 and found["beta"]["errors"] == 1
    assert found["beta"]["ttft_p50_ms"] == 20.0  # the failed request's none is left out


def test_report_by_day_model_and_key(path: Path) -> None:
    assert [(r["group"], r["requests"]) for r in report(path, "day").rows] == [
        ("2025-12-01", 3),
        ("2025-12-02", 1),
    ]
    assert [(r["group"], r["requests"]) for r in report(path, "model").rows] == [("m1", 3), ("m2", 1)]
    assert [(r["group"], r["requests"]) for r in report(path, "key").rows] == [
        ("-", 1),
        ("client-0", 2),
        ("client-1", 1),
    ]


def test_report_window_is_from_inclusive_to_exclusive(path: Path) -> None:
    assert [r["requests"] for r in report(path, "day", T0 + 2, T0 + DAY).rows] == [2]
    assert report(path, "day", T0 + 2 * DAY).rows == []


def test_missing_file_is_an_empty_report_and_a_bad_group_is_refused(tmp_path: Path) -> None:
    assert report(tmp_path / "none.sqlite3", "profile").rows == []
    with pytest.raises(ValueError):
        report(tmp_path / "none.sqlite3", "colour")


def test_a_file_that_is_not_a_database_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not sqlite" * 100)
    with pytest.raises(LedgerUnreadable):
        report(path, "profile")


def test_prune_deletes_only_older_rows(path: Path) -> None:
    store = Store(path)
    assert store.prune(T0 + 2.5) == 2
    store.close()
    assert sum(r["requests"] for r in report(path, "profile").rows) == 2


def test_report_by_profile_and_day(path: Path) -> None:
    # "PROFILE YYYY-MM-DD": the dashboard's chart splits the group at its last space.
    assert [(r["group"], r["requests"]) for r in report(path, "profile,day").rows] == [
        ("alpha 2025-12-01", 2),
        ("beta 2025-12-01", 1),
        ("beta 2025-12-02", 1),
    ]


def test_a_batch_of_many_statements_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "ledger.sqlite3")
    store.insert([value(T0 + index, "alpha", "m1") for index in range(500)])
    # A row SQLite refuses (a missing status) in the last statement of a batch: the
    # statements before it are rolled back too.
    broken = [value(T0 + DAY + index, "beta", "m1") for index in range(300)]
    broken[-1] = (*broken[-1][:5], None, *broken[-1][6:])
    with pytest.raises(sqlite3.IntegrityError):
        store.insert(broken)
    store.close()
    rows = report(tmp_path / "ledger.sqlite3", "profile").rows
    assert [(r["group"], r["requests"]) for r in rows] == [("alpha", 500)]
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert [ts for (ts,) in db.execute("SELECT ts FROM requests ORDER BY rowid")] == [
        T0 + i for i in range(500)
    ]
    db.close()
