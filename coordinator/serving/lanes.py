"""Priority lanes: what `X-Priority` means, and the order in which the waiting are served.

Three lanes, high, normal and low. A free child goes to the oldest request of the highest
lane that can take it (strict priority between lanes, FIFO within one), except that a
request that has waited longer than the bound (`--max-passed-over`, seconds) is no
longer passed over: the overdue are served first, oldest first, whatever their lane.
The bound is in seconds, not in a count of requests passed, because the queue timeout
is in seconds too: a bound under the timeout means a low request that a child could
serve is served before it times out, however busy the high lane is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Lane(enum.Enum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Lane.HIGH: 0, Lane.NORMAL: 1, Lane.LOW: 2}
HEADER = "x-priority"
INVALID = "X-Priority must be one of high, normal, low (or absent: the key's default, else normal)."


def parse(value: str) -> Lane | None:
    """The lane a header or setting names (case and surrounding spaces ignored), or None."""
    try:
        return Lane(value.strip().lower())
    except ValueError:
        return None


def of_request(headers: dict[str, str], default: Lane) -> Lane | None:
    """The lane of a request from its lower-cased `headers`; None for a value not a lane."""
    given = headers.get(HEADER)
    if given is None:
        return default
    return parse(given)


def parse_key_priorities(text: str | None, labels: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """`LABEL=LANE` pairs, comma-separated (`client-1=low,client-2=high`), checked: each
    LABEL one of the keys' `labels`, each LANE a lane. ValueError says what is wrong."""
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        label, sep, value = item.partition("=")
        label = label.strip()
        lane = parse(value)
        if not sep or lane is None:
            raise ValueError(f"--key-priority: {item.strip()!r} is not LABEL=high|normal|low")
        if label not in labels:
            known = ", ".join(sorted(labels)) or "none: no key is configured"
            raise ValueError(f"--key-priority: no key is labelled {label!r}; labels: {known}")
        pairs[label] = lane.value
    return tuple(pairs.items())


class Queued(Protocol):
    lane: Lane
    enqueued: float


Q = TypeVar("Q", bound=Queued)


@dataclass(frozen=True, slots=True)
class _Slot(Generic[Q]):
    seq: int  # arrival order, across lanes: ties between equal times are broken by it
    item: Q


class Lanes(Generic[Q]):
    """The waiting requests, a FIFO per lane; iterating gives them in service order."""

    def __init__(self, max_passed_over: float) -> None:
        self.max_passed_over = max_passed_over
        self._lanes: dict[Lane, list[_Slot[Q]]] = {lane: [] for lane in Lane}
        self._seq = 0

    def append(self, item: Q) -> None:
        self._seq += 1
        self._lanes[item.lane].append(_Slot(self._seq, item))

    def remove(self, item: Q) -> None:
        slots = self._lanes[item.lane]
        for index, slot in enumerate(slots):
            if slot.item is item:
                del slots[index]
                return
        raise ValueError("not waiting")

    def __contains__(self, item: object) -> bool:
        return any(slot.item is item for slots in self._lanes.values() for slot in slots)

    def __len__(self) -> int:
        return sum(len(slots) for slots in self._lanes.values())

    def __bool__(self) -> bool:
        return any(self._lanes.values())

    def __iter__(self) -> Iterator[Q]:
        """In arrival order, all lanes together (for lookups, cancel and shutdown)."""
        slots = sorted((slot for slots in self._lanes.values() for slot in slots), key=lambda s: s.seq)
        return iter([slot.item for slot in slots])

    def unordered(self) -> Iterator[Q]:
        """Every waiting item, lane by lane (not in arrival order): for a search by key."""
        return (slot.item for slots in self._lanes.values() for slot in slots)

    def depth(self) -> dict[Lane, int]:
        return {lane: len(slots) for lane, slots in self._lanes.items()}

    def in_order(self, now: float) -> list[Q]:
        """The waiting in the order a free child should be offered to them: the overdue
        (waited past the bound) oldest first, then the rest by lane, FIFO within each."""
        overdue: list[_Slot[Q]] = []
        rest: list[_Slot[Q]] = []
        for lane in Lane:
            for slot in self._lanes[lane]:
                late = now - slot.item.enqueued > self.max_passed_over
                (overdue if late else rest).append(slot)
        overdue.sort(key=lambda s: (s.item.enqueued, s.seq))
        # `rest` is already by lane (Lane iterates high → low) and by arrival within each.
        return [slot.item for slot in (*overdue, *rest)]
