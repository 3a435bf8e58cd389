"""A usage report's question, from a query string: `group_by`, `from` and `to`.

`from` and `to` are unix seconds, or ISO 8601 dates and times (a date is its midnight,
UTC; a time without an offset is UTC). `from` is inclusive, `to` exclusive, so a day's
report is `from=2026-12-01&to=2026-12-02`.
"""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from dataclasses import dataclass

from coordinator.ledger.store import GROUPS


class QueryError(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Question:
    group_by: str = "profile"
    start: float | None = None
    end: float | None = None


def parse(query: str) -> Question:
    """The report asked for by `query` (a URL's part after '?'), or a `QueryError` naming the parameter."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    group_by = params.get("group_by") or "profile"
    if group_by not in GROUPS:
        raise QueryError(f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}.", "group_by")
    start = moment(params.get("from"), "from")
    end = moment(params.get("to"), "to")
    return Question(group_by, start, end)


def moment(text: str | None, param: str) -> float | None:
    """Unix seconds from unix seconds or an ISO 8601 date or time; None for nothing."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise QueryError(f"{param} must be a finite number of unix seconds, not {text[:40]!r}.", param)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{param} must be unix seconds or an ISO 8601 date or time (2026-12-01, "
            f"2026-12-01T08:00:00Z), not {text!r}.",
            param,
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
