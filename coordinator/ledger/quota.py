"""The quota view: what each profile used of each model in the account's quota day.

Google's daily quotas reset at midnight Pacific time, so a quota day runs from one
midnight in America/Los_Angeles to the next (23 or 25 hours long on the days the clocks
change). The `QuotaTally` keeps, per (profile, model), the requests, tokens and quota
hits of the current quota day in memory: requests are counted by the edge as each one
ends (where its ledger row is recorded), tokens by the ledger's writer thread (which
reads them from the answer, off the request path), quota hits by the pool as a child
reports one. At start it is seeded from the ledger's rows since the day began, so a
restart keeps the count; at midnight Pacific it starts again from zero.

A daily limit is known where the model has a default (`DEFAULT_LIMITS`, estimates:
Google publishes none for AI Studio's page) or the profile's settings give one; then
the view says how many requests remain. The pool ranks the children that could serve a
request by `share`: the fraction of the limit used, or, with no limit known, requests
per unit of the profile's weight, so the accounts run out together rather than in turn.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from coordinator.ledger.entry import QuotaHit

log = structlog.get_logger("coordinator.ledger.quota")

TIMEZONE = "America/Los_Angeles"
PACIFIC = ZoneInfo(TIMEZONE)

# Requests a day per model, per account: estimates, not Google's word (it publishes no
# limits for AI Studio's page; these follow the free API tier's published figures). The
# replica's models have small ones so that the demo and the tests show them running down.
# Overridden by --daily-limit, and per profile by its settings file.
DEFAULT_LIMITS: Mapping[str, int] = {
    "gemini-2.5-pro": 100,
    "gemini-2.5-flash": 250,
    "gemini-2.5-flash-lite": 1000,
    "gemini-2.0-flash": 200,
    "gemini-2.0-flash-lite": 200,
    "replica-pro": 50,
    "replica-flash": 100,
    "replica-lite": 200,
}


def quota_day(now: float) -> tuple[float, float]:
    """The quota day that holds `now` (unix seconds): its start and end, unix seconds.

    Midnight Pacific is never skipped nor repeated (the clocks change at 2 am), so each
    local date has exactly one midnight; its length is 23, 24 or 25 hours."""
    today = dt.datetime.fromtimestamp(now, PACIFIC).date()
    start = dt.datetime.combine(today, dt.time(), PACIFIC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), PACIFIC)
    return start.timestamp(), end.timestamp()


def parse_limits(text: str | None) -> tuple[tuple[str, int], ...]:
    """`--daily-limit`: "model=N,model=N" (N >= 0 requests a day) as pairs; ValueError says why."""
    pairs: list[tuple[str, int]] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        model, sep, count = item.partition("=")
        model, count = model.strip(), count.strip()
        if not sep or not model or not count.isdigit():
            raise ValueError(f"--daily-limit: {item.strip()!r} is not MODEL=N (N a whole number of requests)")
        pairs.append((model, int(count)))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class DailyLimits:
    """Daily request limits and weights: the defaults, and each profile's own.

    `profile_limits` and `weights` are asked by profile name each time, so that settings
    reloaded live take effect at once; a profile without its own has the model's default."""

    defaults: Mapping[str, int]
    profile_limits: Callable[[str], Mapping[str, int]] = lambda profile: {}
    weights: Callable[[str], float] = lambda profile: 1.0

    @classmethod
    def with_overrides(cls, overrides: Iterable[tuple[str, int]], **kwargs: Any) -> DailyLimits:
        return cls({**DEFAULT_LIMITS, **dict(overrides)}, **kwargs)

    def limit(self, profile: str, model: str) -> int | None:
        own = self.profile_limits(profile).get(model)
        return own if own is not None else self.defaults.get(model)

    def weight(self, profile: str) -> float:
        weight = self.weights(profile)
        return weight if weight > 0 else 1.0


