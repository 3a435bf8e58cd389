"""The ledger's SQLite file: its schema, batched inserts, retention, and the usage report.

WAL mode, so that a report reads while the writer writes, and a killed process loses
nothing committed. `synchronous=NORMAL`: in WAL mode a power cut may lose the last
transactions but never corrupts the file; a killed process loses none of them.
A `Store` belongs to one thread (sqlite3's rule); reports open their own.
"""

from __future__ import annotations

import functools
import sqlite3
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.ledger.entry import COLUMNS, QuotaHit

FILE_NAME = "ledger.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    route TEXT NOT NULL,
    profile TEXT,
    model TEXT,
    status INTEGER NOT NULL,
    error_code TEXT,
    stream INTEGER NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens INTEGER,
    ttft_ms REAL,
    duration_ms REAL NOT NULL,
    key TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE TABLE IF NOT EXISTS quota_hits (
    ts REAL NOT NULL,
    profile TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quota_hits_ts ON quota_hits (ts);
"""
# Rows per INSERT statement: within SQLite's oldest limit of 999 values per statement.
# A statement of many rows is one step for SQLite, and one release of the GIL by sqlite3
# where `executemany` releases it per row, each time letting the event loop's thread in.
_ROWS_PER_INSERT = 999 // len(COLUMNS)
# What each grouping groups by, as SQL over the columns (a day is a UTC calendar day).
GROUPS = {
    "profile": "coalesce(profile, '-')",
    "model": "coalesce(model, '-')",
    "day": "date(ts, 'unixepoch')",
    "key": "coalesce(key, '-')",
    # "PROFILE YYYY-MM-DD": the dashboard's chart of each profile's requests per day.
    "profile,day": "coalesce(profile, '-') || ' ' || date(ts, 'unixepoch')",
}


@functools.lru_cache(maxsize=8)
def _insert(count: int) -> str:
    """The INSERT of `count` rows."""
    one = f"({', '.join('?' * len(COLUMNS))})"
    return f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES {', '.join([one] * count)}"


class LedgerUnreadable(Exception):
    """The ledger file exists but cannot be read; the message says why."""


class Store:
    """One connection to the ledger file, for the thread that made it."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def insert(self, rows: Sequence[tuple[object, ...]], hits: Sequence[QuotaHit] = ()) -> None:
        """All `rows` (and quota `hits`) in one transaction: all of them are written, or none."""
        with self.db:
            self.db.execute("BEGIN")
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                self.db.execute(_insert(len(chunk)), [value for row in chunk for value in row])
            if hits:
                self.db.executemany(
                    "INSERT INTO quota_hits (ts, profile, model) VALUES (?, ?, ?)",
                    [(hit.at, hit.profile, hit.model) for hit in hits],
                )

    def prune(self, before: float) -> int:
        """Delete the rows older than `before` (unix seconds); how many went."""
        with self.db:
            self.db.execute("DELETE FROM quota_hits WHERE ts < ?", (before,))
            return self.db.execute("DELETE FROM requests WHERE ts < ?", (before,)).rowcount

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True, slots=True)
class Report:
    group_by: str
    start: float | None
    end: float | None
    rows: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "usage_report",
            "group_by": self.group_by,
            "from": self.start,
            "to": self.end,
            "data": self.rows,
        }


def report(path: Path, group_by: str, start: float | None = None, end: float | None = None) -> Report:
    """Requests, errors, tokens and time to first token per group, for start <= ts < end.

    Read-only on its own connection; a missing file is an empty report.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    if not path.exists():
        return Report(group_by, start, end, [])
    try:
        return _report(path, group_by, start, end)
    except sqlite3.Error as exc:
        raise LedgerUnreadable(f"the ledger {path} cannot be read: {exc}") from None


def _report(path: Path, group_by: str, start: float | None, end: float | None) -> Report:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        where, args = _window(start, end)
        group = GROUPS[group_by]
        totals = db.execute(
            f"SELECT {group} AS g, count(*), sum(status >= 400 OR error_code IS NOT NULL),"
            " sum(prompt_tokens), sum(completion_tokens), sum(reasoning_tokens), avg(duration_ms)"
            f" FROM requests {where} GROUP BY g ORDER BY g",
            args,
        ).fetchall()
        firsts = _by_group(db.execute(
            f"SELECT {group} AS g, ttft_ms FROM requests {where}"
            f"{' AND' if where else ' WHERE'} ttft_ms IS NOT NULL AND status < 400",
            args,
        ))  # fmt: skip
    finally:
        db.close()
    rows = [
        {
            "group": name,
            "requests": requests,
            "errors": errors or 0,
            "prompt_tokens": prompt or 0,
            "completion_tokens": completion or 0,
            "reasoning_tokens": reasoning or 0,
            "ttft_p50_ms": _median(firsts.get(name)),
            "duration_avg_ms": None if duration is None else round(duration, 3),
        }
        for name, requests, errors, prompt, completion, reasoning, duration in totals
    ]
    return Report(group_by, start, end, rows)


def _window(start: float | None, end: float | None) -> tuple[str, tuple[float, ...]]:
    clauses, args = [], []
    if start is not None:
        clauses.append("ts >= ?")
        args.append(start)
    if end is not None:
        clauses.append("ts < ?")
        args.append(end)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _by_group(pairs: Iterable[tuple[str, float]]) -> dict[str, list[float]]:
    grouped: dict[str, list[float]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _median(values: list[float] | None) -> float | None:
    return round(statistics.median(values), 3) if values else None
