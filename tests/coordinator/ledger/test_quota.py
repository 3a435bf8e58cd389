"""The quota tally: Pacific quota days (DST included), counting, rollover, limits, the
ranking the pool uses, and seeding from a real ledger file."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from coordinator.ledger.entry import Entry, QuotaHit, row
from coordinator.ledger.quota import (
    DEFAULT_LIMITS,
    PACIFIC,
    DailyLimits,
    QuotaTally,
    parse_limits,
    quota_day,
)
from coordinator.ledger.store import Store
from coordinator.ledger.writer import Ledger, LedgerConfig
from tests.support.processes import wait_for

UTC = dt.UTC


def at(text: str) -> float:
    """Unix seconds of an ISO time with its offset."""
    return dt.datetime.fromisoformat(text).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("moment", "start", "hours"),
    [
        # Winter (PST, UTC-8): the day starts at 08:00 UTC.
        ("2026-12-01T07:59:59+00:00", "2026-11-30T00:00:00-08:00", 24),
        ("2026-12-01T08:00:00+00:00", "2026-12-01T00:00:00-08:00", 24),
        # Summer (PDT, UTC-7): at 07:00 UTC.
        ("2026-07-04T06:59:59+00:00", "2026-07-03T00:00:00-07:00", 24),
        ("2026-07-04T07:00:00+00:00", "2026-07-04T00:00:00-07:00", 24),
        # The clocks go forward on 2026-03-08 at 2 am: a 23-hour day.
        ("2026-03-08T12:00:00-07:00", "2026-03-08T00:00:00-08:00", 23),
        ("2026-03-09T00:00:00-07:00", "2026-03-09T00:00:00-07:00", 24),
        # And back on 2026-11-01: a 25-hour day, whose second 1 am is still that day.
        ("2026-11-01T01:30:00-08:00", "2026-11-01T00:00:00-07:00", 25),
        ("2026-11-01T23:59:59-08:00", "2026-11-01T00:00:00-07:00", 25),
        ("2026-11-02T00:00:00-08:00", "2026-11-02T00:00:00-08:00", 24),
    ],
)
def test_the_quota_day_runs_from_midnight_pacific_to_midnight(moment: str, start: str, hours: int) -> None:
    begins, ends = quota_day(at(moment))
    assert begins == at(start)
    assert ends - begins == hours * 3600
    assert dt.datetime.fromtimestamp(ends, PACIFIC).time() == dt.time(0, 0)
    assert begins <= at(moment) < ends


def test_counts_roll_over_at_midnight_pacific() -> None:
    clock = Clock(at("2026-12-01T23:59:00-08:00"))
    tally = QuotaTally(DailyLimits({"pro": 10}), clock=clock)
    tally.request("alice", "pro", clock.now)
    tally.hit("alice", "pro")
    assert tally.used("alice", "pro") == 1
    clock.now = at("2026-12-02T00:00:00-08:00")
    assert tally.used("alice", "pro") == 0
    # A request that arrived before midnight and ends after it belongs to the day gone.
    tally.request("alice", "pro", at("2026-12-01T23:59:59-08:00"))
    assert tally.rows() == []
    view = tally.view()
    assert view["quota_day"] == {
        "start": "2026-12-02T00:00:00-08:00",
        "end": "2026-12-03T00:00:00-08:00",
        "timezone": "America/Los_Angeles",
    }


def answered(moment: float, profile: str, prompt: int, completion: int, reasoning: int) -> tuple[object, ...]:
    """The ledger row of a request answered with these counts."""
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "completion_tokens_details": {"reasoning_tokens": reasoning}}  # fmt: skip
    tail = json.dumps({"usage": usage}).encode()
    return row(
        Entry(moment, "r1", "/v1/chat/completions", profile, "pro", 200, None, False, 0.1, 0.2, None, tail)
    )


def test_rows_give_requests_tokens_hits_and_what_remains() -> None:
    clock = Clock(at("2026-12-01T10:00:00-08:00"))
    hits: list[QuotaHit] = []
    tally = QuotaTally(
        DailyLimits({"pro": 3}, profile_limits=lambda name: {"pro": 5} if name == "bob" else {}),
        clock=clock,
        record_hit=hits.append,
    )
    for _ in range(4):
        tally.request("alice", "pro", clock.now)
    tally.request("bob", "pro", clock.now)
    # The writer's rows: summed per profile and model, without an n > 1 row's (several
    # accounts' tokens in one answer) or another day's.
    tally.ledger_rows([
        answered(clock.now, "alice", 4, 8, 2), answered(clock.now, "alice", 6, 12, 3),
        answered(clock.now, "alice,bob", 100, 100, 100),
        answered(at("2026-11-30T23:00:00-08:00"), "alice", 100, 100, 100),
    ])  # fmt: skip
    tally.hit("alice", "pro", at("2026-12-01T10:05:00-08:00"))
    rows = {(r["profile"], r["model"]): r for r in tally.rows([("alice", "flash"), ("bob", "pro")])}
    assert rows["alice", "pro"] == {
        "profile": "alice", "model": "pro", "requests": 4, "prompt_tokens": 10, "completion_tokens": 20,
        "reasoning_tokens": 5, "quota_hits": 1, "last_quota_hit": "2026-12-01T18:05:00Z",
        "daily_limit": 3, "remaining": 0,
    }  # fmt: skip
    assert (rows["bob", "pro"]["daily_limit"], rows["bob", "pro"]["remaining"]) == (5, 4)
    # A model a child offers but no request used yet: listed at zero, no limit known.
    assert rows["alice", "flash"]["requests"] == 0 and rows["alice", "flash"]["remaining"] is None
    assert hits == [QuotaHit(at("2026-12-01T10:05:00-08:00"), "alice", "pro")]


def test_share_ranks_by_fraction_used_then_by_weight() -> None:
    clock = Clock(time.time())
    limits = {"alice": {"pro": 100}, "bob": {"pro": 10}}
    weights = {"carol": 2.0, "dave": 1.0}
    tally = QuotaTally(
        DailyLimits({}, profile_limits=lambda p: limits.get(p, {}), weights=lambda p: weights.get(p, 1.0)),
        clock=clock,
    )
    for _ in range(5):
        tally.request("alice", "pro", clock.now)
        tally.request("bob", "pro", clock.now)
    # 5 of 100 used is less than 5 of 10.
    assert tally.share("alice", "pro") < tally.share("bob", "pro")
    for _ in range(5):
        tally.request("bob", "pro", clock.now)
    assert tally.share("bob", "pro") == (True, 1.0)  # out: ranked after any that is not
    assert tally.share("alice", "pro") < tally.share("bob", "pro")
    # No limit known: requests per unit of weight; carol (weight 2) may serve twice as many.
    for _ in range(4):
        tally.request("carol", "flash", clock.now)
    for _ in range(2):
        tally.request("dave", "flash", clock.now)
    assert tally.share("carol", "flash") == tally.share("dave", "flash") == (False, 2.0)
    tally.request("carol", "flash", clock.now)
    assert tally.share("dave", "flash") < tally.share("carol", "flash")


def test_limits_defaults_overrides_and_the_option() -> None:
    limits = DailyLimits.with_overrides(parse_limits("replica-pro=7, mock=3"))
    assert limits.limit("x", "replica-pro") == 7 and limits.limit("x", "mock") == 3
    assert limits.limit("x", "gemini-2.5-pro") == DEFAULT_LIMITS["gemini-2.5-pro"]
    assert limits.limit("x", "unknown-model") is None
    assert parse_limits(None) == () and parse_limits("") == ()
    for bad in ("pro", "pro=", "=3", "pro=-1", "pro=1.5"):
        with pytest.raises(ValueError, match="MODEL=N"):
            parse_limits(bad)


def test_seeded_from_the_ledger_rows_of_the_day(tmp_path: Path) -> None:
    now = at("2026-12-01T10:00:00-08:00")
    yesterday = at("2026-11-30T23:00:00-08:00")
    usage = b'{"usage":{"prompt_tokens":7,"completion_tokens":5}}'

    def entry(when: float, profile: str | None, model: str | None = "pro") -> Entry:
        return Entry(
            when, "r", "/v1/chat/completions", profile, model, 200, None, False, 0.1, 0.2, None, usage
        )

    store = Store(tmp_path / "ledger.sqlite3")
    rows = [entry(now, "alice"), entry(now - 60, "alice"), entry(now, "bob"), entry(yesterday, "alice"),
            entry(now, None), entry(now, "alice,bob")]  # fmt: skip
    store.insert(
        [row(e) for e in rows],
        [
            QuotaHit(now - 30, "alice", "pro"),
            QuotaHit(now - 10, "alice", "pro"),
            QuotaHit(yesterday, "bob", "pro"),
        ],
    )
    store.close()
    tally = QuotaTally(DailyLimits({"pro": 10}), clock=Clock(now))
    tally.seed(tmp_path / "ledger.sqlite3")
    found = {r["profile"]: r for r in tally.rows()}
    assert set(found) == {"alice", "bob"}
    assert (found["alice"]["requests"], found["alice"]["prompt_tokens"]) == (
        3,
        14,
    )  # the n > 1 row: no tokens
    assert (found["bob"]["requests"], found["bob"]["completion_tokens"]) == (2, 5)
    assert found["alice"]["quota_hits"] == 2 and found["bob"]["quota_hits"] == 0
    assert found["alice"]["last_quota_hit"] == dt.datetime.fromtimestamp(now - 10, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert found["alice"]["remaining"] == 7
    # No file: nothing counted, no error.
    empty = QuotaTally(DailyLimits({}), clock=Clock(now))
    empty.seed(tmp_path / "none.sqlite3")
    assert empty.rows() == []


def test_the_writer_hands_its_rows_to_the_tally_and_writes_hits(tmp_path: Path) -> None:
    tally = QuotaTally(DailyLimits({}))
    ledger = Ledger(LedgerConfig(tmp_path, flush_interval=0.05), on_rows=tally.ledger_rows)
    tally.record_hit = ledger.record_hit
    ledger.start()
    try:
        usage = (
            b'{"usage":{"prompt_tokens":3,"completion_tokens":4,'
            b'"completion_tokens_details":{"reasoning_tokens":2}}}'
        )
        answered = Entry(time.time(), "r1", "/v1/chat/completions", "alice", "pro", 200, None, False, 0.1,
                         0.2, None, usage)  # fmt: skip
        ledger.record(answered)
        tally.hit("alice", "pro")
        wait_for(lambda: ledger.written == 1 and tally.rows(), 30, "the row written and its tokens counted")
    finally:
        ledger.close()
    (counted,) = tally.rows()
    assert (counted["prompt_tokens"], counted["completion_tokens"], counted["reasoning_tokens"]) == (3, 4, 2)
    seeded = QuotaTally(DailyLimits({}))
    seeded.seed(ledger.path)
    (again,) = seeded.rows()
    assert (again["requests"], again["quota_hits"], again["prompt_tokens"]) == (1, 1, 3)