@dataclass(slots=True)
class Usage:
    """One profile's use of one model in the quota day."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    quota_hits: int = 0
    last_quota_hit: float | None = None  # unix seconds


class QuotaTally:
    """The current quota day's use per (profile, model); safe to call from any thread.

    The edge and the pool call it on the event loop, the ledger's writer on its thread:
    a lock keeps the day's rollover and the counts together (held for a few dict updates)."""

    def __init__(
        self,
        limits: DailyLimits,
        *,
        clock: Callable[[], float] = time.time,
        record_hit: Callable[[QuotaHit], None] | None = None,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.record_hit = record_hit or (lambda hit: None)
        self._lock = threading.Lock()
        self.day = quota_day(clock())
        self._rows: dict[tuple[str, str], Usage] = {}

    # -- counting -------------------------------------------------------------------------

    def request(self, profile: str, model: str, at: float) -> None:
        """A request that arrived at `at` and that `profile`'s child answered with `model`."""
        with self._lock:
            row = self._row(profile, model, at)
            if row is not None:
                row.requests += 1

    def hit(self, profile: str, model: str, at: float | None = None) -> None:
        """The child of `profile` reported `model` out of quota; kept in the ledger too."""
        at = self.clock() if at is None else at
        with self._lock:
            row = self._row(profile, model, at)
            if row is not None:
                row.quota_hits += 1
                row.last_quota_hit = max(at, row.last_quota_hit or at)
        self.record_hit(QuotaHit(at, profile, model))

    def ledger_rows(self, rows: Iterable[tuple[object, ...]]) -> None:
        """The tokens of rows the ledger's writer made (`entry.COLUMNS` order).

        Summed per (profile, model) before the lock is taken, once for the batch: a lock
        per row is a lock the event loop may wait on per row."""
        with self._lock:
            self._roll()
            day = self.day
        start, end = day
        sums: dict[tuple[str, str], list[int]] = {}
        for ts, _, _, profile, model, *_, prompt, completion, reasoning, _, _, _ in rows:
            if not isinstance(profile, str) or not isinstance(model, str) or not isinstance(ts, int | float):
                continue
            if "," in profile or not start <= ts < end:
                continue  # n > 1 (one answer's tokens from several accounts), or another day's
            counts = [value if isinstance(value, int) else 0 for value in (prompt, completion, reasoning)]
            if any(counts):
                total = sums.setdefault((profile, model), [0, 0, 0])
                for index, value in enumerate(counts):
                    total[index] += value
        with self._lock:
            if self.day != day:
                return  # the day rolled over meanwhile: these tokens were the last day's
            for key, (prompt_sum, completion_sum, reasoning_sum) in sums.items():
                row = self._rows.get(key)
                if row is None:
                    row = self._rows[key] = Usage()
                row.prompt_tokens += prompt_sum
                row.completion_tokens += completion_sum
                row.reasoning_tokens += reasoning_sum

    def _row(self, profile: str, model: str, at: float) -> Usage | None:
        """The row to count into, or None for a moment outside the current quota day."""
        self._roll()
        start, end = self.day
        if not start <= at < end:
            return None
        key = (profile, model)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = Usage()
        return row

    def _roll(self) -> None:
        now = self.clock()
        if now >= self.day[1] or now < self.day[0]:
            self.day = quota_day(now)
            self._rows = {}
            log.info("quota_day_started", start=_local(self.day[0]), timezone=TIMEZONE)

    # -- reading ------------------------------------------------------------------------------

    def used(self, profile: str, model: str) -> int:
        with self._lock:
            self._roll()
            row = self._rows.get((profile, model))
            return row.requests if row is not None else 0

    def share(self, profile: str, model: str | None) -> tuple[bool, float]:
        """How much of its quota for `model` `profile` has used, as the pool ranks it (less first).

        (out, share): `out` once a known limit is reached (such a child serves only when
        no other can: the limits are estimates); `share` the fraction of the limit used, or
        with no limit known, the requests per unit of the profile's weight."""
        return self.ranking()(profile, model)

    def ranking(self) -> Callable[[str, str | None], tuple[bool, float]]:
        """`share` over the counts as they are now: one pick asks it of every candidate,
        and takes the lock and reads the clock once, not once per candidate."""
        with self._lock:
            self._roll()
            rows = self._rows  # replaced, never cleared, at rollover: this one stays whole
        limits = self.limits

        def share(profile: str, model: str | None) -> tuple[bool, float]:
            if model is None:
                return False, 0.0
            row = rows.get((profile, model))
            used = row.requests if row is not None else 0
            limit = limits.limit(profile, model)
            if limit is None:
                return False, used / limits.weight(profile)
            if limit <= 0:
                return True, 1.0
            return used >= limit, used / limit

        return share

    def rows(self, known: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """The view, one dict per (profile, model): those counted, and those `known` (the
        children's models, at zero until used), sorted by profile then model."""
        with self._lock:
            self._roll()
            rows = dict(self._rows)
        for key in known:
            rows.setdefault(key, Usage())
        out = []
        for (profile, model), row in sorted(rows.items()):
            limit = self.limits.limit(profile, model)
            out.append(
                {
                    "profile": profile,
                    "model": model,
                    "requests": row.requests,
                    "prompt_tokens": row.prompt_tokens,
                    "completion_tokens": row.completion_tokens,
                    "reasoning_tokens": row.reasoning_tokens,
                    "quota_hits": row.quota_hits,
                    "last_quota_hit": None if row.last_quota_hit is None else _iso(row.last_quota_hit),
                    "daily_limit": limit,
                    "remaining": None if limit is None else max(0, limit - row.requests),
                }
            )
        return out

    def view(self, known: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
        """`GET /admin/usage/quota`'s answer."""
        rows = self.rows(known)
        start, end = self.day
        return {
            "object": "quota_view",
            "quota_day": {"start": _local(start), "end": _local(end), "timezone": TIMEZONE},
            "rows": rows,
        }

    # -- seeding ------------------------------------------------------------------------------

    def seed(self, path: Path) -> None:
        """Count what the ledger at `path` holds of the current quota day (before serving).

        A missing or unreadable ledger leaves the counts at zero, with a warning."""
        if not path.exists():
            return
        start, end = self.day
        try:
            requests, hits = _read_day(path, start, end)
        except sqlite3.Error as exc:
            log.warning("quota_seed_failed", path=str(path), error=str(exc), hint="counts start at zero")
            return
        with self._lock:
            for profiles, model, count, prompt, completion, reasoning in requests:
                names = profiles.split(",")
                for profile in names:
                    row = self._rows.setdefault((profile, model), Usage())
                    row.requests += count
                    if len(names) == 1:
                        row.prompt_tokens += prompt or 0
                        row.completion_tokens += completion or 0
                        row.reasoning_tokens += reasoning or 0
            for profile, model, count, last in hits:
                row = self._rows.setdefault((profile, model), Usage())
                row.quota_hits += count
                row.last_quota_hit = last
        log.info(
            "quota_seeded",
            requests=sum(r[2] for r in requests),
            quota_hits=sum(h[2] for h in hits),
            since=_local(start),
        )


def _read_day(path: Path, start: float, end: float) -> tuple[list[Any], list[Any]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        requests = db.execute(
            "SELECT profile, model, count(*), sum(prompt_tokens), sum(completion_tokens),"
            " sum(reasoning_tokens) FROM requests WHERE ts >= ? AND ts < ?"
            " AND profile IS NOT NULL AND model IS NOT NULL GROUP BY profile, model",
            (start, end),
        ).fetchall()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        hits = (
            db.execute(
                "SELECT profile, model, count(*), max(ts) FROM quota_hits WHERE ts >= ? AND ts < ?"
                " GROUP BY profile, model",
                (start, end),
            ).fetchall()
            if "quota_hits" in tables
            else []
        )
    finally:
        db.close()
    return requests, hits


def _local(moment: float) -> str:
    """A moment as Pacific time with its offset: a quota day starts at 00:00:00-08:00 (or -07:00)."""
    return dt.datetime.fromtimestamp(moment, PACIFIC).isoformat(timespec="seconds")


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
