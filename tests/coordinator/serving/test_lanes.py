"""Priority lanes: the header's values, keys' defaults, and the order the waiting are served in."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from coordinator.serving.lanes import Lane, Lanes, of_request, parse, parse_key_priorities


@dataclass(eq=False)
class Item:
    name: str
    lane: Lane
    enqueued: float


def test_the_header_names_a_lane_in_any_case_and_absent_means_the_default() -> None:
    assert parse(" HIGH ") is Lane.HIGH and parse("Low") is Lane.LOW
    assert parse("urgent") is None and parse("") is None
    assert of_request({}, Lane.LOW) is Lane.LOW
    assert of_request({"x-priority": "high"}, Lane.LOW) is Lane.HIGH
    assert of_request({"x-priority": "9"}, Lane.NORMAL) is None


def test_key_priorities_are_checked_against_the_keys_labels() -> None:
    labels = frozenset({"client-0", "client-1", "admin-0"})
    assert parse_key_priorities("client-0=low, admin-0=HIGH", labels) == (
        ("client-0", "low"),
        ("admin-0", "high"),
    )
    assert parse_key_priorities(None, labels) == ()
    with pytest.raises(ValueError, match="'client-0=urgent' is not LABEL=high"):
        parse_key_priorities("client-0=urgent", labels)
    with pytest.raises(ValueError, match="no key is labelled 'client-9'"):
        parse_key_priorities("client-9=low", labels)
    with pytest.raises(ValueError, match="no key is configured"):
        parse_key_priorities("client-0=low", frozenset())


def test_strict_priority_between_lanes_and_fifo_within_one() -> None:
    lanes: Lanes[Item] = Lanes(max_passed_over=30.0)
    arrivals = [("l1", Lane.LOW), ("n1", Lane.NORMAL), ("h1", Lane.HIGH), ("l2", Lane.LOW), ("h2", Lane.HIGH)]
    items = [Item(name, lane, 100.0 + index) for index, (name, lane) in enumerate(arrivals)]
    for item in items:
        lanes.append(item)
    assert [i.name for i in lanes.in_order(110.0)] == ["h1", "h2", "n1", "l1", "l2"]
    assert [i.name for i in lanes] == ["l1", "n1", "h1", "l2", "h2"]  # arrival order
    assert lanes.depth() == {Lane.HIGH: 2, Lane.NORMAL: 1, Lane.LOW: 2} and len(lanes) == 5
    lanes.remove(items[2])
    assert items[2] not in lanes and items[4] in lanes
    with pytest.raises(ValueError):
        lanes.remove(items[2])


def test_a_request_waiting_past_the_bound_is_served_before_newer_higher_ones() -> None:
    lanes: Lanes[Item] = Lanes(max_passed_over=5.0)
    low, normal = Item("low", Lane.LOW, 100.0), Item("normal", Lane.NORMAL, 102.0)
    highs = [Item(f"h{n}", Lane.HIGH, 103.0 + n) for n in range(3)]
    for item in (low, normal, *highs):
        lanes.append(item)
    assert [i.name for i in lanes.in_order(105.0)] == ["h0", "h1", "h2", "normal", "low"]
    # Past the bound the low one goes first; the normal one, not yet, keeps its lane's place.
    assert [i.name for i in lanes.in_order(105.5)] == ["low", "h0", "h1", "h2", "normal"]
    # Both overdue: oldest first, ahead of every high one not overdue.
    assert [i.name for i in lanes.in_order(107.5)] == ["low", "normal", "h0", "h1", "h2"]
    assert not Lanes[Item](1.0) and len(Lanes[Item](1.0)) == 0
