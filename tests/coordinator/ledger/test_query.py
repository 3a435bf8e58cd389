"""The report's question from a query string."""

from __future__ import annotations

import pytest

from coordinator.ledger.query import QueryError, Question, parse


def test_defaults_and_unix_seconds() -> None:
    assert parse("") == Question("profile", None, None)
    assert parse("group_by=day&from=10&to=20.5") == Question("day", 10.0, 20.5)
    assert parse("group_by=profile,day") == Question("profile,day", None, None)


def test_iso_dates_and_times_are_utc_unless_they_say() -> None:
    assert parse("from=2025-12-01").start == 1_764_547_200.0
    assert parse("from=2025-12-01T01:00:00Z").start == 1_764_547_200.0 + 3600
    assert parse("to=2025-12-01T01:00:00%2B01:00").end == 1_764_547_200.0


@pytest.mark.parametrize(
    ("query", "param"),
    [("group_by=colour", "group_by"), ("from=monday", "from"), ("to=x", "to"), ("from=inf", "from"),
     ("from=1e999", "from"), ("to=nan", "to"), ("from=-inf", "from")],
)  # fmt: skip
def test_bad_values_name_their_parameter(query: str, param: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse(query)
    assert raised.value.param == param
